"""Opening sessions on a tenant's store, wherever the catalog placed it.

A tenant's rows live on one of three isolation levels (docs/decisions/0005):

- `shared`: the tenant tables of the main database, shared by many tenants.
- `schema` (PostgreSQL only): the same tables in a schema of the tenant's
  own, `tenant_{id}`, on the default server or a registered one.
- `database`: a database of the tenant's own, as a SQLite file under the
  data directory (`tenants/{id}-{random}.db`) or a PostgreSQL database
  `strongroom_tenant_{id}` on the default server or a registered one.

On PostgreSQL every tenant transaction starts with one statement,
`enter_tenant`, that switches to the `strongroom_tenant` role, which does
not own the tables and cannot bypass row-level security, and sets
`strongroom.tenant_id`, which the forced policies compare with every row's
`tenant_id`. On the schema level the same statement points the search path
at the tenant's schema. All three are transaction local
(`set_config(..., true)`), so a pooled connection carries nothing into the
next transaction, even behind PgBouncer in transaction mode, and they cost
one round trip together.

Engines are pooled per server where the level allows: shared and schema
tenants of a server share its one engine. A tenant database needs an engine
of its own, so those engines get small pools and the least recently used are
closed above a cap; SQLite files likewise.
"""

from __future__ import annotations

import os
import secrets
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, event, make_url, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from strongroom.base.errors import InvalidInput, ServiceUnavailable
from strongroom.base.logging import get_logger
from strongroom.storage.db import (
    TenantBase,
    TenantSession,
    is_sqlite,
    make_engine,
    sqlite_file_of,
    writer_bind,
)
from strongroom.storage.inline_readers import InlineReader, InlineReaders
from strongroom.storage.space import database_full_as_error
from strongroom.tenancy import migrations, store_state
from strongroom.tenancy.context import ISOLATION_LEVELS, TenantInfo, require_current_tenant

log = get_logger(__name__)

TENANT_ROLE = "strongroom_tenant"
TENANT_SETTING = "strongroom.tenant_id"
# The role that may read and delete audit events, which the tenant role may only read and add.
AUDIT_PURGE_ROLE = "strongroom_audit_purge"
# Tables whose rows the tenant role may not update or delete on PostgreSQL.
APPEND_ONLY_TABLES = frozenset({"audit_events"})

SHARED, SCHEMA, DATABASE = ISOLATION_LEVELS
DEFAULT_SERVER = "default"
TENANT_FILES = "tenants"

# The key of `session.info` under which a session keeps its tenant's schema, for the listener below.
SCHEMA_INFO = "strongroom_schema"

_ENTER_TENANT = text(
    f"SELECT set_config('role', '{TENANT_ROLE}', true), "
    f"set_config('{TENANT_SETTING}', :tenant, true)"
)
_ENTER_TENANT_SCHEMA = text(
    f"SELECT set_config('role', '{TENANT_ROLE}', true), "
    f"set_config('{TENANT_SETTING}', :tenant, true), "
    "set_config('search_path', :path, true)"
)


def enter_tenant(connection: Connection, tenant_id: uuid.UUID, schema: str | None = None) -> None:
    """Bind the open transaction on `connection` to one tenant, for the database's own checks.

    With `schema`, the transaction also resolves table names in that schema.
    """
    if connection.dialect.name != "postgresql":
        return
    if schema is None:
        connection.execute(_ENTER_TENANT, {"tenant": str(tenant_id)})
    else:
        path = migrations.quote_schema(schema)
        connection.execute(_ENTER_TENANT_SCHEMA, {"tenant": str(tenant_id), "path": path})


_SWITCH_ROLE = text("SELECT set_config('role', :role, true)")


@contextmanager
def rights_to_delete(session: TenantSession, table: str) -> Iterator[None]:
    """Run the block as a role that may delete rows of `table`, then return to the tenant role.

    Only the append-only tables need it: on PostgreSQL the block runs as the
    audit purge role, which may read and delete audit events and touch no
    other table. The tenant setting stays, so row security still limits the
    deletes to the session's tenant. Elsewhere this does nothing.
    """
    if table not in APPEND_ONLY_TABLES or session.get_bind().dialect.name != "postgresql":
        yield
        return
    # The role switch reads no tenant table, so it needs no tenant filter.
    scoped = {"tenant_scoped": True}
    session.execute(_SWITCH_ROLE, {"role": AUDIT_PURGE_ROLE}, execution_options=scoped)
    yield
    session.execute(_SWITCH_ROLE, {"role": TENANT_ROLE}, execution_options=scoped)


