"""The catalog: tenants, their state and placement, and their wrapped keys.

Every change to a tenant's catalog row goes through a function that owns its
transaction: here, or in tenancy/plans.py (plan and limits) and
tenancy/configuration.py (modules and settings). Lookups used on every
request go through a short cache so that resolving a tenant costs no query in
the common case.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from sqlalchemy import Engine, delete, select
from sqlalchemy.exc import IntegrityError as DatabaseIntegrityError
from sqlalchemy.orm import Session

from strongroom.base.errors import (
    AlreadyExists,
    ConfigurationError,
    Conflict,
    InvalidInput,
    NotFound,
    TenantNotFound,
)
from strongroom.base.logging import get_logger
from strongroom.storage.db import writer_bind
from strongroom.tenancy.context import (
    ACTIVE,
    DEFAULT_PLAN,
    MIGRATING,
    MOVING,
    PROVISIONING,
    SUSPENDED,
    TenantInfo,
)
from strongroom.tenancy.keys import Keyring, latest_key_version, new_tenant_key_row
from strongroom.tenancy.limits import LIMIT_NAMES, TenantLimits
from strongroom.tenancy.models import PlanRow, TenantKeyRow, TenantRow
from strongroom.tenancy.modules import MODULES, enabled_modules
from strongroom.tenancy.settings import effective_settings, setting_values
from strongroom.tenancy.slugs import can_be_slug, check_slug

if TYPE_CHECKING:
    from strongroom.tenancy.isolation import Placement

log = get_logger(__name__)


def tenant_info(row: TenantRow) -> TenantInfo:
    """Snapshot a tenant's row, with its plan's limits, modules and settings applied."""
    plan = row.plan_row
    if plan is None and row.plan != DEFAULT_PLAN:
        # Plans in use cannot be deleted, so only a catalog edited by hand gets here.
        log.warning("tenant_plan_missing", tenant=row.slug, plan=row.plan)
    limits = plan_limits(plan).with_overrides(row.limit_overrides or {})
    plan_modules = frozenset(plan.modules) if plan is not None else frozenset(MODULES)
    return TenantInfo(
        id=row.id,
        slug=row.slug,
        name=row.name,
        status=row.status,
        isolation=row.isolation,
        server=row.server,
        placement=row.placement,
        quota_bytes=limits.storage_bytes,
        store_revision=row.store_revision,
        plan=row.plan,
        limits=limits,
        modules=enabled_modules(plan_modules, row.modules or {}),
        plan_modules=plan_modules,
        settings=effective_settings(
            plan.settings if plan is not None else {}, setting_values(row.settings), row.name
        ),
    )


def plan_limits(plan: PlanRow | None) -> TenantLimits:
    """Return a plan's limits; no plan row is the unlimited default plan."""
    if plan is None:
        return TenantLimits()
    return TenantLimits(**{name: getattr(plan, name) for name in LIMIT_NAMES})


