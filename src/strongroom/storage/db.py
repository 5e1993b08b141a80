"""Database engines and the two declarative bases: the catalog and tenant tables.

The catalog contains the platform's own rows: tenants and their wrapped keys.
Tenant tables contain a tenant's users, tokens and files. Every one of them
has a `tenant_id` column that leads its primary key. `TenantSession` raises
when asked to query them without a tenant, adds the tenant filter to every
ORM statement and stamps new rows with the tenant id.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from sqlalchemy import Engine, MetaData, create_engine, event, make_url
from sqlalchemy.engine import Connection
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    ORMExecuteState,
    Session,
    mapped_column,
    with_loader_criteria,
)
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.elements import TextClause

from strongroom.base.errors import MissingTenantContext

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class CatalogBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class TenantBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class TenantScoped:
    """Mixin for tenant tables: the tenant id leads the primary key."""

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True, sort_order=-1)


# Engines ------------------------------------------------------------------------------


# A statement's parameters hold token and invitation hashes, wrapped keys and personal
# data. SQLAlchemy puts them in the text of its errors, which reach the error log.
HIDE_PARAMETERS = True


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(url: str, *, pool_size: int = 10, prepared_statements: bool = True) -> Engine:
    """Open an engine on `url` with `pool_size` pooled connections and as many more on demand.

    Without `prepared_statements`, psycopg never prepares a statement on the
    server, which a pooler in transaction mode needs: the next transaction may
    run on a server connection that never saw the PREPARE.
    """
    if is_sqlite(url):
        return _make_sqlite_engine(url, pool_size)
    connect_args = {} if prepared_statements else {"prepare_threshold": None}
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args=connect_args,
        hide_parameters=HIDE_PARAMETERS,
    )


def _make_sqlite_engine(url: str, pool_size: int) -> Engine:
    in_memory = url.endswith(":memory:")
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        poolclass=NullPool if in_memory else None,
        hide_parameters=HIDE_PARAMETERS,
        **({} if in_memory else {"pool_size": pool_size, "max_overflow": pool_size}),
    )
    database = make_url(url).database

    @event.listens_for(engine, "do_connect")
    def create_database_file(_dialect: Any, _record: Any, _cargs: Any, _cparams: Any) -> None:
        # SQLite would create the file with the mode the umask allows, often readable by all.
        # An empty file is a valid new database, and SQLite gives -wal and -shm files its mode.
        if database and database != ":memory:" and not database.startswith("file:"):
            create_private_file(database)

    @event.listens_for(engine, "connect")
    def configure_connection(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module, whose implicit
        # BEGIN comes too late and too weak; the "begin" listener below issues it.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def begin_transaction(connection: Connection) -> None:
        # A writer takes the write lock up front: a deferred transaction that reads
        # and then writes fails with SQLITE_BUSY instead of waiting when another
        # writer got in between, and busy_timeout cannot help it.
        if connection.get_execution_options().get("sqlite_write"):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")

    return engine


def create_private_file(path: str) -> None:
    """Create an empty file readable by its owner alone, unless it exists."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except (FileExistsError, FileNotFoundError):
        # An existing database keeps its mode. A missing folder is left for SQLite to report.
        return
    os.close(descriptor)


def writer_bind(engine: Engine) -> Engine:
    """Return the engine with the option that makes SQLite transactions take the write lock first."""
    return engine.execution_options(sqlite_write=True)


