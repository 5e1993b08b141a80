"""Row-level security on PostgreSQL, attacked where such systems are known to leak.

- A tenant setting that outlives its transaction or a rolled-back savepoint:
  random sequences of transactions, savepoints, tenant switches, rollbacks and
  releases on one connection, checked against a model after every step.
- A table or view without row security: every tenant table must enable and
  force it, with a policy on the tenant setting, and no view or materialized
  view may read a tenant table with its owner's rights.
- A role that bypasses it: the tenant role is no superuser, has no BYPASSRLS,
  cannot log in, inherits neither, owns nothing, may not truncate, and the
  schema has no SECURITY DEFINER function it could call.

A pooled connection reused by the next tenant is attacked on every backend in
test_pooled_connections.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection, NestedTransaction, Transaction

from strongroom.tenancy.isolation import TENANT_ROLE, TENANT_SETTING, enter_tenant
from tests.conftest import Cast
from tests.security.conftest import ONLY_POSTGRES, PROPERTY_SETTINGS
from tests.security.database import enter_role, tenant_tables
from tests.security.tally import Tally

FAMILY = "row security"

pytestmark = ONLY_POSTGRES


@pytest.fixture
def connection(plain_engine: Engine) -> Iterator[Connection]:
    with plain_engine.connect() as connection:
        yield connection


# Settings that outlive a transaction or savepoint ---------------------------------------

STEPS = ["begin", "savepoint", "enter acme", "enter globex", "roll back savepoint",
         "release savepoint", "commit", "roll back"]  # fmt: skip


class SettingModel:
    """What the tenant setting must be after each step, by the rules of PostgreSQL.

    `set_config(..., true)` lasts until the end of the transaction. Rolling a
    savepoint back restores the value from before it, releasing it keeps the
    current one, and commit and rollback clear it.
    """

    def __init__(self) -> None:
        self.transaction: Transaction | None = None
        self.savepoints: list[tuple[NestedTransaction, uuid.UUID | None]] = []
        self.tenant: uuid.UUID | None = None

    def apply(self, connection: Connection, step: str, tenants: dict[str, uuid.UUID]) -> bool:
        """Run the step if it can run now and update the model; return whether it ran."""
        if step == "begin" and self.transaction is None:
            self.transaction = connection.begin()
        elif self.transaction is None:
            return False
        elif step == "savepoint":
            self.savepoints.append((connection.begin_nested(), self.tenant))
        elif step.startswith("enter "):
            self.tenant = tenants[step.removeprefix("enter ")]
            enter_tenant(connection, self.tenant)
        elif step in ("roll back savepoint", "release savepoint") and self.savepoints:
            savepoint, before = self.savepoints.pop()
            if step == "roll back savepoint":
                savepoint.rollback()
                self.tenant = before
            else:
                savepoint.commit()
        elif step in ("commit", "roll back"):
            self.transaction.commit() if step == "commit" else self.transaction.rollback()
            self.transaction, self.savepoints, self.tenant = None, [], None
        else:
            return False
        return True


@PROPERTY_SETTINGS
@given(steps=st.lists(st.sampled_from(STEPS), min_size=2, max_size=16).map(lambda s: ["begin", *s]))
def test_tenant_setting_follows_transactions(
    steps: list[str], connection: Connection, stocked: Cast, tally: Tally, where: str
) -> None:
    tenants = {"acme": stocked.acme.id, "globex": stocked.globex.id}
    model = SettingModel()
    probe = text(f"SELECT current_setting('{TENANT_SETTING}', true), current_user, session_user")
    mismatches = []

    try:
        for step in steps:
            if not model.apply(connection, step, tenants):
                continue
            tally.attempt(FAMILY, where)
            if model.transaction is None:
                continue
            setting, role, login = connection.execute(probe).one()
            visible = set(connection.scalars(text("SELECT DISTINCT tenant_id FROM nodes")))
            expected_visible = {model.tenant} if model.tenant else set(tenants.values())
            if (setting or None) != (str(model.tenant) if model.tenant else None):
                mismatches.append(f"after {step}: setting {setting!r}, model {model.tenant}")
            if role != (TENANT_ROLE if model.tenant else login):
                mismatches.append(f"after {step}: role {role}")
            if visible != expected_visible:
                mismatches.append(f"after {step}: rows of {visible}")
    finally:
        if model.transaction is not None:
            model.transaction.rollback()
    with connection.begin():
        after = connection.execute(probe).one()
    if mismatches:
        tally.leak(FAMILY, where)

    assert mismatches == []
    assert (after[0] or None) is None
    assert after[1] == after[2]


# Tables and views without row security --------------------------------------------------


def row_security_gaps(connection: Connection) -> list[str]:
    """Describe every tenant table without forced row security on the tenant setting,
    and every view or materialized view that reads a tenant table with its owner's rights."""
    tables = tenant_tables(connection)
    gaps = []
    flags = dict(
        connection.execute(
            text(
                "SELECT relname, (relrowsecurity, relforcerowsecurity) FROM pg_class "
                "WHERE relnamespace = current_schema()::regnamespace AND relname = ANY(:tables)"
            ),
            {"tables": tables},
        ).all()
    )
    for table in tables:
        enabled, forced = flags[table]
        if not enabled:
            gaps.append(f"{table}: row security is not enabled")
        if not forced:
            gaps.append(f"{table}: row security is not forced, so the table owner bypasses it")
        gaps += [f"{table}: {gap}" for gap in policy_gaps(connection, table)]
    return gaps + view_gaps(connection, tables)