class Catalog:
    def __init__(
        self, engine: Engine, keyring: Keyring | None, cache_seconds: float = 2.0
    ) -> None:
        self.engine = engine
        self._keyring = keyring
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, TenantInfo | None]] = {}
        self._cache_lock = threading.Lock()

    @property
    def keyring(self) -> Keyring:
        if self._keyring is None:
            raise ConfigurationError(
                "this command opened the catalog without the master key, so it cannot make or "
                "change tenant keys"
            )
        return self._keyring

    @contextmanager
    def session(self, write: bool = False) -> Iterator[Session]:
        bind = writer_bind(self.engine) if write else self.engine
        with Session(bind, expire_on_commit=False) as session, session.begin():
            yield session

    # Lookups ------------------------------------------------------------------------

    def cached_tenant(self, slug: str) -> tuple[TenantInfo | None] | None:
        """Return `(tenant or None,)` when the cache has a fresh entry for the slug, else None."""
        with self._cache_lock:
            cached = self._cache.get(slug)
        if cached and cached[0] > time.monotonic():
            return (cached[1],)
        return None

    def find_tenant(self, slug: str) -> TenantInfo | None:
        """Return the tenant with this slug, or None, served from the cache when fresh."""
        if not can_be_slug(slug):
            # Slugs come from URLs, and PostgreSQL rejects some text with an error (a NUL byte),
            # which would turn a request for no tenant into a server error.
            return None
        cached = self.cached_tenant(slug)
        if cached is not None:
            return cached[0]

        now = time.monotonic()
        with self.session() as session:
            row = session.scalars(select(TenantRow).where(TenantRow.slug == slug)).first()
            tenant = tenant_info(row) if row is not None else None

        with self._cache_lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[slug] = (now + self._cache_seconds, tenant)
        return tenant

    def get_tenant(self, slug: str) -> TenantInfo:
        with self.session() as session:
            row = self._get_row(session, slug)
            return tenant_info(row)

    def get_tenant_by_id(self, tenant_id: uuid.UUID) -> TenantInfo:
        with self.session() as session:
            row = session.get(TenantRow, tenant_id)
            if row is None:
                raise TenantNotFound(f"no tenant has the id {tenant_id}")
            return tenant_info(row)

    def tenant_settings(self, tenant_id: uuid.UUID) -> dict:
        """Return a copy of the tenant's settings: a JSON object of sections such as `branding`."""
        with self.session() as session:
            return dict(self._get_row_by_id(session, tenant_id).settings or {})

    def list_tenants(self) -> list[TenantInfo]:
        with self.session() as session:
            rows = session.scalars(select(TenantRow).order_by(TenantRow.slug))
            return [tenant_info(row) for row in rows]

    # Changes ------------------------------------------------------------------------

    def create_tenant(
        self,
        slug: str,
        name: str | None = None,
        quota_bytes: int | None = None,
        *,
        tenant_id: uuid.UUID | None = None,
        isolation: str = "shared",
        server: str = "default",
        placement: str = "shared",
        status: str = ACTIVE,
        plan: str = DEFAULT_PLAN,
    ) -> TenantInfo:
        """Create a tenant with its first key in the same transaction.

        The isolation level, server and placement are recorded as given: the
        caller (tenancy.lifecycle) chose them and makes the store. A quota
        given here overrides the plan's storage limit.
        """
        check_slug(slug)
        if quota_bytes is not None and quota_bytes < 0:
            raise InvalidInput(f"quota {quota_bytes} is negative; give a number of bytes, 0 or more")

        tenant_id = tenant_id or uuid.uuid4()
        try:
            with self.session(write=True) as session:
                if session.scalars(select(TenantRow.id).where(TenantRow.slug == slug)).first():
                    raise AlreadyExists(f"tenant slug {slug!r} is taken; slugs are never reused")
                lock_plan(session, plan)
                row = TenantRow(
                    id=tenant_id,
                    slug=slug,
                    name=name or slug,
                    status=status,
                    isolation=isolation,
                    server=server,
                    placement=placement,
                    plan=plan,
                    limit_overrides={} if quota_bytes is None else {"storage_bytes": quota_bytes},
                    modules={},
                    settings={},
                )
                session.add(row)
                session.flush()
                session.add(new_tenant_key_row(self.keyring.master_key, tenant_id, 1))
                tenant = tenant_info(row)
        except DatabaseIntegrityError as exc:
            raise AlreadyExists(f"tenant slug {slug!r} is taken; slugs are never reused") from exc

        self._invalidate(slug)
        log.info("tenant_created", tenant=slug, tenant_id=str(tenant_id), isolation=isolation)
        return tenant

    def finish_provisioning(
        self, tenant_id: uuid.UUID, store_revision: str | None = None
    ) -> TenantInfo:
        """Open a tenant whose store is made to requests, recording its store's revision."""
        with self.session(write=True) as session:
            row = session.get(TenantRow, tenant_id)
            if row is None or row.status != PROVISIONING:
                raise InvalidInput(f"tenant {tenant_id} is not being provisioned")
            row.status = ACTIVE
            row.store_revision = store_revision
            tenant = tenant_info(row)
        self._invalidate(tenant.slug)
        return tenant

    def begin_store_migration(self, tenant_id: uuid.UUID) -> TenantInfo:
        """Close an active tenant to requests while its own store is migrated.

        A suspended tenant stays suspended: it serves nothing either way, and
        its status must survive the migration.
        """
        with self.session(write=True) as session:
            row = self._get_row_by_id(session, tenant_id)
            if row.status == ACTIVE:
                row.status = MIGRATING
            tenant = tenant_info(row)
        self._invalidate(tenant.slug)
        return tenant

    def finish_store_migration(self, tenant_id: uuid.UUID, store_revision: str | None) -> TenantInfo:
        """Record the revision a tenant's store reached and open the tenant again."""
        with self.session(write=True) as session:
            row = self._get_row_by_id(session, tenant_id)
            row.store_revision = store_revision
            if row.status == MIGRATING:
                row.status = ACTIVE
            tenant = tenant_info(row)
        self._invalidate(tenant.slug)
        return tenant

    def discard_tenant(self, tenant_id: uuid.UUID) -> None:
        """Remove a tenant whose provisioning failed before it served anyone, keys included.

        Its slug becomes free again. No request ever reached the tenant, so no
        link or token that names the slug can point elsewhere now.
        """
        with self.session(write=True) as session:
            row = session.get(TenantRow, tenant_id)
            if row is None or row.status != PROVISIONING:
                raise InvalidInput(
                    f"tenant {tenant_id} is not being provisioned; only such a tenant is discarded"
                )
            slug = row.slug
            session.execute(delete(TenantKeyRow).where(TenantKeyRow.tenant_id == tenant_id))
            session.delete(row)
        self._invalidate(slug)
        if self._keyring is not None:
            self._keyring.forget(tenant_id)
        log.info("tenant_discarded", tenant=slug, tenant_id=str(tenant_id))

    def set_status(self, slug: str, status: str) -> TenantInfo:
        if status not in (ACTIVE, SUSPENDED):
            raise InvalidInput(f"status {status!r} cannot be set by hand; use active or suspended")
        with self.session(write=True) as session:
            row = self._get_row(session, slug)
            if row.status not in (ACTIVE, SUSPENDED):
                raise Conflict(
                    f"tenant {slug!r} is {row.status}; change its status once that has finished"
                )
            old_status, row.status = row.status, status
            tenant = tenant_info(row)
        self._invalidate(slug)
        log.info("tenant_status_changed", tenant=slug, old=old_status, new=status)
        return tenant

    def begin_move(self, tenant_id: uuid.UUID) -> TenantInfo:
        """Mark an active tenant as moving, which keeps a second move or a suspension out."""
        with self.session(write=True) as session:
            row = session.get(TenantRow, tenant_id)
            if row is None or row.status != ACTIVE:
                status = "gone" if row is None else row.status
                raise Conflict(
                    f"tenant {tenant_id} is {status}, and only an active tenant can move; "
                    "resume it first, or wait for the change under way"
                )
            row.status = MOVING
            tenant = tenant_info(row)
        self._invalidate(tenant.slug)
        return tenant

    def end_move(
        self,
        tenant_id: uuid.UUID,
        placement: Placement | None,
        store_revision: str | None = None,
    ) -> TenantInfo:
        """Reopen a moving tenant; when the move succeeded, at `placement` and its store's revision."""
        with self.session(write=True) as session:
            row = session.get(TenantRow, tenant_id)
            if row is None or row.status != MOVING:
                raise Conflict(f"tenant {tenant_id} is not moving")
            if placement is not None:
                row.isolation = placement.isolation
                row.server = placement.server
                row.placement = placement.location
                row.store_revision = store_revision
            row.status = ACTIVE
            tenant = tenant_info(row)
        self._invalidate(tenant.slug)
        return tenant

    def set_quota(self, slug: str, quota_bytes: int | None) -> TenantInfo:
        """Override the plan's storage limit for one tenant; None makes its storage unlimited."""
        if quota_bytes is not None and quota_bytes < 0:
            raise InvalidInput(f"quota {quota_bytes} is negative; give a number of bytes, 0 or more")
        with self.session(write=True) as session:
            row = self._get_row(session, slug)
            row.limit_overrides = {**(row.limit_overrides or {}), "storage_bytes": quota_bytes}
            tenant = tenant_info(row)
        self._invalidate(slug)
        log.info("tenant_quota_changed", tenant=slug, quota_bytes=quota_bytes)
        return tenant

    def set_settings_section(self, tenant_id: uuid.UUID, section: str, values: dict) -> dict:
        """Replace one section of the tenant's settings and return all of them."""
        with self.session(write=True) as session:
            row = self._get_row_by_id(session, tenant_id)
            # A new dictionary, because SQLAlchemy does not see changes inside a JSON value.
            row.settings = {**(row.settings or {}), section: values}
            settings = dict(row.settings)
            slug = row.slug
        self._invalidate(slug)
        log.info("tenant_settings_changed", tenant=slug, section=section)
        return settings

    def add_key_version(self, tenant_id: uuid.UUID) -> int:
        """Add a new tenant key version and return its number; older versions stay readable."""
        with self.session(write=True) as session:
            version = latest_key_version(session, tenant_id) + 1
            session.add(new_tenant_key_row(self.keyring.master_key, tenant_id, version))
        self.keyring.forget(tenant_id)
        return version

    def get_row(self, session: Session, slug: str) -> TenantRow:
        """Return the tenant's row in a session of this catalog, or raise TenantNotFound."""
        return self._get_row(session, slug)

    def invalidate(self, slug: str | None = None) -> None:
        """Drop this process's cached entry of one tenant, or of every tenant without a slug."""
        if slug is None:
            with self._cache_lock:
                self._cache.clear()
        else:
            self._invalidate(slug)

    def _get_row(self, session: Session, slug: str) -> TenantRow:
        row = session.scalars(select(TenantRow).where(TenantRow.slug == slug)).first()
        if row is None:
            raise TenantNotFound(f"no tenant has the slug {slug!r}; see `strongroom tenant list`")
        return row

    def _get_row_by_id(self, session: Session, tenant_id: uuid.UUID) -> TenantRow:
        row = session.get(TenantRow, tenant_id)
        if row is None:
            raise TenantNotFound(f"no tenant has the id {tenant_id}")
        return row

    def _invalidate(self, slug: str) -> None:
        with self._cache_lock:
            self._cache.pop(slug, None)


def lock_plan(session: Session, name: str) -> None:
    """Lock the plan's row until commit, or raise NotFound; the default plan may be missing.

    The lock keeps a concurrent `delete_plan` from removing the plan between
    this check and the commit of the tenant that names it.
    """
    found = session.scalars(select(PlanRow.name).where(PlanRow.name == name).with_for_update()).first()
    if found is None and name != DEFAULT_PLAN:
        raise NotFound(f"no plan is named {name!r}; see `strongroom plan list`")
