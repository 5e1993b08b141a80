"""The three isolation levels: where each puts a tenant's store, and what each keeps apart.

Tests that hold on every level take `isolation` and run on all five
backend-and-level pairs; the others name the levels they are about.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, func, inspect, select, text
from sqlalchemy.pool import NullPool

from strongroom.base.errors import InvalidInput, NotFound, ServiceUnavailable
from strongroom.identity.models import UserRow
from strongroom.identity.users import create_user, list_users
from strongroom.runtime import Runtime
from strongroom.storage.db import TenantBase, make_engine
from strongroom.tenancy import migrations
from strongroom.tenancy.context import PROVISIONING, TenantInfo
from strongroom.tenancy.isolation import TENANT_ROLE, TENANT_SETTING, EngineCache, TenantStores
from strongroom.tenancy.lifecycle import provision_tenant
from tests.conftest import PASSWORD, Cast

# These tests check the stores that create_store makes, so `cast` makes them the product's way.
pytestmark = pytest.mark.real_migrations

SCOPED = {"tenant_scoped": True}
VERSION_TABLE = migrations.STORE_KINDS["tenant"]
TENANT_TABLES = set(TenantBase.metadata.tables)


def levels(*names: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("level", names, indirect=True)


def postgres_schemas(runtime: Runtime) -> set[str]:
    with runtime.engine.connect() as connection:
        return set(
            connection.scalars(
                text("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tenant\\_%'")
            )
        )


def postgres_databases(runtime: Runtime) -> set[str]:
    with runtime.engine.connect() as connection:
        return set(connection.scalars(text("SELECT datname FROM pg_database")))


def store_tables(runtime: Runtime, tenant: TenantInfo) -> set[str]:
    """The tables of the tenant's own schema, database or file."""
    engine = runtime.stores.engine_for(tenant)
    schema = tenant.placement if tenant.isolation == "schema" else None
    return set(inspect(engine).get_table_names(schema=schema))


# Where each level puts a store ---------------------------------------------------------


@levels("sqlite-shared")
def test_schema_level_on_sqlite_needs_postgres(runtime: Runtime) -> None:
    with pytest.raises(InvalidInput, match="the schema isolation level needs PostgreSQL"):
        provision_tenant(runtime.catalog, runtime.stores, "acme", isolation="schema")

    assert runtime.catalog.find_tenant("acme") is None


def test_unknown_level_is_rejected(runtime: Runtime) -> None:
    with pytest.raises(InvalidInput, match="'private' does not exist; use shared, schema, database"):
        provision_tenant(runtime.catalog, runtime.stores, "acme", isolation="private")


def test_shared_level_with_server_is_rejected(runtime: Runtime) -> None:
    with pytest.raises(InvalidInput, match="the shared level lives in the main database"):
        provision_tenant(runtime.catalog, runtime.stores, "acme", server="second")


@levels("sqlite-shared", "postgres-shared")
def test_unknown_server_is_rejected(runtime: Runtime) -> None:
    with pytest.raises(NotFound, match="no database server is named 'nowhere'"):
        provision_tenant(
            runtime.catalog, runtime.stores, "acme", isolation="database", server="nowhere"
        )

    assert runtime.catalog.find_tenant("acme") is None


def test_created_tenant_records_its_level(cast: Cast, isolation: str) -> None:
    tenant = cast.acme

    assert (tenant.isolation, tenant.server, tenant.status) == (isolation, "default", "active")


@levels("postgres-schema")
def test_schema_tenant_placed_in_own_schema(runtime: Runtime, cast: Cast) -> None:
    assert cast.acme.placement == f"tenant_{cast.acme.id.hex}"
    assert postgres_schemas(runtime) == {cast.acme.placement, cast.globex.placement}


@levels("postgres-schema", "postgres-database", "sqlite-database")
def test_own_store_holds_tenant_tables(runtime: Runtime, cast: Cast) -> None:
    assert store_tables(runtime, cast.acme) == TENANT_TABLES | {VERSION_TABLE}


@levels("postgres-schema", "postgres-database", "sqlite-database")
def test_own_store_is_at_head_revision(runtime: Runtime, cast: Cast) -> None:
    schema = cast.acme.placement if cast.acme.isolation == "schema" else None
    engine = runtime.stores.engine_for(cast.acme)

    reached = migrations.upgrade_tenant_store(engine, schema=schema)

    with engine.connect() as connection:
        if schema:
            connection.execute(text(f'SET LOCAL search_path TO "{schema}"'))
        current = connection.scalar(text(f"SELECT version_num FROM {VERSION_TABLE}"))
    assert current == reached


@levels("postgres-schema", "postgres-database", "sqlite-database")
def test_own_store_rows_keep_tenant_id(runtime: Runtime, cast: Cast) -> None:
    with runtime.stores.session(cast.acme) as session:
        owners = set(session.scalars(select(UserRow.tenant_id)))

    assert owners == {cast.acme.id}