def policy_gaps(connection: Connection, table: str) -> list[str]:
    policies = connection.execute(
        text(
            "SELECT policyname, permissive, cmd, qual, with_check FROM pg_policies "
            "WHERE schemaname = current_schema() AND tablename = :table"
        ),
        {"table": table},
    ).all()
    if not policies:
        return ["no policy, so forced row security shows no rows at all"]
    gaps = []
    for name, permissive, command, using, check in policies:
        # Permissive policies are joined with OR, so one that ignores the setting opens the table.
        if permissive == "PERMISSIVE" and TENANT_SETTING not in (using or ""):
            gaps.append(f"policy {name} reads rows without the tenant setting")
        if command in ("ALL", "INSERT", "UPDATE") and TENANT_SETTING not in (check or using or ""):
            gaps.append(f"policy {name} writes rows without the tenant setting")
    return gaps


def view_gaps(connection: Connection, tables: list[str]) -> list[str]:
    views = connection.execute(
        text(
            """
            SELECT DISTINCT v.relname, v.relkind, coalesce(v.reloptions, '{}')
            FROM pg_depend d
            JOIN pg_rewrite r ON r.oid = d.objid
            JOIN pg_class v ON v.oid = r.ev_class
            JOIN pg_class t ON t.oid = d.refobjid
            WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
              AND t.relnamespace = current_schema()::regnamespace AND t.relname = ANY(:tables)
              AND v.oid <> t.oid
            """
        ),
        {"tables": tables},
    ).all()
    gaps = []
    for name, kind, options in views:
        if kind == "m":
            gaps.append(f"{name}: a materialized view copies tenant rows out of row security")
        elif "security_invoker=true" not in options:
            gaps.append(f"{name}: a view without security_invoker reads with its owner's rights")
    return gaps


def test_tenant_tables_have_no_gaps(connection: Connection, tally: Tally, where: str) -> None:
    with connection.begin():
        tally.attempt(FAMILY, where, len(tenant_tables(connection)))
        gaps = row_security_gaps(connection)

    assert gaps == []


@pytest.mark.parametrize(
    ("statement", "culprit"),
    [
        ("CREATE TABLE probe_notes (tenant_id uuid, note text)", "probe_notes"),
        ("CREATE VIEW probe_view AS SELECT tenant_id, name FROM nodes", "probe_view"),
        (
            "CREATE VIEW probe_view WITH (security_barrier) AS SELECT tenant_id FROM nodes",
            "probe_view",
        ),
        ("CREATE MATERIALIZED VIEW probe_copy AS SELECT tenant_id FROM nodes", "probe_copy"),
        ("CREATE POLICY probe_open ON nodes USING (true)", "probe_open"),
    ],
    ids=["table", "view", "barrier view", "materialized view", "open policy"],
)
def test_gap_check_finds_planted_gap(connection: Connection, statement: str, culprit: str) -> None:
    # The schema change is rolled back, so the shared test database keeps its schema.
    with connection.begin() as transaction:
        connection.execute(text(statement))
        gaps = row_security_gaps(connection)
        transaction.rollback()

    assert any(culprit in gap for gap in gaps), gaps


