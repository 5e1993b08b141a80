"""A pooled connection reused by the next tenant, on every backend.

The stores get an engine whose pool keeps one connection, so sessions run one
after another on it. Hypothesis alternates the tenants and what each session
does: read, write and commit, write and fail, or fail in a savepoint after a
write that stays. After every session, the next one on the same connection
must see only its own tenant's rows and exactly the folders the model holds.
On PostgreSQL a raw statement without a tenant filter and a Core connection
from `TenantStores.connect` are tried too, which only row security limits.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, select, text

from strongroom.drive.files import get_root, list_children, make_folder
from strongroom.drive.models import NodeRow
from strongroom.runtime import Runtime
from strongroom.storage.db import TenantBase, TenantSession, make_engine
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.isolation import TenantStores
from tests.conftest import Cast, drive_owner
from tests.security.conftest import ROUND_SETTINGS
from tests.security.tally import Tally

FAMILY = "pooled connections"

ACTIONS = ["read", "write", "fail after write", "fail in savepoint", "core read"]


class Injected(Exception):
    """A failure the test raises inside a transaction, to roll it back."""


@pytest.fixture
def one_connection(runtime: Runtime) -> Iterator[Engine]:
    engine = make_engine(runtime.settings.resolved_database_url, pool_size=1)
    try:
        yield engine
    finally:
        engine.dispose()


def folder_names(session: TenantSession, owner: uuid.UUID) -> set[str]:
    root = get_root(session, owner)
    return set() if root is None else {node.name for node in list_children(session, root)}


def tenants_seen(session: TenantSession) -> set[uuid.UUID]:
    seen = set()
    for mapper in TenantBase.registry.mappers:
        seen |= set(session.scalars(select(mapper.class_.tenant_id).distinct()))
    return seen


def run_action(
    stores: TenantStores, tenant: TenantInfo, owner: uuid.UUID, action: str, model: set[str]
) -> None:
    """Do one session's work in the owner's drive and record in the model the folders that stay."""
    kept, lost = f"kept-{uuid.uuid4().hex[:8]}", f"lost-{uuid.uuid4().hex[:8]}"
    if action == "read":
        with stores.session(tenant) as session:
            folder_names(session, owner)
    elif action == "write":
        with stores.session(tenant, write=True) as session:
            make_folder(session, owner, (kept,), owner)
        model.add(kept)
    elif action == "fail after write":
        with pytest.raises(Injected), stores.session(tenant, write=True) as session:
            make_folder(session, owner, (lost,), owner)
            raise Injected
    elif action == "fail in savepoint":
        with stores.session(tenant, write=True) as session:
            make_folder(session, owner, (kept,), owner)
            with pytest.raises(Injected), session.begin_nested():
                make_folder(session, owner, (lost,), owner)
                raise Injected
        model.add(kept)
    else:
        with stores.connect(tenant) as connection:
            # No tenant filter here on purpose, so that only row security limits the rows.
            connection.execute(select(NodeRow.__table__.c.tenant_id)).all()


# Database tenants each have a pool of their own, so only these levels share connections.
@pytest.mark.parametrize(
    "level", ["sqlite-shared", "postgres-shared", "postgres-schema"], indirect=True
)
@ROUND_SETTINGS
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["acme", "globex"]), st.sampled_from(ACTIONS)),
        min_size=2,
        max_size=10,
    )
)
def test_pooled_connection_keeps_tenants_apart(
    steps: list[tuple[str, str]],
    runtime: Runtime,
    one_connection: Engine,
    stocked: Cast,
    tally: Tally,
    where: str,
) -> None:
    on_postgres = one_connection.dialect.name == "postgresql"
    stores = TenantStores(one_connection)
    tenants = {"acme": stocked.acme, "globex": stocked.globex}
    owners = {slug: drive_owner(runtime, tenant) for slug, tenant in tenants.items()}
    model = {}
    for slug, tenant in tenants.items():
        with stores.session(tenant) as session:
            model[slug] = folder_names(session, owners[slug])
    problems = []
    backends: set[int] = set()

    for slug, action in steps:
        if action == "core read" and not on_postgres:
            continue  # on SQLite, Core statements filter by hand; nothing backs them up
        tally.attempt(FAMILY, where)
        run_action(stores, tenants[slug], owners[slug], action, model[slug])
        for other, tenant in tenants.items():
            with stores.session(tenant) as session:
                seen = tenants_seen(session)
                names = folder_names(session, owners[other])
                raw = set()
                if on_postgres:
                    unfiltered = text("SELECT DISTINCT tenant_id FROM nodes")
                    raw = set(session.scalars(unfiltered.execution_options(tenant_scoped=True)))
                    backend = text("SELECT pg_backend_pid()").execution_options(tenant_scoped=True)
                    backends.add(session.scalar(backend))
            if seen != {tenant.id} or names != model[other] or raw - {tenant.id}:
                problems.append(f"{other} after {action} in {slug}: {seen}, {names}, {raw}")
    if problems:
        tally.leak(FAMILY, where)

    assert problems == []
    assert len(backends) <= 1  # one server process, so the pool reused one connection
