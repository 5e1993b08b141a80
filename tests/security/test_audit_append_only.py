"""The audit trail is append-only for the application, on every isolation level.

On PostgreSQL the tenant role may read and add audit events but neither
update nor delete them. Only the audit purge role deletes them, and only for
the tenant of the transaction, for the three paths that must: retention,
removing a tenant's store, and a move. Those paths are exercised here on
every level, SQLite included, where no role exists and they simply work.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import DBAPIError

from strongroom.base.errors import InvalidInput
from strongroom.drive.models import NodeRow
from strongroom.runtime import Runtime
from strongroom.tenancy.audit_retention import expire_audit_events, schedule_audit_expiry
from strongroom.tenancy.configuration import update_settings
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.events import OPERATOR, AuditEventRow, Target, add_event
from strongroom.tenancy.isolation import AUDIT_PURGE_ROLE, SHARED, rights_to_delete
from strongroom.tenancy.models import utcnow
from tests.conftest import LEVELS, Cast, Level
from tests.security.database import INSUFFICIENT_PRIVILEGE

NOW = utcnow()


def write_event(runtime: Runtime, tenant: TenantInfo, age_days: float = 0) -> uuid.UUID:
    """Add a settings event to the tenant's trail, dated `age_days` ago; return its id."""
    with runtime.stores.session(tenant, write=True) as session:
        row = add_event(session, tenant, "settings_changed", OPERATOR, target=Target("tenant", tenant.id))
        # Set before the flush, so the row is inserted with this time and never updated.
        row.occurred_at = NOW - dt.timedelta(days=age_days)
        session.flush()
        return row.id


def event_ids(runtime: Runtime, tenant: TenantInfo) -> set[uuid.UUID]:
    with runtime.stores.session(tenant) as session:
        return set(session.scalars(select(AuditEventRow.id)))


# Roles and grants exist on PostgreSQL only.
POSTGRES_LEVELS = [name for name, level in LEVELS.items() if level.backend == "postgres"]
on_postgres = pytest.mark.parametrize("level", POSTGRES_LEVELS, indirect=True)


def sqlstate(error: DBAPIError) -> str | None:
    return getattr(error.orig, "sqlstate", None)


# The tenant role ----------------------------------------------------------------------


@on_postgres
def test_tenant_role_cannot_update_events(runtime: Runtime, cast: Cast, level: Level) -> None:
    write_event(runtime, cast.acme)

    with pytest.raises(DBAPIError) as raised:
        with runtime.stores.session(cast.acme, write=True) as session:
            session.execute(update(AuditEventRow).values(actor="someone else"))

    assert sqlstate(raised.value) == INSUFFICIENT_PRIVILEGE
    with runtime.stores.session(cast.acme) as session:
        assert set(session.scalars(select(AuditEventRow.actor))) == {"operator"}


@on_postgres
def test_tenant_role_cannot_delete_events(runtime: Runtime, cast: Cast, level: Level) -> None:
    written = write_event(runtime, cast.acme)

    with pytest.raises(DBAPIError) as raised:
        with runtime.stores.session(cast.acme, write=True) as session:
            session.execute(delete(AuditEventRow))

    assert sqlstate(raised.value) == INSUFFICIENT_PRIVILEGE
    assert written in event_ids(runtime, cast.acme)


def test_tenant_role_still_adds_and_reads_events(runtime: Runtime, cast: Cast) -> None:
    written = write_event(runtime, cast.acme)

    assert written in event_ids(runtime, cast.acme)


# The purge role -----------------------------------------------------------------------


ROLE_FLAGS = ("rolsuper", "rolbypassrls", "rolcanlogin", "rolinherit", "rolcreaterole", "rolcreatedb")
OWNED_BY_ROLE = """
    SELECT count(*) FROM pg_class
    WHERE relowner = (SELECT oid FROM pg_roles WHERE rolname = :role)
"""


@on_postgres
def test_purge_role_has_no_privilege(runtime: Runtime, cast: Cast, level: Level) -> None:
    query = text(f"SELECT {', '.join(ROLE_FLAGS)} FROM pg_roles WHERE rolname = :role")

    with runtime.engine.connect() as connection:
        flags = connection.execute(query, {"role": AUDIT_PURGE_ROLE}).mappings().one()
        owned = connection.scalar(text(OWNED_BY_ROLE), {"role": AUDIT_PURGE_ROLE})

    assert dict(flags) == dict.fromkeys(ROLE_FLAGS, False)
    assert owned == 0