def test_gap_check_accepts_invoker_view(connection: Connection) -> None:
    with connection.begin() as transaction:
        connection.execute(
            text("CREATE VIEW probe_view WITH (security_invoker = true) AS SELECT * FROM nodes")
        )
        gaps = row_security_gaps(connection)
        transaction.rollback()

    assert gaps == []


def test_barrier_view_reads_as_owner(connection: Connection, stocked: Cast) -> None:
    # Why the check above requires security_invoker: security_barrier only stops leaky
    # functions from seeing rows early. The view still reads with the rights of its
    # owner, here the superuser, so the tenant role sees every tenant through it.
    with connection.begin() as transaction:
        connection.execute(
            text("CREATE VIEW probe_view WITH (security_barrier) AS SELECT tenant_id FROM nodes")
        )
        connection.execute(text(f"GRANT SELECT ON probe_view TO {TENANT_ROLE}"))
        enter_role(connection, str(stocked.acme.id))
        seen = set(connection.scalars(text("SELECT DISTINCT tenant_id FROM probe_view")))
        transaction.rollback()

    assert seen == {stocked.acme.id, stocked.globex.id}


# A role that bypasses row security ------------------------------------------------------


def role_flags(connection: Connection) -> dict[str, bool]:
    row = (
        connection.execute(
            text(
                "SELECT rolsuper, rolbypassrls, rolcanlogin, rolcreaterole, rolcreatedb "
                "FROM pg_roles WHERE rolname = :role"
            ),
            {"role": TENANT_ROLE},
        )
        .mappings()
        .one()
    )
    return dict(row)


def test_tenant_role_has_no_privilege(connection: Connection) -> None:
    with connection.begin():
        flags = role_flags(connection)

    assert flags == {
        "rolsuper": False,
        "rolbypassrls": False,
        "rolcanlogin": False,
        "rolcreaterole": False,
        "rolcreatedb": False,
    }


def test_tenant_role_inherits_no_bypass(connection: Connection) -> None:
    with connection.begin():
        powerful = connection.scalars(
            text(
                "SELECT rolname FROM pg_roles WHERE (rolsuper OR rolbypassrls) "
                "AND pg_has_role(:role, oid, 'MEMBER')"
            ),
            {"role": TENANT_ROLE},
        ).all()

    assert powerful == []


def test_tenant_role_owns_nothing(connection: Connection) -> None:
    with connection.begin():
        owned = connection.scalars(
            text(
                """
                SELECT relname FROM pg_class WHERE relowner = to_regrole(:role)
                UNION ALL SELECT nspname FROM pg_namespace WHERE nspowner = to_regrole(:role)
                UNION ALL SELECT proname FROM pg_proc WHERE proowner = to_regrole(:role)
                """
            ),
            {"role": TENANT_ROLE},
        ).all()

    assert owned == []


@pytest.mark.parametrize("privilege", ["TRUNCATE", "REFERENCES", "TRIGGER"])
def test_tenant_role_lacks_table_privilege(connection: Connection, privilege: str) -> None:
    # TRUNCATE empties a table without looking at row security at all.
    with connection.begin():
        tables = tenant_tables(connection)
        granted = [
            table
            for table in tables
            if connection.scalar(
                text("SELECT has_table_privilege(:role, :table, :privilege)"),
                {"role": TENANT_ROLE, "table": table, "privilege": privilege},
            )
        ]

    assert tables
    assert granted == []


def test_tenant_role_cannot_create_objects(connection: Connection) -> None:
    # An object the tenant role created would be its own, and could be a view over others.
    with connection.begin():
        can_create = connection.scalar(
            text("SELECT has_schema_privilege(:role, current_schema(), 'CREATE')"),
            {"role": TENANT_ROLE},
        )

    assert can_create is False


def test_no_security_definer_function(connection: Connection) -> None:
    # A SECURITY DEFINER function runs as its owner, who may bypass row security.
    with connection.begin():
        callable_as_definer = connection.scalars(
            text(
                """
                SELECT p.proname FROM pg_proc p
                JOIN pg_namespace n ON n.oid = p.pronamespace
                WHERE p.prosecdef AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                  AND has_function_privilege(:role, p.oid, 'EXECUTE')
                """
            ),
            {"role": TENANT_ROLE},
        ).all()

    assert callable_as_definer == []