@levels("postgres-schema", "postgres-database", "sqlite-database")
def test_own_store_leaves_shared_tables_empty(runtime: Runtime, cast: Cast) -> None:
    with runtime.engine.connect() as connection:
        count = connection.scalar(text("SELECT count(*) FROM users"))

    assert count == 0


@levels("postgres-database")
def test_database_tenant_placed_in_own_database(runtime: Runtime, cast: Cast) -> None:
    assert cast.acme.placement == f"strongroom_tenant_{cast.acme.id.hex}"
    assert {cast.acme.placement, cast.globex.placement} <= postgres_databases(runtime)


@levels("sqlite-database")
def test_database_tenant_file_is_private(runtime: Runtime, cast: Cast) -> None:
    path = runtime.settings.data_dir / cast.acme.placement

    assert re.fullmatch(rf"tenants/{cast.acme.id}-[0-9a-f]{{8}}\.db", cast.acme.placement)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


@levels("sqlite-database")
def test_missing_tenant_file_is_not_recreated(runtime: Runtime, cast: Cast) -> None:
    path = runtime.settings.data_dir / cast.acme.placement
    runtime.stores.close()
    path.unlink()

    with (
        pytest.raises(ServiceUnavailable, match="is missing; restore it from a backup"),
        runtime.stores.session(cast.acme) as session,
    ):
        list_users(session)

    assert not path.exists()


# What PostgreSQL keeps apart by itself -------------------------------------------------


@pytest.fixture
def tenant_engine(runtime: Runtime, cast: Cast) -> Iterator[Engine]:
    """A plain engine on acme's schema or database, outside `TenantStores`, with no pool."""
    url = runtime.stores.engine_for(cast.acme).url
    engine = create_engine(url, poolclass=NullPool)
    try:
        yield engine
    finally:
        engine.dispose()


def as_tenant_role(engine: Engine, tenant: TenantInfo, sql: str, tenant_id: str = "") -> list:
    with engine.begin() as connection:
        if tenant.isolation == "schema":
            connection.execute(text(f'SET LOCAL search_path TO "{tenant.placement}"'))
        connection.execute(text(f"SET LOCAL ROLE {TENANT_ROLE}"))
        if tenant_id:
            connection.execute(
                text(f"SELECT set_config('{TENANT_SETTING}', :tenant, true)"), {"tenant": tenant_id}
            )
        return list(connection.execute(text(sql)))


@levels("postgres-schema", "postgres-database")
def test_own_store_forces_row_security(tenant_engine: Engine, cast: Cast) -> None:
    schema = cast.acme.placement if cast.acme.isolation == "schema" else "public"
    with tenant_engine.connect() as connection:
        unforced = connection.scalars(
            text(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = :schema AND c.relkind = 'r' AND c.relname <> :version "
                "AND NOT (c.relrowsecurity AND c.relforcerowsecurity)"
            ),
            {"schema": schema, "version": VERSION_TABLE},
        ).all()

    assert unforced == []


@levels("postgres-schema", "postgres-database")
def test_own_store_without_setting_sees_nothing(tenant_engine: Engine, cast: Cast) -> None:
    rows = as_tenant_role(tenant_engine, cast.acme, "SELECT * FROM users")

    assert rows == []


@levels("postgres-schema", "postgres-database")
def test_own_store_with_setting_sees_rows(tenant_engine: Engine, cast: Cast) -> None:
    rows = as_tenant_role(tenant_engine, cast.acme, "SELECT * FROM users", str(cast.acme.id))

    assert len(rows) == 2


@levels("postgres-schema")
def test_schema_tenant_naming_other_schema_sees_nothing(runtime: Runtime, cast: Cast) -> None:
    # Row security stays on inside tenant schemas, for this: a statement that names
    # another tenant's schema outright still gets no row of it.
    other = text(f'SELECT count(*) FROM "{cast.globex.placement}".users')

    with runtime.stores.session(cast.acme) as session:
        count = session.scalar(other.execution_options(**SCOPED))

    assert count == 0


@levels("postgres-schema")
def test_schema_search_path_ends_with_transaction(runtime: Runtime, cast: Cast) -> None:
    # One pooled connection, so the next checkout is the connection the session used.
    engine = make_engine(runtime.settings.resolved_database_url, pool_size=1)
    stores = TenantStores(engine)
    probe = text("SELECT current_setting('search_path')")
    try:
        with stores.session(cast.acme) as session:
            scoped = session.connection(execution_options={"tenant_scoped": True})
            used = scoped.connection.dbapi_connection
            inside = session.scalar(probe.execution_options(**SCOPED))
        with engine.connect() as connection:
            reused = connection.connection.dbapi_connection
            after = connection.scalar(probe)
    finally:
        engine.dispose()

    assert inside == f'"{cast.acme.placement}"'
    assert reused is used
    assert after == '"$user", public'


@levels("postgres-schema", "postgres-database")
def test_core_connection_sees_own_rows_only(runtime: Runtime, cast: Cast) -> None:
    # No tenant filter on purpose: the placement and row security alone must hold.
    everything = select(func.count()).select_from(UserRow.__table__)

    with runtime.stores.connect(cast.acme) as connection:
        count = connection.scalar(everything)

    assert count == 2