@on_postgres
def test_purge_role_deletes_only_own_tenant(runtime: Runtime, cast: Cast, level: Level) -> None:
    ours, theirs = write_event(runtime, cast.acme), write_event(runtime, cast.globex)

    # Raw SQL without a tenant filter: only row security keeps globex's events.
    with runtime.stores.session(cast.acme, write=True) as session:
        with rights_to_delete(session, AuditEventRow.__tablename__):
            statement = text("DELETE FROM audit_events")
            session.execute(statement, execution_options={"tenant_scoped": True})

    assert ours not in event_ids(runtime, cast.acme)
    assert theirs in event_ids(runtime, cast.globex)


@on_postgres
def test_purge_role_cannot_touch_other_tables(runtime: Runtime, cast: Cast, level: Level) -> None:

    with pytest.raises(DBAPIError) as raised:
        with runtime.stores.session(cast.acme, write=True) as session:
            with rights_to_delete(session, AuditEventRow.__tablename__):
                session.execute(delete(NodeRow))

    assert sqlstate(raised.value) == INSUFFICIENT_PRIVILEGE


@on_postgres
def test_purge_role_gone_after_the_block(runtime: Runtime, cast: Cast, level: Level) -> None:
    write_event(runtime, cast.acme)

    with pytest.raises(DBAPIError) as raised:
        with runtime.stores.session(cast.acme, write=True) as session:
            with rights_to_delete(session, AuditEventRow.__tablename__):
                pass
            session.execute(delete(AuditEventRow))

    assert sqlstate(raised.value) == INSUFFICIENT_PRIVILEGE


# Retention ----------------------------------------------------------------------------


def test_retention_deletes_only_old_events(runtime: Runtime, cast: Cast) -> None:
    old, recent = write_event(runtime, cast.acme, 400), write_event(runtime, cast.acme, 100)
    other_tenants_old = write_event(runtime, cast.globex, 400)
    acme = update_settings(
        runtime.catalog, runtime.stores, "acme", {"audit_retention_days": 365}, OPERATOR
    )

    deleted = expire_audit_events(runtime, acme)

    remaining = event_ids(runtime, acme)
    assert deleted == 1
    assert old not in remaining
    assert recent in remaining
    assert other_tenants_old in event_ids(runtime, cast.globex)


def test_retention_of_zero_keeps_everything(runtime: Runtime, cast: Cast) -> None:
    old = write_event(runtime, cast.acme, 4000)

    deleted = expire_audit_events(runtime, cast.acme)

    assert deleted == 0
    assert old in event_ids(runtime, cast.acme)


def test_retention_scheduled_only_where_set(
    runtime: Runtime, cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    update_settings(runtime.catalog, runtime.stores, "globex", {"audit_retention_days": 30}, OPERATOR)
    enqueued = []
    monkeypatch.setattr(
        runtime.jobs, "enqueue", lambda job, tenant_id: enqueued.append((job.name, tenant_id))
    )

    count = schedule_audit_expiry(runtime)

    assert count == 1
    assert enqueued == [("audit.expire", cast.globex.id)]


@pytest.mark.parametrize("days", [1, 29, -1, 36501])
def test_retention_setting_rejects_short_period(runtime: Runtime, cast: Cast, days: int) -> None:
    with pytest.raises(InvalidInput) as raised:
        update_settings(runtime.catalog, runtime.stores, "acme", {"audit_retention_days": days}, OPERATOR)

    assert "audit_retention_days" in raised.value.detail
    assert runtime.catalog.get_tenant("acme").settings.audit_retention_days == 0


# Removing a store ---------------------------------------------------------------------


def test_drop_store_removes_tenant_events(runtime: Runtime, cast: Cast) -> None:
    write_event(runtime, cast.acme)
    theirs = write_event(runtime, cast.globex)

    runtime.stores.drop_store(cast.acme)

    assert theirs in event_ids(runtime, cast.globex)
    if cast.acme.isolation == SHARED:
        with runtime.stores.session(cast.acme) as session:
            assert session.scalar(select(func.count()).select_from(AuditEventRow)) == 0
