"""Opening sessions on a tenant's store, wherever the catalog placed it.

This version places every tenant on the `shared` level: tenant tables in the
platform database, shared by all tenants. On PostgreSQL each transaction
switches to the `strongroom_tenant` role, which does not own the tables and
cannot bypass row-level security, and sets `strongroom.tenant_id`, which the
forced policies compare with every row's `tenant_id`. Both are transaction
local (`set_config(..., true)`), so a pooled connection carries nothing into
the next request, and they go in one statement, so they cost one round trip.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event, text
from sqlalchemy.engine import Connection

from strongroom.base.errors import ServiceUnavailable
from strongroom.storage.db import InlineReaders, TenantSession, can_read_inline, writer_bind
from strongroom.tenancy.context import TenantInfo, require_current_tenant

TENANT_ROLE = "strongroom_tenant"
TENANT_SETTING = "strongroom.tenant_id"

_ENTER_TENANT = text(
    f"SELECT set_config('role', '{TENANT_ROLE}', true), set_config('{TENANT_SETTING}', :tenant, true)"
)


def enter_tenant(connection: Connection, tenant_id: uuid.UUID) -> None:
    """Bind the open transaction on `connection` to one tenant, for the database's own checks."""
    if connection.dialect.name == "postgresql":
        connection.execute(_ENTER_TENANT, {"tenant": str(tenant_id)})


@event.listens_for(TenantSession, "after_begin")
def _enter_session_tenant(session: TenantSession, _transaction: Any, connection: Connection) -> None:
    if session.tenant_id is not None:
        enter_tenant(connection, session.tenant_id)


StoreInitializer = Callable[[TenantSession], None]


class TenantStores:
    """Hands out sessions bound to one tenant, on the engine of the tenant's placement.

    `initializers` are the domain modules' first rows for a new tenant (the
    drive's root folder, for one): tenancy runs them without knowing them.
    """

    def __init__(self, default_engine: Engine, initializers: Sequence[StoreInitializer] = ()) -> None:
        self.default_engine = default_engine
        self.initializers = tuple(initializers)
        self.inline_readers = InlineReaders()

    def close(self) -> None:
        self.inline_readers.close()

    def initialize(self, tenant: TenantInfo) -> None:
        """Write the first rows of a new tenant's store, in one transaction."""
        with self.session(tenant, write=True) as session:
            for initializer in self.initializers:
                initializer(session)

    def engine_for(self, tenant: TenantInfo) -> Engine:
        if tenant.isolation != "shared":
            raise ServiceUnavailable(
                f"tenant {tenant.slug!r} is placed on the {tenant.isolation!r} isolation level, "
                "which this version of Strongroom cannot open; upgrade the server"
            )
        return self.default_engine

    @contextmanager
    def session(self, tenant: TenantInfo | None = None, write: bool = False) -> Iterator[TenantSession]:
        """Open a transaction on the tenant's data; with no tenant given, the request's tenant."""
        tenant = tenant or require_current_tenant()
        engine = self.engine_for(tenant)
        bind = writer_bind(engine) if write else engine
        with TenantSession(bind=bind, tenant_id=tenant.id, expire_on_commit=False) as session:
            with session.begin():
                yield session

    def inline_reader(self, tenant: TenantInfo) -> sqlite3.Connection | None:
        """Return a connection for a short read on the calling event loop's thread, or None.

        Only a SQLite file qualifies. Its reads are local and, in WAL mode,
        never wait for a writer, so handing one to a worker thread costs more
        than running it. A PostgreSQL round trip would stall every request on
        the loop, so for those the caller gets None and uses `connect` in a
        worker thread. The connection is not bound to the tenant: every
        statement on it must filter by `tenant_id` itself.
        """
        engine = self.engine_for(tenant)
        if not can_read_inline(engine):
            return None
        return self.inline_readers.connection(engine)

    @contextmanager
    def connect(self, tenant: TenantInfo) -> Iterator[Connection]:
        """Open a read transaction on the tenant's data for Core statements on hot paths.

        The ORM guard does not check these statements, so each must filter by
        `tenant_id` itself. On PostgreSQL the transaction is still bound to the tenant, so
        row-level security backs that filter up.
        """
        with self.engine_for(tenant).connect() as connection:
            with connection.begin():
                enter_tenant(connection, tenant.id)
                yield connection