def sqlite_file_of(engine: Engine) -> str | None:
    """Return the path of the engine's SQLite database file, or None for anything else."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:"):
        return None
    return database


# Tenant sessions ----------------------------------------------------------------------


class TenantSession(Session):
    """A session bound to exactly one tenant.

    Every ORM statement on a tenant table gets `tenant_id = :tenant` added, and
    new tenant rows get the tenant id. Statements the filter cannot reach (raw
    SQL, Core statements on tables, bulk INSERT) run only when they carry the
    execution option `tenant_scoped=True`, which marks them as scoped by hand.
    """

    def __init__(self, *args: Any, tenant_id: uuid.UUID | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tenant_id = tenant_id

    def connection(self, *args: Any, **kwargs: Any) -> Connection:
        """Return the session's connection, only to a caller that filters by tenant itself.

        Statements on the connection bypass the filter above, and on SQLite
        nothing else stops them from reading every tenant's rows. So the
        caller must pass `execution_options={"tenant_scoped": True}`, as for a
        raw statement on the session.
        """
        options = kwargs.get("execution_options") or {}
        if not options.get("tenant_scoped"):
            raise MissingTenantContext(
                "statements on a tenant session's connection get no tenant filter; filter by "
                "tenant_id yourself and call connection(execution_options={'tenant_scoped': True})"
            )
        _require_tenant(self)
        return super().connection(*args, **kwargs)


def _require_tenant(session: Session) -> uuid.UUID:
    tenant_id = getattr(session, "tenant_id", None)
    if tenant_id is None:
        raise MissingTenantContext(
            "tenant data was queried without a tenant; open the session with tenant_session()"
        )
    return tenant_id


def _cannot_be_scoped(state: ORMExecuteState) -> bool:
    """Return True when the tenant filter below would miss the statement.

    `with_loader_criteria` adds criteria for ORM entities only, so raw SQL, Core
    statements on a `Table`, `from_statement()`, ORM bulk INSERT, and bulk
    UPDATE or DELETE by primary key with a parameter list could read or write
    any tenant's rows.
    """
    return (
        isinstance(state.statement, TextClause)
        or not state.is_orm_statement
        or state.is_from_statement
        or state.is_insert
        or state.is_executemany
    )


def _sets_tenant_id(state: ORMExecuteState) -> bool:
    # `_values` is private, but it is the one place an UPDATE keeps its SET clause.
    values = getattr(state.statement, "_values", None) or {}
    return any(getattr(column, "key", column) == "tenant_id" for column in values)


@event.listens_for(TenantSession, "do_orm_execute")
def _scope_statement(state: ORMExecuteState) -> None:
    if _cannot_be_scoped(state):
        if not state.execution_options.get("tenant_scoped"):
            raise MissingTenantContext(
                "this statement gets no automatic tenant filter (raw SQL, a Core statement on "
                "a Table, from_statement(), bulk INSERT, or bulk UPDATE or DELETE with a "
                "parameter list). Use the mapped classes and session.add(), or filter by "
                "tenant_id yourself and pass execution_options(tenant_scoped=True)"
            )
        _require_tenant(state.session)
        return
    tenant_id = _require_tenant(state.session)
    if state.is_update and _sets_tenant_id(state):
        raise MissingTenantContext(
            f"an UPDATE in a session bound to tenant {tenant_id} sets tenant_id, which is not "
            "allowed because rows never move between tenants; leave tenant_id out of the "
            "SET clause"
        )
    if not (state.is_select or state.is_update or state.is_delete):
        return
    state.statement = state.statement.options(
        with_loader_criteria(
            TenantScoped,
            lambda cls: cls.tenant_id == tenant_id,
            include_aliases=True,
        )
    )


@event.listens_for(TenantSession, "before_flush")
def _stamp_new_rows(session: Session, _context: Any, _instances: Any) -> None:
    tenant_id = _require_tenant(session)
    for instance in session.new:
        if not isinstance(instance, TenantScoped):
            continue
        if instance.tenant_id is None:
            instance.tenant_id = tenant_id
        elif instance.tenant_id != tenant_id:
            raise MissingTenantContext(
                f"a {type(instance).__name__} of tenant {instance.tenant_id} was added to a "
                f"session bound to tenant {tenant_id}"
            )
    for instance in session.dirty:
        if isinstance(instance, TenantScoped) and instance.tenant_id != tenant_id:
            raise MissingTenantContext(
                f"a {type(instance).__name__} of tenant {instance.tenant_id} was changed in a "
                f"session bound to tenant {tenant_id}"
            )
