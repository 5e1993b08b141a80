"""The data layer's tenant guard: `TenantSession`, row-level security and the schema's keys.

The ORM guard is tested on both backends, because on SQLite it is the only
isolation of the shared level. Row-level security exists on PostgreSQL only,
so those tests select the PostgreSQL backend by parametrising `level`.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import (
    Engine,
    Uuid,
    bindparam,
    create_engine,
    delete,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.pool import NullPool

from strongroom.base.errors import MissingTenantContext
from strongroom.drive import transfers
from strongroom.drive.files import Preconditions
from strongroom.drive.models import FOLDER, NodeRow, VersionRow
from strongroom.drive.paths import split_path
from strongroom.identity.models import TokenRow, UserRow
from strongroom.identity.users import list_users
from strongroom.runtime import Runtime
from strongroom.storage.db import CatalogBase, TenantBase, TenantSession, make_engine
from strongroom.tenancy.context import (
    TenantInfo,
    bound_tenant,
    current_tenant,
    start_thread_with_context,
)
from strongroom.tenancy.isolation import TENANT_ROLE, TENANT_SETTING, TenantStores
from tests.conftest import Cast, add_webdav_rows, drive_owner, sign_in_to_web
from tests.security.database import (
    build_export,
    invite_guest,
    record_audit_event,
    share_by_link,
    share_with_group,
    start_upload,
    subscribe_webhook,
)

ONLY_POSTGRES = pytest.mark.parametrize("level", ["postgres-shared"], indirect=True)

SCOPED = {"tenant_scoped": True}


def store_file(runtime: Runtime, tenant: TenantInfo, path: str, data: bytes) -> None:
    names = split_path(path)
    owner = drive_owner(runtime, tenant)
    upload = transfers.begin_upload(runtime, tenant, owner, names, Preconditions(), len(data))
    upload.feed(data)
    transfers.commit_upload(runtime, tenant, owner, names, upload, owner, Preconditions())


@pytest.fixture
def filled(runtime: Runtime, cast: Cast) -> Cast:
    """The cast with rows of both tenants in every tenant table.

    Each tenant gets a file, an unfinished upload, a group, a share, a link, an upload
    request, a webhook with a delivery, a guest, WebDAV and web UI rows, an audit event and
    a ready export.

    Each tenant gets one file in one folder, so that renaming all of a tenant's
    nodes to one name breaks no unique index.
    """
    store_file(runtime, cast.acme, "docs/acme.txt", b"acme's plans")
    store_file(runtime, cast.globex, "docs/globex.txt", b"globex's plans")
    for member in (cast.acme_admin, cast.globex_admin):
        sign_in_to_web(runtime, member.tenant, member.user_id)
    start_upload(runtime, cast.acme, cast.acme_member.user_id)
    start_upload(runtime, cast.globex, cast.globex_member.user_id)
    add_webdav_rows(runtime, cast.acme_member, "docs/acme.txt")
    add_webdav_rows(runtime, cast.globex_member, "docs/globex.txt")
    share_with_group(runtime, cast.acme, cast.acme_admin.user_id)
    share_with_group(runtime, cast.globex, cast.globex_admin.user_id)
    share_by_link(runtime, cast.acme, "docs/acme.txt")
    share_by_link(runtime, cast.globex, "docs/globex.txt")
    subscribe_webhook(runtime, cast.acme)
    subscribe_webhook(runtime, cast.globex)
    record_audit_event(runtime, cast.acme, cast.acme_admin.user_id)
    record_audit_event(runtime, cast.globex, cast.globex_admin.user_id)
    invite_guest(runtime, cast.acme, cast.acme_admin.user_id)
    invite_guest(runtime, cast.globex, cast.globex_admin.user_id)
    build_export(runtime, cast.acme, cast.acme_admin.user_id)
    build_export(runtime, cast.globex, cast.globex_admin.user_id)
    return cast


def rows_of(runtime: Runtime, tenant: TenantInfo, model: type) -> list:
    with runtime.stores.session(tenant) as session:
        return list(session.scalars(select(model)))


def unbound_session(runtime: Runtime) -> TenantSession:
    return TenantSession(bind=runtime.engine, tenant_id=None)


# A session without a tenant ------------------------------------------------------------


def test_unbound_session_select_raises(runtime: Runtime) -> None:
    with unbound_session(runtime) as session, pytest.raises(MissingTenantContext):
        session.execute(select(NodeRow))


def test_unbound_session_get_raises(runtime: Runtime, cast: Cast) -> None:
    with unbound_session(runtime) as session, pytest.raises(MissingTenantContext):
        session.get(UserRow, (cast.acme.id, cast.acme_admin.user_id))


def test_unbound_session_update_raises(runtime: Runtime) -> None:
    with unbound_session(runtime) as session, pytest.raises(MissingTenantContext):
        session.execute(update(NodeRow).values(name="x"))


def test_unbound_session_delete_raises(runtime: Runtime) -> None:
    with unbound_session(runtime) as session, pytest.raises(MissingTenantContext):
        session.execute(delete(NodeRow))


def test_unbound_session_flush_new_row_raises(runtime: Runtime) -> None:
    with unbound_session(runtime) as session:
        session.add(NodeRow(id=uuid.uuid4(), parent_id=None, name="", kind=FOLDER))

        with pytest.raises(MissingTenantContext):
            session.flush()


def test_unbound_session_scoped_text_raises(runtime: Runtime) -> None:
    with unbound_session(runtime) as session, pytest.raises(MissingTenantContext):
        session.execute(text("SELECT count(*) FROM nodes").execution_options(**SCOPED))


def test_stores_session_without_tenant_raises(runtime: Runtime) -> None:
    assert current_tenant.get() is None

    with pytest.raises(MissingTenantContext), runtime.stores.session():
        pass


# Statements the tenant filter cannot reach -------------------------------------------


def test_raw_text_without_option_raises(runtime: Runtime, cast: Cast) -> None:
    with runtime.stores.session(cast.acme) as session, pytest.raises(MissingTenantContext):
        session.execute(text("SELECT count(*) FROM users"))


def test_raw_text_with_option_runs(runtime: Runtime, cast: Cast) -> None:
    query = text("SELECT count(*) FROM users WHERE tenant_id = :tenant").bindparams(
        bindparam("tenant", type_=Uuid)
    )

    with runtime.stores.session(cast.acme) as session:
        count = session.scalar(query.execution_options(**SCOPED), {"tenant": cast.acme.id})

    assert count == 2


def test_core_select_on_table_raises(runtime: Runtime, cast: Cast) -> None:
    # A Table, unlike its mapped class, gets no loader criteria, so it would read every tenant.
    with runtime.stores.session(cast.acme) as session, pytest.raises(MissingTenantContext):
        session.execute(select(UserRow.__table__))


def test_core_update_on_table_raises(runtime: Runtime, cast: Cast) -> None:
    with runtime.stores.session(cast.acme, write=True) as session:
        with pytest.raises(MissingTenantContext):
            session.execute(update(UserRow.__table__).values(display_name="x"))

    assert [user.display_name for user in rows_of(runtime, cast.globex, UserRow)] == ["", ""]


def test_from_statement_text_raises(runtime: Runtime, cast: Cast) -> None:
    query = select(UserRow).from_statement(text("SELECT * FROM users"))

    with runtime.stores.session(cast.acme) as session, pytest.raises(MissingTenantContext):
        session.execute(query)


def test_bulk_insert_raises(runtime: Runtime, cast: Cast) -> None:
    planted = {
        "tenant_id": cast.globex.id,
        "id": uuid.uuid4(),
        "email": "planted@globex.test",
        "display_name": "",
        "role": "admin",
        "password_hash": None,
        "status": "active",
    }

    with runtime.stores.session(cast.acme, write=True) as session:
        with pytest.raises(MissingTenantContext):
            session.execute(insert(UserRow), [planted])

    emails = [user.email for user in rows_of(runtime, cast.globex, UserRow)]
    assert "planted@globex.test" not in emails


def test_bulk_update_by_primary_key_raises(runtime: Runtime, cast: Cast) -> None:
    victim = cast.globex_member
    promotion = {"tenant_id": cast.globex.id, "id": victim.user_id, "role": "admin"}

    with runtime.stores.session(cast.acme, write=True) as session:
        with pytest.raises(MissingTenantContext):
            session.execute(update(UserRow), [promotion])

    roles = {user.id: user.role for user in rows_of(runtime, cast.globex, UserRow)}
    assert roles[victim.user_id] == "member"


def test_update_setting_tenant_id_raises(runtime: Runtime, cast: Cast) -> None:
    with runtime.stores.session(cast.acme, write=True) as session:
        with pytest.raises(MissingTenantContext):
            session.execute(update(UserRow).values(tenant_id=cast.globex.id))

    assert len(rows_of(runtime, cast.acme, UserRow)) == 2
    assert len(rows_of(runtime, cast.globex, UserRow)) == 2


# A session bound to one tenant --------------------------------------------------------


def test_bound_select_sees_own_rows(runtime: Runtime, filled: Cast) -> None:
    with runtime.stores.session(filled.acme) as session:
        tenants = {node.tenant_id for node in session.scalars(select(NodeRow))}
        names = {node.name for node in session.scalars(select(NodeRow))}

    assert tenants == {filled.acme.id}
    assert names == {"", "docs", "acme.txt"}


def test_bound_count_sees_own_rows(runtime: Runtime, filled: Cast) -> None:
    with runtime.stores.session(filled.acme) as session:
        count = session.scalar(select(func.count()).select_from(VersionRow))

    assert count == 1


def test_bound_bulk_update_spares_other_tenant(runtime: Runtime, filled: Cast) -> None:
    before = {node.id: node.name for node in rows_of(runtime, filled.globex, NodeRow)}

    with runtime.stores.session(filled.acme, write=True) as session:
        changed = session.execute(update(NodeRow).values(name="x")).rowcount

    assert changed == 3
    assert {node.name for node in rows_of(runtime, filled.acme, NodeRow)} == {"x"}
    assert {node.id: node.name for node in rows_of(runtime, filled.globex, NodeRow)} == before


def test_bound_bulk_delete_spares_other_tenant(runtime: Runtime, filled: Cast) -> None:
    before = {token.id for token in rows_of(runtime, filled.globex, TokenRow)}

    with runtime.stores.session(filled.acme, write=True) as session:
        deleted = session.execute(delete(TokenRow)).rowcount

    assert deleted == 2
    assert rows_of(runtime, filled.acme, TokenRow) == []
    assert {token.id for token in rows_of(runtime, filled.globex, TokenRow)} == before


def test_bound_get_by_other_key_is_none(runtime: Runtime, cast: Cast) -> None:
    with runtime.stores.session(cast.acme) as session:
        found = session.get(UserRow, (cast.globex.id, cast.globex_member.user_id))

    assert found is None


def test_add_other_tenant_row_raises(runtime: Runtime, cast: Cast) -> None:
    before = {node.id for node in rows_of(runtime, cast.globex, NodeRow)}
    stranger = NodeRow(
        tenant_id=cast.globex.id, id=uuid.uuid4(), parent_id=None, name="", kind=FOLDER
    )

    with pytest.raises(MissingTenantContext):
        with runtime.stores.session(cast.acme, write=True) as session:
            session.add(stranger)
            session.flush()

    assert {node.id for node in rows_of(runtime, cast.globex, NodeRow)} == before


def test_moving_loaded_row_raises(runtime: Runtime, cast: Cast) -> None:
    with pytest.raises(MissingTenantContext):
        with runtime.stores.session(cast.acme, write=True) as session:
            user = session.scalars(select(UserRow)).first()
            user.tenant_id = cast.globex.id
            session.flush()

    assert len(rows_of(runtime, cast.globex, UserRow)) == 2


def test_thread_with_context_sees_tenant(runtime: Runtime, cast: Cast) -> None:
    context_left = threading.Event()
    seen: dict[str, object] = {}

    def work() -> None:
        # Runs after the caller has left bound_tenant, so only a copied context can work.
        context_left.wait(timeout=10)
        seen["tenant"] = current_tenant.get()
        with runtime.stores.session() as session:
            seen["emails"] = [user.email for user in list_users(session)]

    with bound_tenant(cast.acme):
        thread = start_thread_with_context(work)
    context_left.set()
    thread.join(timeout=10)

    assert seen["tenant"] == cast.acme
    assert seen["emails"] == ["admin@acme.test", "member@acme.test"]


def test_plain_thread_session_raises(runtime: Runtime, cast: Cast) -> None:
    errors: list[BaseException] = []

    def work() -> None:
        try:
            with runtime.stores.session():
                pass
        except MissingTenantContext as exc:
            errors.append(exc)

    with bound_tenant(cast.acme):
        thread = threading.Thread(target=work)
        thread.start()
        thread.join(timeout=10)

    assert len(errors) == 1


# Row-level security on PostgreSQL -------------------------------------------------------


def tenant_table_names(connection) -> list[str]:
    """List every table in the current schema with a `tenant_id` column, except catalog tables.

    The catalog's `tenant_keys` has a `tenant_id` too, but it belongs to the
    platform. The keyring reads it outside any tenant transaction, and the
    tenant role has no grant on it, which a test below checks.
    """
    names = connection.scalars(
        text(
            """
            SELECT c.relname FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_attribute a ON a.attrelid = c.oid
            WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
              AND a.attname = 'tenant_id' AND NOT a.attisdropped
            ORDER BY c.relname
            """
        )
    )
    return [name for name in names if name not in CatalogBase.metadata.tables]


@pytest.fixture
def plain_engine(runtime: Runtime) -> Iterator[Engine]:
    """Open an engine on the plain database URL, outside `TenantStores`, with no pool."""
    engine = create_engine(runtime.settings.resolved_database_url, poolclass=NullPool)
    try:
        yield engine
    finally:
        engine.dispose()


def tenants_per_table(connection, tables: list[str]) -> dict[str, set[uuid.UUID]]:
    return {
        table: set(connection.scalars(text(f"SELECT DISTINCT tenant_id FROM {table}")))
        for table in tables
    }


@ONLY_POSTGRES
def test_tenant_tables_have_rows_of_both(plain_engine: Engine, filled: Cast) -> None:
    # The login role of the test server is a superuser, which bypasses row-level security.
    # This baseline makes the empty results of the tests below mean something.
    with plain_engine.connect() as connection:
        tables = tenant_table_names(connection)
        seen = tenants_per_table(connection, tables)

    assert set(TenantBase.metadata.tables) <= set(tables)
    for table in tables:
        assert seen[table] == {filled.acme.id, filled.globex.id}, table


@ONLY_POSTGRES
def test_tenant_role_without_setting_sees_nothing(plain_engine: Engine, filled: Cast) -> None:
    with plain_engine.connect() as connection:
        tables = tenant_table_names(connection)
        connection.execute(text(f"SET ROLE {TENANT_ROLE}"))

        seen = tenants_per_table(connection, tables)

    for table in tables:
        assert seen[table] == set(), table


@ONLY_POSTGRES
def test_tenant_role_with_setting_sees_one(plain_engine: Engine, filled: Cast) -> None:
    with plain_engine.connect() as connection:
        tables = tenant_table_names(connection)
        connection.execute(text(f"SET ROLE {TENANT_ROLE}"))
        connection.execute(
            text("SELECT set_config(:name, :tenant, true)"),
            {"name": TENANT_SETTING, "tenant": str(filled.acme.id)},
        )

        seen = tenants_per_table(connection, tables)

    for table in tables:
        assert seen[table] == {filled.acme.id}, table


def enter_as(connection, tenant: TenantInfo) -> None:
    connection.execute(text(f"SET ROLE {TENANT_ROLE}"))
    connection.execute(
        text("SELECT set_config(:name, :tenant, true)"),
        {"name": TENANT_SETTING, "tenant": str(tenant.id)},
    )


@ONLY_POSTGRES
def test_tenant_role_insert_for_other_fails(plain_engine: Engine, filled: Cast) -> None:
    planted = text(
        "INSERT INTO blobs (tenant_id, id, size, stored_size, chunk_size, key_version, "
        "wrapped_key, created_at) VALUES (:tenant, :id, 0, 0, 1, 1, '\\x00', now())"
    )

    with plain_engine.connect() as connection:
        enter_as(connection, filled.acme)
        with pytest.raises(ProgrammingError) as raised:
            connection.execute(planted, {"tenant": filled.globex.id, "id": uuid.uuid4()})

    assert raised.value.orig.sqlstate == "42501"
    assert "row-level security" in str(raised.value.orig)


@ONLY_POSTGRES
def test_tenant_role_update_other_changes_nothing(plain_engine: Engine, filled: Cast) -> None:
    with plain_engine.connect() as connection:
        enter_as(connection, filled.acme)

        changed = connection.execute(
            text("UPDATE users SET role = 'member' WHERE tenant_id = :tenant"),
            {"tenant": filled.globex.id},
        ).rowcount

    assert changed == 0


@ONLY_POSTGRES
def test_tenant_role_moving_row_fails(plain_engine: Engine, filled: Cast) -> None:
    with plain_engine.connect() as connection:
        enter_as(connection, filled.acme)
        with pytest.raises(ProgrammingError) as raised:
            connection.execute(
                text("UPDATE users SET tenant_id = :other"), {"other": filled.globex.id}
            )

    assert raised.value.orig.sqlstate == "42501"


@ONLY_POSTGRES
def test_tenant_role_cannot_read_catalog(plain_engine: Engine, filled: Cast) -> None:
    for table in CatalogBase.metadata.tables:
        with plain_engine.connect() as connection:
            enter_as(connection, filled.acme)
            with pytest.raises(ProgrammingError) as raised:
                connection.execute(text(f"SELECT count(*) FROM {table}"))

        assert raised.value.orig.sqlstate == "42501", table


@ONLY_POSTGRES
def test_tenant_tables_force_row_security(plain_engine: Engine) -> None:
    with plain_engine.connect() as connection:
        tables = tenant_table_names(connection)
        flags = {
            name: (enabled, forced)
            for name, enabled, forced in connection.execute(
                text(
                    "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
                    "WHERE relnamespace = current_schema()::regnamespace"
                )
            )
        }

    assert tables
    for table in tables:
        assert flags[table] == (True, True), table


@ONLY_POSTGRES
def test_tenant_role_is_unprivileged(plain_engine: Engine) -> None:
    with plain_engine.connect() as connection:
        role = connection.execute(
            text("SELECT rolbypassrls, rolsuper FROM pg_roles WHERE rolname = :role"),
            {"role": TENANT_ROLE},
        ).one()
        owned = connection.scalar(
            text(
                "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner "
                "WHERE r.rolname = :role"
            ),
            {"role": TENANT_ROLE},
        )

    assert role.rolbypassrls is False
    assert role.rolsuper is False
    assert owned == 0


@ONLY_POSTGRES
def test_tenant_setting_ends_with_transaction(runtime: Runtime, cast: Cast) -> None:
    # One pooled connection, so the next checkout is the connection the session used.
    engine = make_engine(runtime.settings.resolved_database_url, pool_size=1)
    stores = TenantStores(engine)
    probe = text(
        f"SELECT current_setting('{TENANT_SETTING}', true), current_user, session_user"
    )
    try:
        with stores.session(cast.acme) as session:
            scoped = session.connection(execution_options={"tenant_scoped": True})
            used = scoped.connection.dbapi_connection
            inside = session.execute(probe.execution_options(**SCOPED)).one()

        with engine.connect() as connection:
            reused = connection.connection.dbapi_connection
            after = connection.execute(probe).one()
    finally:
        engine.dispose()

    assert inside[0] == str(cast.acme.id)
    assert inside[1] == TENANT_ROLE
    assert reused is used
    assert after[0] in ("", None)
    assert after[1] == after[2]


@ONLY_POSTGRES
def test_savepoint_rollback_restores_setting(runtime: Runtime, filled: Cast) -> None:
    set_tenant = text(f"SELECT set_config('{TENANT_SETTING}', :tenant, true)")
    probe = text(f"SELECT current_setting('{TENANT_SETTING}', true)")
    tenants_of_nodes = text("SELECT DISTINCT tenant_id FROM nodes")

    with runtime.stores.session(filled.acme) as session:
        savepoint = session.begin_nested()
        session.execute(set_tenant.execution_options(**SCOPED), {"tenant": str(filled.globex.id)})
        inside = session.scalar(probe.execution_options(**SCOPED))
        savepoint.rollback()
        after = session.scalar(probe.execution_options(**SCOPED))
        visible = set(session.scalars(tenants_of_nodes.execution_options(**SCOPED)))

    assert inside == str(filled.globex.id)
    assert after == str(filled.acme.id)
    assert visible == {filled.acme.id}


# Keys of the tenant tables ------------------------------------------------------------


@dataclass(frozen=True)
class TableKeys:
    table: str
    primary_key: list[str]
    unique: list[list[str]]
    foreign: list[tuple[list[str], list[str]]]
    indexes: list[list[str]]  # every index, unique or not


def keys_from_metadata() -> list[TableKeys]:
    shapes = []
    for table in TenantBase.metadata.sorted_tables:
        unique = [
            [column.name for column in constraint.columns]
            for constraint in table.constraints
            if constraint.__visit_name__ == "unique_constraint"
        ]
        unique += [
            [column.name for column in index.columns] for index in table.indexes if index.unique
        ]
        foreign = [
            (
                [element.parent.name for element in constraint.elements],
                [element.column.name for element in constraint.elements],
            )
            for constraint in table.foreign_key_constraints
        ]
        primary_key = [column.name for column in table.primary_key.columns]
        indexes = [[column.name for column in index.columns] for index in table.indexes]
        shapes.append(TableKeys(table.name, primary_key, unique, foreign, indexes))
    return shapes


def keys_from_database(engine: Engine) -> list[TableKeys]:
    inspector = inspect(engine)
    shapes = []
    for table in inspector.get_table_names():
        columns = {column["name"] for column in inspector.get_columns(table)}
        if "tenant_id" not in columns or table in CatalogBase.metadata.tables:
            continue
        unique = [c["column_names"] for c in inspector.get_unique_constraints(table)]
        unique += [i["column_names"] for i in inspector.get_indexes(table) if i["unique"]]
        foreign = [
            (fk["constrained_columns"], fk["referred_columns"])
            for fk in inspector.get_foreign_keys(table)
        ]
        primary_key = inspector.get_pk_constraint(table)["constrained_columns"]
        indexes = [index["column_names"] for index in inspector.get_indexes(table)]
        shapes.append(TableKeys(table, primary_key, unique, foreign, indexes))
    return shapes


@pytest.fixture(params=["metadata", "database"])
def table_keys(request: pytest.FixtureRequest, runtime: Runtime) -> list[TableKeys]:
    if request.param == "metadata":
        return keys_from_metadata()
    return keys_from_database(runtime.engine)


def test_tenant_tables_match_metadata(table_keys: list[TableKeys]) -> None:
    assert {keys.table for keys in table_keys} == set(TenantBase.metadata.tables)


def test_primary_keys_start_with_tenant(table_keys: list[TableKeys]) -> None:
    for keys in table_keys:
        assert keys.primary_key[:1] == ["tenant_id"], keys.table


def test_unique_keys_include_tenant(table_keys: list[TableKeys]) -> None:
    checked = 0

    for keys in table_keys:
        for columns in keys.unique:
            checked += 1
            assert "tenant_id" in columns, f"{keys.table} unique {columns}"

    assert checked >= 4


def test_foreign_keys_include_tenant(table_keys: list[TableKeys]) -> None:
    checked = 0

    for keys in table_keys:
        for local, remote in keys.foreign:
            checked += 1
            assert "tenant_id" in local, f"{keys.table} foreign key {local}"
            pairs = dict(zip(local, remote, strict=True))
            assert pairs["tenant_id"] == "tenant_id", f"{keys.table} foreign key {local}"

    assert checked >= 4


def test_foreign_keys_lead_with_tenant(table_keys: list[TableKeys]) -> None:
    # Leading on both sides, so the referenced primary key (tenant_id first) serves the check.
    checked = 0

    for keys in table_keys:
        for local, remote in keys.foreign:
            checked += 1
            assert local[:1] == ["tenant_id"], f"{keys.table} foreign key {local}"
            assert remote[:1] == ["tenant_id"], f"{keys.table} foreign key to {remote}"

    assert checked >= 4


def test_indexes_include_tenant(table_keys: list[TableKeys]) -> None:
    # Every index, not only unique ones: an index without tenant_id makes a query of one
    # tenant read through the entries of all the others.
    checked = 0

    for keys in table_keys:
        for columns in keys.indexes:
            checked += 1
            assert "tenant_id" in columns, f"{keys.table} index {columns}"

    assert checked >= 4