@event.listens_for(TenantSession, "after_begin")
def _enter_session_tenant(session: TenantSession, _transaction: Any, connection: Connection) -> None:
    if session.tenant_id is not None:
        enter_tenant(connection, session.tenant_id, session.info.get(SCHEMA_INFO))


StoreInitializer = Callable[[TenantSession], None]
ServerUrls = Callable[[str], str]


# Placement ---------------------------------------------------------------------------


def schema_name(tenant_id: uuid.UUID) -> str:
    return f"tenant_{tenant_id.hex}"


def database_name(tenant_id: uuid.UUID) -> str:
    return f"strongroom_tenant_{tenant_id.hex}"


def file_name(tenant_id: uuid.UUID) -> str:
    """Return a new file name for a tenant's SQLite store.

    Each store gets a name never used before, so a server process that still
    holds connections to a file a move removed can never read or write a
    later file of the same tenant through them.
    """
    return f"{TENANT_FILES}/{tenant_id}-{secrets.token_hex(4)}.db"


@dataclass(frozen=True)
class Placement:
    """The location of a tenant's store: its level, its server and the schema, database or file."""

    isolation: str
    server: str
    location: str


# Engines -----------------------------------------------------------------------------


class EngineCache:
    """Engines opened on demand and closed least recently used first above `capacity`.

    An engine in use (leased) is never closed; when every engine is in use
    the cache grows past its capacity for as long as that lasts.
    """

    def __init__(self, capacity: int, open_engine: Callable[[str], Engine]) -> None:
        self.capacity = capacity
        self._open_engine = open_engine
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._leases: dict[str, int] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._engines)

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._engines

    def open_keys(self) -> list[str]:
        """Return the keys of the open engines, least recently used first."""
        with self._lock:
            return list(self._engines)

    def get(self, key: str) -> Engine:
        """Return the engine for `key`, opening it if needed, without holding it open."""
        with self.lease(key) as engine:
            return engine

    @contextmanager
    def lease(self, key: str) -> Iterator[Engine]:
        """Hold the engine for `key` open, opening it first if needed, until the block ends."""
        with self._lock:
            engine = self._engines.get(key)
        if engine is None:
            # Opened outside the lock: it may look the server's URL up in the catalog.
            opened = self._open_engine(key)
            with self._lock:
                engine = self._engines.setdefault(key, opened)
            if engine is not opened:
                opened.dispose()
        with self._lock:
            if key not in self._engines:
                self._engines[key] = engine  # closed in between; it reopens on use
            self._engines.move_to_end(key)
            self._leases[key] = self._leases.get(key, 0) + 1
            idle = self._remove_idle_beyond_capacity()
        _dispose(idle)
        try:
            yield engine
        finally:
            with self._lock:
                self._leases[key] -= 1
                if not self._leases[key]:
                    del self._leases[key]
                idle = self._remove_idle_beyond_capacity()
            _dispose(idle)

    def discard(self, key: str) -> None:
        """Close the engine for `key`, if open, so that its database or file can be removed."""
        with self._lock:
            engine = self._engines.pop(key, None)
        _dispose([engine] if engine is not None else [])

    def close(self) -> None:
        with self._lock:
            engines = list(self._engines.values())
            self._engines.clear()
        _dispose(engines)

    def _remove_idle_beyond_capacity(self) -> list[Engine]:
        """Remove the least recently used engines not in use until the cache fits; return them."""
        removed = []
        for key in list(self._engines):
            if len(self._engines) <= self.capacity:
                break
            if key not in self._leases:
                removed.append(self._engines.pop(key))
        return removed


def _dispose(engines: list[Engine]) -> None:
    for engine in engines:
        engine.dispose()


