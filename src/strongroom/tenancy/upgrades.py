"""`strongroom migrate`: bring every store to this version's schema.

First the main database: the catalog, then the shared tenant store. Then
every schema and database tenant whose store the catalog records as behind
(or as left `migrating` by a run that failed or stopped), several at once.
Each tenant's revision is recorded in the catalog as soon as its store is
done, so a run that stops halfway resumes where it stopped.

An active tenant is `migrating` while its store changes, and stays so when
that fails: its requests get 503 with a maintenance message until a later
run migrates it. One tenant's failure is reported and the others go on.
Canary tenants go first, and any failure among them stops the run before
the others are touched.

Alembic keeps the migration being run in module globals (`alembic.op`,
`alembic.context`), so two migrations in one process would write through
each other's connections. Several at once therefore means several worker
processes, each with its own engines, fed one tenant at a time.
"""

from __future__ import annotations

import functools
import multiprocessing
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from strongroom.base.config import Settings
from strongroom.base.errors import InvalidInput, StrongroomError
from strongroom.base.logging import get_logger
from strongroom.tenancy import migrations
from strongroom.tenancy.catalog import Catalog
from strongroom.tenancy.context import MIGRATING, PROVISIONING, TenantInfo
from strongroom.tenancy.isolation import SHARED, TenantStores, describe_failure

log = get_logger(__name__)

# A spawned worker imports the application before its first store, which took about as
# long as migrating 150 schema stores in this process (docs/benchmarks.md). Fewer stores
# than this per worker are migrated here instead.
STORES_PER_WORKER = 100


@dataclass(frozen=True)
class StoreOutcome:
    """The result of migrating one tenant's store: its new revision, or the error that stopped it."""

    tenant: TenantInfo
    revision: str | None = None
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None


@dataclass
class UpgradeReport:
    platform: list[migrations.StoreRevision] = field(default_factory=list)
    head: str = ""
    outcomes: list[StoreOutcome] = field(default_factory=list)
    up_to_date: int = 0
    stopped_by_canary: bool = False
    not_started: int = 0

    @property
    def failures(self) -> list[StoreOutcome]:
        return [outcome for outcome in self.outcomes if outcome.failed]


Progress = Callable[[StoreOutcome], None]


@functools.cache
def tenant_head() -> str:
    """Return the newest tenant revision of this version's scripts, read once per process."""
    return migrations.head_revision("tenant")


def store_is_current(tenant: TenantInfo) -> bool:
    """Return True unless the catalog records the tenant's own store as behind this version.

    A shared tenant's store is the shared tables, which start-up checks.
    """
    return tenant.isolation == SHARED or tenant.store_revision == tenant_head()


def stores_behind(catalog: Catalog, head: str) -> tuple[list[TenantInfo], int]:
    """Return the tenants whose own store needs migrating, and how many are already at `head`."""
    behind, current = [], 0
    for tenant in catalog.list_tenants():
        # A tenant still being provisioned migrates its own store.
        if tenant.isolation == SHARED or tenant.status == PROVISIONING:
            continue
        if tenant.store_revision == head and tenant.status != MIGRATING:
            current += 1
        else:
            behind.append(tenant)
    return behind, current


def upgrade_every_store(
    settings: Settings,
    catalog: Catalog,
    stores: TenantStores,
    jobs: int = 1,
    canaries: Sequence[str] = (),
    on_plan: Callable[[int], None] = lambda _total: None,
    on_outcome: Progress = lambda _outcome: None,
) -> UpgradeReport:
    """Migrate the main database, then every tenant store that is behind; see the module doc."""
    if jobs < 1:
        raise InvalidInput(f"--jobs {jobs} is not a number of workers; give 1 or more")
    report = UpgradeReport(platform=migrations.upgrade(catalog.engine), head=tenant_head())

    behind, report.up_to_date = stores_behind(catalog, report.head)
    first, rest = _split_canaries(catalog, behind, canaries)
    on_plan(len(first) + len(rest))

    run = _Run(settings, catalog, stores, jobs, on_outcome)
    report.outcomes += run.upgrade_all(first)
    if report.failures:
        report.stopped_by_canary = True
        report.not_started = len(rest)
        return report
    report.outcomes += run.upgrade_all(rest)
    return report


def upgrade_tenant_stores(settings: Settings, catalog: Catalog, stores: TenantStores) -> None:
    """Migrate, one at a time, every tenant schema and database that is behind, and log failures."""
    behind, _current = stores_behind(catalog, tenant_head())
    _Run(settings, catalog, stores, 1, lambda _outcome: None).upgrade_all(behind)


def _split_canaries(
    catalog: Catalog, behind: list[TenantInfo], canaries: Iterable[str]
) -> tuple[list[TenantInfo], list[TenantInfo]]:
    slugs = list(dict.fromkeys(slug.strip() for slug in canaries if slug.strip()))
    for slug in slugs:
        catalog.get_tenant(slug)  # an unknown canary is a typo: say so before migrating anything
    first = [tenant for tenant in behind if tenant.slug in slugs]
    rest = [tenant for tenant in behind if tenant.slug not in slugs]
    return first, rest


@dataclass
class _Run:
    settings: Settings
    catalog: Catalog
    stores: TenantStores
    jobs: int
    on_outcome: Progress

    def upgrade_all(self, tenants: list[TenantInfo]) -> list[StoreOutcome]:
        workers = min(self.jobs, len(tenants) // STORES_PER_WORKER)
        if workers < 2:
            return [
                self._report(upgrade_tenant_store(self.catalog, self.stores, t)) for t in tenants
            ]
        # Spawned, not forked: a fork would share this process's pooled connections.
        with ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_open_worker,
            initargs=(self.settings,),
        ) as pool:
            return [self._report(outcome) for outcome in pool.map(_upgrade_in_worker, tenants)]

    def _report(self, outcome: StoreOutcome) -> StoreOutcome:
        self.on_outcome(outcome)
        return outcome


_worker: tuple[Catalog, TenantStores] | None = None


def _open_worker(settings: Settings) -> None:
    """Open a worker process's own catalog and tenant stores, once, for every tenant it gets."""
    # Imported here: the runtime module wires the domain modules, which import this one.
    from strongroom.base.logging import configure_logging
    from strongroom.runtime import open_catalog, open_engine

    global _worker
    configure_logging("json", "error")
    _worker = open_catalog(settings, open_engine(settings))


def _upgrade_in_worker(tenant: TenantInfo) -> StoreOutcome:
    assert _worker is not None, "the worker's initializer opens the catalog"
    return upgrade_tenant_store(*_worker, tenant)


def upgrade_tenant_store(
    catalog: Catalog, stores: TenantStores, tenant: TenantInfo
) -> StoreOutcome:
    """Migrate one tenant's own store, closing the tenant to requests while it changes."""
    tenant = catalog.begin_store_migration(tenant.id)
    try:
        revision = stores.migrate_store(tenant)
    except Exception as exc:  # noqa: BLE001 - one tenant's failure is reported, the rest go on
        error = exc.detail if isinstance(exc, StrongroomError) else describe_failure(exc)
        log.error("tenant_migration_failed", tenant=tenant.slug, error=error)
        return StoreOutcome(tenant, error=error)
    tenant = catalog.finish_store_migration(tenant.id, revision)
    log.info("tenant_migrated", tenant=tenant.slug, revision=revision)
    return StoreOutcome(tenant, revision=revision)
