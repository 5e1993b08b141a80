"""Database sessions and connections that never set a tenant.

On every backend a `TenantSession` without a tenant raises before it sends
any statement on a tenant table, for every mapped tenant table. On PostgreSQL
a connection in the `strongroom_tenant` role reads no row of any tenant table
and cannot insert one, whatever the tenant setting contains short of a
tenant's own id: unset, empty, a random UUID or any text.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, func, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from strongroom.base.errors import MissingTenantContext
from strongroom.runtime import Runtime
from strongroom.storage.db import TenantBase, TenantSession
from tests.conftest import Cast
from tests.security.conftest import ONLY_POSTGRES, PROPERTY_SETTINGS
from tests.security.database import (
    INSUFFICIENT_PRIVILEGE,
    INVALID_TEXT_REPRESENTATION,
    enter_role,
    insert_statement,
    sample_row,
    tenant_tables,
)
from tests.security.tally import Tally

FAMILY = "sessions without a tenant"

# Values of the tenant setting an attacker could leave behind: unset, empty, a UUID of no
# tenant, or any text. Text without NUL bytes, which PostgreSQL rejects in any setting.
SETTINGS = st.one_of(
    st.none(),
    st.just(""),
    st.uuids().map(str),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\x00")),
)


def tenant_models() -> list[type]:
    return sorted(
        (mapper.class_ for mapper in TenantBase.registry.mappers), key=lambda c: c.__name__
    )


def some_primary_key(model: type, tenant_id: uuid.UUID) -> tuple:
    columns = model.__mapper__.primary_key
    return tuple(tenant_id if column.name == "tenant_id" else uuid.uuid4() for column in columns)


def set_first_column(model: type) -> Any:
    column = next(column for column in model.__mapper__.columns if not column.primary_key)
    return update(model).values({column.key: column})


OPERATIONS: dict[str, Callable[[TenantSession, type, uuid.UUID], Any]] = {
    "select": lambda session, model, _tenant: session.execute(select(model)).all(),
    "count": lambda session, model, _tenant: session.scalar(
        select(func.count()).select_from(model)
    ),
    "get": lambda session, model, tenant: session.get(model, some_primary_key(model, tenant)),
    "update": lambda session, model, _tenant: session.execute(set_first_column(model)),
    "delete": lambda session, model, _tenant: session.execute(delete(model)),
    "insert": lambda session, model, _tenant: (session.add(model()), session.flush()),
}


def rows_per_tenant(runtime: Runtime, cast: Cast) -> dict[tuple[str, str], int]:
    counts = {}
    for tenant in (cast.acme, cast.globex):
        with runtime.stores.session(tenant) as session:
            for model in tenant_models():
                counts[model.__name__, tenant.slug] = session.scalar(
                    select(func.count()).select_from(model)
                )
    return counts


# A session without a tenant, on every backend -------------------------------------------


@pytest.mark.parametrize("operation", OPERATIONS)
def test_session_without_tenant_raises(
    runtime: Runtime, stocked: Cast, tally: Tally, where: str, operation: str
) -> None:
    before = rows_per_tenant(runtime, stocked)
    not_raised = []

    for model in tenant_models():
        tally.attempt(FAMILY, where)
        with TenantSession(bind=runtime.engine, tenant_id=None) as session:
            try:
                OPERATIONS[operation](session, model, stocked.acme.id)
            except MissingTenantContext:
                continue
        tally.leak(FAMILY, where)
        not_raised.append(model.__name__)

    assert not_raised == []
    assert rows_per_tenant(runtime, stocked) == before


# The tenant role on PostgreSQL ----------------------------------------------------------


@pytest.fixture
def connection(plain_engine: Engine) -> Iterator[Connection]:
    with plain_engine.connect() as connection:
        yield connection


@pytest.fixture
def samples(connection: Connection, stocked: Cast) -> dict[tuple[str, str], dict[str, Any]]:
    """Return one row of each tenant in each tenant table, read as the login role, to plant again."""
    with connection.begin():
        return {
            (table, tenant.slug): sample_row(connection, table, tenant.id)
            for table in tenant_tables(connection)
            for tenant in (stocked.acme, stocked.globex)
        }


@ONLY_POSTGRES
def test_login_role_sees_both_tenants(connection: Connection, stocked: Cast) -> None:
    # The test server's login role is a superuser, which row security does not apply to.
    # This baseline gives the empty results below their meaning.
    with connection.begin():
        tables = tenant_tables(connection)
        seen = {
            table: set(connection.scalars(text(f"SELECT DISTINCT tenant_id FROM {table}")))
            for table in tables
        }

    assert set(TenantBase.metadata.tables) <= set(tables)
    for table in tables:
        assert seen[table] == {stocked.acme.id, stocked.globex.id}, table


def rejected_by_setting(error: DBAPIError) -> bool:
    """Return True when the setting is not a UUID, so the policy fails before comparing any row."""
    return getattr(error.orig, "sqlstate", None) == INVALID_TEXT_REPRESENTATION


@ONLY_POSTGRES
@PROPERTY_SETTINGS
@given(setting=SETTINGS)
def test_tenant_role_sees_no_rows(
    setting: str | None, connection: Connection, stocked: Cast, tally: Tally, where: str
) -> None:
    seen: dict[str, int] = {}

    with connection.begin() as transaction:
        enter_role(connection, setting)
        for table in tenant_tables(connection):
            tally.attempt(FAMILY, where)
            try:
                with connection.begin_nested():
                    seen[table] = connection.scalar(text(f"SELECT count(*) FROM {table}"))
            except DBAPIError as error:
                if not rejected_by_setting(error):
                    raise
                seen[table] = 0
            if seen[table]:
                tally.leak(FAMILY, where)
        transaction.rollback()

    assert seen
    assert {table: count for table, count in seen.items() if count} == {}


@ONLY_POSTGRES
@PROPERTY_SETTINGS
@given(setting=SETTINGS)
def test_tenant_role_cannot_insert_rows(
    setting: str | None,
    connection: Connection,
    samples: dict[tuple[str, str], dict[str, Any]],
    tally: Tally,
    where: str,
) -> None:
    planted = []

    with connection.begin() as transaction:
        enter_role(connection, setting)
        for (table, slug), row in samples.items():
            tally.attempt(FAMILY, where)
            try:
                with connection.begin_nested():
                    connection.execute(insert_statement(table, row), row)
            except DBAPIError as error:
                if getattr(error.orig, "sqlstate", None) == INSUFFICIENT_PRIVILEGE:
                    continue
                if rejected_by_setting(error):
                    continue
                raise
            tally.leak(FAMILY, where)
            planted.append(f"{table} of {slug}")
        transaction.rollback()

    assert planted == []