# Stores ------------------------------------------------------------------------------


class TenantStores:
    """Hands out sessions bound to one tenant, on the engine of the tenant's placement.

    `initializers` write the first rows of a new tenant's store (its usage
    counter and write fence, for two): tenancy runs them without knowing them.
    `server_urls` returns the URL of a registered server by name.
    """

    def __init__(
        self,
        default_engine: Engine,
        initializers: Sequence[StoreInitializer] = (),
        *,
        server_urls: ServerUrls | None = None,
        data_dir: Path | None = None,
        open_databases: int = 50,
        open_files: int = 200,
        pool_size: int = 2,
        prepared_statements: bool = True,
    ) -> None:
        self.default_engine = default_engine
        self.initializers = tuple(initializers)
        self.data_dir = data_dir
        self._server_urls = server_urls
        self._pool_size = pool_size
        self._prepared_statements = prepared_statements
        self._servers = EngineCache(1_000_000, self._open_server)
        self.databases = EngineCache(open_databases, self._open_database)
        self.files = EngineCache(open_files, self._open_file)
        self.inline_readers = InlineReaders(open_files)

    # Placement ----------------------------------------------------------------------

    def plan(self, tenant_id: uuid.UUID, isolation: str, server: str | None = None) -> Placement:
        """Choose where a new tenant's store goes, or raise InvalidInput naming what is wrong."""
        if isolation not in ISOLATION_LEVELS:
            raise InvalidInput(
                f"isolation level {isolation!r} does not exist; use {', '.join(ISOLATION_LEVELS)}"
            )
        server = server or DEFAULT_SERVER
        if isolation == SHARED:
            if server != DEFAULT_SERVER:
                raise InvalidInput(
                    "the shared level lives in the main database; leave out --server, or choose "
                    "--isolation schema or database to place the tenant on server "
                    f"{server!r}"
                )
            return Placement(SHARED, DEFAULT_SERVER, SHARED)

        on_sqlite = is_sqlite(self.server_url(server))
        if isolation == SCHEMA:
            if on_sqlite:
                raise InvalidInput(
                    "the schema isolation level needs PostgreSQL, and this instance keeps its "
                    "data in SQLite; set STRONGROOM_DATABASE_URL to a postgresql:// URL, pass "
                    "--server with a PostgreSQL server, or choose --isolation shared or database"
                )
            return Placement(SCHEMA, server, schema_name(tenant_id))
        if on_sqlite:
            return Placement(DATABASE, server, file_name(tenant_id))
        return Placement(DATABASE, server, database_name(tenant_id))

    @property
    def embedded(self) -> bool:
        """True when the default server is SQLite, whose database tenants are files."""
        return self.default_engine.dialect.name == "sqlite"

    def server_url(self, server: str) -> str:
        if server == DEFAULT_SERVER:
            return self.default_engine.url.render_as_string(hide_password=False)
        if self._server_urls is None:
            raise InvalidInput(f"no database server is named {server!r}; only 'default' exists")
        return self._server_urls(server)

    # Engines ------------------------------------------------------------------------

    def engine_for(self, tenant: TenantInfo) -> Engine:
        """Return the engine of the tenant's store.

        A tenant database's engine may be closed when it is the least recently
        used one, after which it opens new connections again; hold it with
        `session` or `connect` rather than keeping it.
        """
        cache, key = self._engine_key(tenant)
        return cache.get(key)

    @contextmanager
    def _engine(self, tenant: TenantInfo) -> Iterator[Engine]:
        cache, key = self._engine_key(tenant)
        if cache is self.files and not self._file_path(key).exists():
            # SQLite would create an empty file in its place and serve an empty tenant.
            raise ServiceUnavailable(
                f"the store of tenant {tenant.slug!r}, {self._file_path(key)}, is missing; "
                "restore it from a backup"
            )
        with cache.lease(key) as engine:
            yield engine

    def _engine_key(self, tenant: TenantInfo) -> tuple[EngineCache, str]:
        if tenant.isolation == SHARED:
            return self._servers, DEFAULT_SERVER
        if tenant.isolation == SCHEMA:
            return self._servers, tenant.server
        if tenant.isolation == DATABASE:
            if tenant.server == DEFAULT_SERVER and self.embedded:
                return self.files, tenant.placement
            return self.databases, f"{tenant.server}/{tenant.placement}"
        raise ServiceUnavailable(
            f"tenant {tenant.slug!r} is placed on the {tenant.isolation!r} isolation level, "
            "which this version of Strongroom cannot open; upgrade the server"
        )

    def _open_server(self, server: str) -> Engine:
        if server == DEFAULT_SERVER:
            return self.default_engine
        return make_engine(
            self.server_url(server), prepared_statements=self._prepared_statements
        )

    def _open_database(self, key: str) -> Engine:
        server, _, database = key.partition("/")
        url = make_url(self.server_url(server)).set(database=database)
        return make_engine(
            url.render_as_string(hide_password=False),
            pool_size=self._pool_size,
            prepared_statements=self._prepared_statements,
        )

    def _open_file(self, relative: str) -> Engine:
        return make_engine(f"sqlite:///{self._file_path(relative)}", pool_size=self._pool_size)

    def _file_path(self, relative: str) -> Path:
        if self.data_dir is None:
            raise InvalidInput("tenant files need a data directory; set STRONGROOM_DATA_DIR")
        return (self.data_dir / relative).resolve()

    def close(self) -> None:
        """Close every engine opened for tenants; the default engine is its owner's to close."""
        self.inline_readers.close()
        self.files.close()
        self.databases.close()
        for server in self._servers.open_keys():
            if server != DEFAULT_SERVER:
                self._servers.discard(server)

    # Sessions -----------------------------------------------------------------------

    @contextmanager
    def session(
        self, tenant: TenantInfo | None = None, write: bool = False, fenced: bool = True
    ) -> Iterator[TenantSession]:
        """Open a transaction on the tenant's data; with no tenant given, the request's tenant.

        A write transaction first checks the store's write fence and raises
        ServiceUnavailable while a move has it closed; `fenced=False` skips
        that, for the mover itself. A database or disk that is full raises
        ServerStorageFull, once the transaction has rolled back.
        """
        tenant = tenant or require_current_tenant()
        with self._engine(tenant) as engine, database_full_as_error(tenant.slug):
            bind = writer_bind(engine) if write else engine
            with TenantSession(bind=bind, tenant_id=tenant.id, expire_on_commit=False) as session:
                if tenant.isolation == SCHEMA:
                    session.info[SCHEMA_INFO] = tenant.placement
                with session.begin():
                    if write and fenced:
                        store_state.check_writable(session, tenant.slug)
                    yield session

    def inline_reader(self, tenant: TenantInfo) -> InlineReader | None:
        """Return a reader for a short read on the calling event loop's thread, or None.

        Only a SQLite file qualifies. Its reads are local and, in WAL mode,
        never wait for a writer, so handing one to a worker thread costs more
        than running it. A PostgreSQL round trip would stall every request on
        the loop, so for those the caller gets None and uses `connect` in a
        worker thread. The connection is not bound to the tenant: every
        statement on it must filter by `tenant_id` itself, and every key of
        `InlineReader.cached` must name the tenant. The connections stay open
        per thread, at most STRONGROOM_OPEN_TENANT_FILES of them,
        the least recently used closed first.
        """
        cache, key = self._engine_key(tenant)
        if cache is self.files:
            path = self._file_path(key)
            if not path.exists():
                return None
        elif cache is self._servers and key == DEFAULT_SERVER:
            path = sqlite_file_of(self.default_engine)
            if path is None:
                return None
        else:
            return None
        return self.inline_readers.reader(str(path))

    @contextmanager
    def connect(self, tenant: TenantInfo, snapshot: bool = False) -> Iterator[Connection]:
        """Open a read transaction on the tenant's data for Core statements on hot paths.

        The ORM guard does not check these statements, so each must filter by
        `tenant_id` itself. On PostgreSQL the transaction is still bound to the
        tenant, so row-level security backs that filter up. With `snapshot`,
        every statement of the transaction sees the data as of its first one,
        which SQLite's read transactions always do.
        """
        schema = tenant.placement if tenant.isolation == SCHEMA else None
        with self._engine(tenant) as engine, engine.connect() as connection:
            if snapshot and connection.dialect.name == "postgresql":
                connection.execution_options(isolation_level="REPEATABLE READ")
            with connection.begin():
                enter_tenant(connection, tenant.id, schema)
                yield connection

    # Creating and removing stores --------------------------------------------------

    def initialize(self, tenant: TenantInfo) -> None:
        """Write the first rows of a new tenant's store, in one transaction."""
        with self.session(tenant, write=True) as session:
            for initializer in self.initializers:
                initializer(session)

    def create_store(self, tenant: TenantInfo) -> str | None:
        """Make the tenant's schema, database or file and bring its tables to the newest revision.

        Returns the revision reached. The shared level's tables exist already,
        migrated with the catalog, so there it makes nothing and returns None.
        """
        if tenant.isolation == SHARED:
            return None
        if tenant.isolation == SCHEMA:
            with self._servers.lease(tenant.server) as engine, engine.begin() as connection:
                connection.exec_driver_sql(
                    f"CREATE SCHEMA {migrations.quote_schema(tenant.placement)}"
                )
        elif self._engine_key(tenant)[0] is self.files:
            self._make_tenant_file(tenant.placement)
        else:
            self._run_on_server(tenant.server, f'CREATE DATABASE "{tenant.placement}"')
        return self.migrate_store(tenant)

    def migrate_store(self, tenant: TenantInfo) -> str | None:
        """Bring the tenant's own schema or database to the newest revision; return it."""
        if tenant.isolation == SHARED:
            return None
        schema = tenant.placement if tenant.isolation == SCHEMA else None
        with self._engine(tenant) as engine:
            return migrations.upgrade_tenant_store(engine, schema=schema)

    def drop_store(self, tenant: TenantInfo) -> None:
        """Remove the tenant's schema, database or file; on the shared level, delete its rows."""
        if tenant.isolation == SHARED:
            self._delete_shared_rows(tenant)
        elif tenant.isolation == SCHEMA:
            with self._servers.lease(tenant.server) as engine, engine.begin() as connection:
                connection.exec_driver_sql(
                    f"DROP SCHEMA IF EXISTS {migrations.quote_schema(tenant.placement)} CASCADE"
                )
        else:
            cache, key = self._engine_key(tenant)
            cache.discard(key)
            if cache is self.files:
                self._remove_tenant_file(tenant.placement)
            else:
                self._run_on_server(
                    tenant.server, f'DROP DATABASE IF EXISTS "{tenant.placement}" WITH (FORCE)'
                )
        log.info("tenant_store_dropped", tenant=tenant.slug, isolation=tenant.isolation)

    def _delete_shared_rows(self, tenant: TenantInfo) -> None:
        # Unfenced: a store that a move froze is removed all the same.
        with self.session(tenant, write=True, fenced=False) as session:
            for table in reversed(TenantBase.metadata.sorted_tables):
                statement = delete(table).where(table.c.tenant_id == tenant.id)
                with rights_to_delete(session, table.name):
                    session.execute(statement.execution_options(tenant_scoped=True))

    def _run_on_server(self, server: str, statement: str) -> None:
        # CREATE and DROP DATABASE cannot run inside a transaction block.
        with (
            self._servers.lease(server) as engine,
            engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection,
        ):
            connection.exec_driver_sql(statement)

    def _make_tenant_file(self, relative: str) -> None:
        folder = self._file_path(TENANT_FILES)
        # Like the data directory and the main database: for their owner alone.
        folder.mkdir(mode=0o700, exist_ok=True)
        os.close(os.open(self._file_path(relative), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))

    def _remove_tenant_file(self, relative: str) -> None:
        path = self._file_path(relative)
        for suffix in ("", "-wal", "-shm", "-journal"):
            try:
                os.unlink(f"{path}{suffix}")
            except FileNotFoundError:
                pass


def describe_failure(exc: BaseException) -> str:
    """Return the first line of a database error, which names the cause but no password."""
    if isinstance(exc, SQLAlchemyError):
        exc = getattr(exc, "orig", None) or exc
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