# Engines --------------------------------------------------------------------------------


@levels("postgres-shared", "postgres-schema")
def test_server_level_tenants_share_one_engine(runtime: Runtime, cast: Cast) -> None:
    engines = {id(runtime.stores.engine_for(tenant)) for tenant in (cast.acme, cast.globex)}

    assert engines == {id(runtime.engine)}


@levels("postgres-database", "sqlite-database")
def test_database_tenants_get_small_pools(runtime: Runtime, cast: Cast) -> None:
    engine = runtime.stores.engine_for(cast.acme)

    assert engine is not runtime.engine
    assert engine.pool.size() == runtime.settings.tenant_pool_size


def tenant_engines(runtime: Runtime) -> EngineCache:
    return runtime.stores.files if runtime.stores.embedded else runtime.stores.databases


@levels("postgres-database", "sqlite-database")
def test_database_engines_closed_above_cap(runtime: Runtime, cast: Cast) -> None:
    cache = tenant_engines(runtime)
    cache.capacity = 1

    for tenant in (cast.acme, cast.globex):
        with runtime.stores.session(tenant) as session:
            list_users(session)

    assert [cast.globex.placement in key for key in cache.open_keys()] == [True]


@levels("postgres-database", "sqlite-database")
def test_closed_tenant_engine_reopens_on_use(runtime: Runtime, cast: Cast) -> None:
    cache = tenant_engines(runtime)
    cache.capacity = 1
    with runtime.stores.session(cast.globex) as session:
        list_users(session)

    with runtime.stores.session(cast.acme) as session:
        emails = [user.email for user in list_users(session)]

    assert emails == ["admin@acme.test", "member@acme.test"]


@levels("postgres-database", "sqlite-database")
def test_leased_engine_outlives_cap(runtime: Runtime, cast: Cast) -> None:
    cache = tenant_engines(runtime)
    cache.capacity = 1

    with runtime.stores.session(cast.acme) as outer:
        with runtime.stores.session(cast.globex) as inner:
            list_users(inner)
        emails = [user.email for user in list_users(outer)]

    assert emails == ["admin@acme.test", "member@acme.test"]
    assert len(cache) == 1


# A failure while provisioning -----------------------------------------------------------


def failing_initializer(_session: object) -> None:
    raise RuntimeError("the disk filled up")


@pytest.fixture
def failing_provision(runtime: Runtime, isolation: str) -> pytest.ExceptionInfo:
    runtime.stores.initializers = (*runtime.stores.initializers, failing_initializer)
    with pytest.raises(ServiceUnavailable) as failure:
        provision_tenant(runtime.catalog, runtime.stores, "acme", isolation=isolation)
    return failure


def test_failed_provisioning_names_the_cause(failing_provision: pytest.ExceptionInfo) -> None:
    assert "the disk filled up" in failing_provision.value.detail


def test_failed_provisioning_leaves_no_tenant(runtime: Runtime, failing_provision: object) -> None:
    assert runtime.catalog.list_tenants() == []


@levels("postgres-schema")
def test_failed_provisioning_drops_schema(runtime: Runtime, failing_provision: object) -> None:
    assert postgres_schemas(runtime) == set()


@levels("postgres-database")
def test_failed_provisioning_drops_database(runtime: Runtime, failing_provision: object) -> None:
    assert not any(name.startswith("strongroom_tenant_") for name in postgres_databases(runtime))


@levels("sqlite-database")
def test_failed_provisioning_removes_file(runtime: Runtime, failing_provision: object) -> None:
    assert list((runtime.settings.data_dir / "tenants").iterdir()) == []


def test_failed_provisioning_frees_the_slug(
    runtime: Runtime, failing_provision: object, isolation: str
) -> None:
    runtime.stores.initializers = runtime.stores.initializers[:-1]

    tenant = provision_tenant(runtime.catalog, runtime.stores, "acme", isolation=isolation)

    assert runtime.catalog.get_tenant("acme").status == "active"
    assert tenant.isolation == isolation


@levels("postgres-schema", "sqlite-database")
def test_failed_cleanup_leaves_tenant_provisioning(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, isolation: str
) -> None:
    runtime.stores.initializers = (failing_initializer,)
    monkeypatch.setattr(runtime.stores, "drop_store", failing_initializer)

    with pytest.raises(ServiceUnavailable, match="stays 'provisioning'"):
        provision_tenant(runtime.catalog, runtime.stores, "acme", isolation=isolation)

    assert runtime.catalog.get_tenant("acme").status == PROVISIONING


# Every level keeps working data --------------------------------------------------------


def test_users_written_read_back(runtime: Runtime, isolation: str) -> None:
    tenant = provision_tenant(runtime.catalog, runtime.stores, "acme", isolation=isolation)
    with runtime.stores.session(tenant, write=True) as session:
        create_user(session, "ada@acme.test", PASSWORD)

    with runtime.stores.session(tenant) as session:
        emails = [user.email for user in list_users(session)]

    assert emails == ["ada@acme.test"]
