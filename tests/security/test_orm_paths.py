"""ORM paths that could skip the tenant filter, in a session bound to one tenant.

- Statement shapes: selects on every pair of tenant tables, as aliases,
  unions, subqueries, CTEs, joins of two tables, counts, conditions that name
  the other tenant, Core selects of the table, raw SQL and `from_statement`.
  Each must return rows of the bound tenant only, or raise.
- `session.get` with the other tenant's primary key, for every row of every
  tenant table.
- Relationship loading: a relationship whose join leaves out `tenant_id`, on a
  mapper of the nodes table made for this test (the models define none yet),
  loaded lazily and eagerly when the other tenant has a node with the same id.
- Bulk UPDATE and DELETE by the other tenant's ids, with every way of
  synchronising the session.
- `merge` and `add` of the other tenant's rows.
- Raw SQL on the session's own connection, which no ORM event sees.

tests/tenancy/test_session_guard.py also covers bulk INSERT, bulk UPDATE by
primary key with a parameter list, and adding a row of the other tenant.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import (
    Select,
    delete,
    exists,
    func,
    literal_column,
    or_,
    select,
    text,
    true,
    union_all,
    update,
)
from sqlalchemy.orm import (
    DeclarativeBase,
    aliased,
    foreign,
    joinedload,
    lazyload,
    relationship,
    selectinload,
    subqueryload,
)

from strongroom.base.errors import MissingTenantContext
from strongroom.drive.files import ensure_root, make_folder
from strongroom.drive.models import FOLDER, NodeRow
from strongroom.runtime import Runtime
from strongroom.storage.db import TenantBase, TenantScoped
from strongroom.tenancy.context import TenantInfo
from tests.conftest import Cast
from tests.security.tally import Tally

FAMILY = "ORM paths"


def tenant_models() -> list[type]:
    return sorted(
        (mapper.class_ for mapper in TenantBase.registry.mappers), key=lambda c: c.__name__
    )


def rows_of(runtime: Runtime, tenant: TenantInfo, model: type) -> list[tuple]:
    """Return every row of the model in the tenant, as plain tuples, read by hand-filtered SQL."""
    table = model.__table__
    query = select(table).where(table.c.tenant_id == tenant.id).order_by(*table.primary_key)
    with runtime.stores.session(tenant) as session:
        return [tuple(row) for row in session.execute(query.execution_options(tenant_scoped=True))]


# Statement shapes -----------------------------------------------------------------------

# Each shape builds a statement from two tenant tables and the other tenant's id, and
# names the kind of its rows: tenant ids, whole rows, or one count.
Shape = Callable[[Any, Any, uuid.UUID], tuple[Select, str]]


def joined(
    a: Any, b: Any, on: Callable[[Any, Any], Any], outer: bool = False
) -> tuple[Select, str]:
    """Join two tables, the second aliased so that a table can be joined to itself."""
    statement = select(a.tenant_id, b.tenant_id).select_from(a)
    return statement.join(b, on(a, b), isouter=outer), "ids"


SHAPES: dict[str, Shape] = {
    "rows": lambda a, b, other: (select(a), "rows"),
    "column": lambda a, b, other: (select(a.tenant_id), "ids"),
    "alias": lambda a, b, other: (select(aliased(a).tenant_id), "ids"),
    "other tenant": lambda a, b, other: (select(a.tenant_id).where(a.tenant_id == other), "ids"),
    "or true": lambda a, b, other: (
        select(a.tenant_id).where(or_(a.tenant_id == other, true())),
        "ids",
    ),
    "text condition": lambda a, b, other: (select(a.tenant_id).where(text("1 = 1")), "ids"),
    "union": lambda a, b, other: (
        union_all(select(a.tenant_id), select(b.tenant_id).where(b.tenant_id == other)),
        "ids",
    ),
    "subquery": lambda a, b, other: (select(select(a.tenant_id).subquery().c.tenant_id), "ids"),
    "cte": lambda a, b, other: (select(select(a.tenant_id).cte().c.tenant_id), "ids"),
    "in subquery": lambda a, b, other: (
        select(a.tenant_id).where(a.tenant_id.in_(select(b.tenant_id))),
        "ids",
    ),
    "cross join": lambda a, b, other: joined(a, aliased(b), lambda _a, _b: true()),
    "outer join": lambda a, b, other: joined(
        a, aliased(b), lambda _a, _b: _b.tenant_id != _a.tenant_id, outer=True
    ),
    "group": lambda a, b, other: (select(a.tenant_id).group_by(a.tenant_id), "ids"),
    "literal column": lambda a, b, other: (
        select(literal_column("tenant_id", a.tenant_id.type)).select_from(a),
        "ids",
    ),
    "count": lambda a, b, other: (select(func.count()).select_from(a), "count"),
    "scalar count": lambda a, b, other: (
        select(select(func.count()).select_from(a).scalar_subquery()),
        "count",
    ),
    "exists": lambda a, b, other: (select(exists().where(a.tenant_id == other)), "ids"),
    # Shapes the tenant filter cannot reach, which the guard must reject.
    "core table": lambda a, b, other: (select(a.__table__.c.tenant_id), "ids"),
    "raw text": lambda a, b, other: (
        text(f"SELECT tenant_id FROM {a.__tablename__}").columns(a.__table__.c.tenant_id),
        "ids",
    ),
    "from statement": lambda a, b, other: (
        select(a).from_statement(text(f"SELECT * FROM {a.__tablename__}")),
        "rows",
    ),
}


def outside_rows(rows: list, kind: str, tenant_id: uuid.UUID, own_count: int) -> list:
    """Return what the rows hold that is not the bound tenant's."""
    if kind == "count":
        return [row for row in rows if row[0] != own_count]
    if kind == "rows":
        return [row for row in rows if row[0].tenant_id != tenant_id]
    values = [value for row in rows for value in row if value is not None]
    # A boolean is the result of EXISTS about the other tenant, which must be false.
    return [value for value in values if value is not False and value != tenant_id]


def test_statement_shapes_stay_in_tenant(
    runtime: Runtime, stocked: Cast, tally: Tally, where: str
) -> None:
    # Every shape on every pair of tenant tables, bound to each tenant in turn: the whole
    # table of cases runs in a few seconds, so nothing is left to sampling.
    pairs = list(itertools.product(tenant_models(), repeat=2))
    outside = []

    for tenant, other in [(stocked.acme, stocked.globex), (stocked.globex, stocked.acme)]:
        own_counts = {model: len(rows_of(runtime, tenant, model)) for model in tenant_models()}
        with runtime.stores.session(tenant) as session:
            for shape, (first, second) in itertools.product(sorted(SHAPES), pairs):
                statement, kind = SHAPES[shape](first, second, other.id)
                tally.attempt(FAMILY, where)
                try:
                    rows = session.execute(statement).all()
                except MissingTenantContext:
                    continue  # rejected before it ran, which is safe
                found = outside_rows(rows, kind, tenant.id, own_counts[first])
                if found:
                    tally.leak(FAMILY, where)
                    outside.append(f"{shape} of {first.__name__}, {second.__name__}: {found}")

    assert outside == []


# session.get ----------------------------------------------------------------------------


def test_get_other_primary_key_is_none(
    runtime: Runtime, stocked: Cast, tally: Tally, where: str
) -> None:
    keys = []
    for model in tenant_models():
        width = len(model.__mapper__.primary_key)
        keys += [(model, row[:width]) for row in rows_of(runtime, stocked.globex, model)]
    tally.attempt(FAMILY, where, len(keys))

    with runtime.stores.session(stocked.acme) as session:
        found = [
            (model.__name__, key) for model, key in keys if session.get(model, key) is not None
        ]

    assert len(keys) >= len(tenant_models())
    assert found == []


# Relationship loading -------------------------------------------------------------------


class ProbeBase(DeclarativeBase):
    """A registry of its own, so the probe mapper below stays out of the product's metadata."""


class ProbeNode(TenantScoped, ProbeBase):
    """The nodes table with a relationship to children whose join leaves out `tenant_id`."""

    __table__ = NodeRow.__table__
    children = relationship(
        "ProbeNode",
        primaryjoin=lambda: ProbeNode.id == foreign(ProbeNode.parent_id),
        viewonly=True,
    )


@pytest.fixture
def twin_folders(runtime: Runtime, cast: Cast) -> uuid.UUID:
    """A folder of acme, and a folder of globex with the same id, each with a child of its own.

    Node ids are UUIDs made by the server, so an attacker cannot pick one. A
    tenant copied from another place, or a restored backup, can still hold the
    same id as another tenant, which the primary key (tenant_id, id) allows.
    """
    acme_owner, globex_owner = cast.acme_admin.user_id, cast.globex_admin.user_id
    with runtime.stores.session(cast.acme, write=True) as session:
        folder = make_folder(session, acme_owner, ("shared-id",), acme_owner)
        make_folder(session, acme_owner, ("shared-id", "acme-child"), acme_owner)
    with runtime.stores.session(cast.globex, write=True) as session:
        root = ensure_root(session, globex_owner)
        session.add(
            NodeRow(
                id=folder.id, owner_id=globex_owner, parent_id=root.id, name="twin", kind=FOLDER
            )
        )
        session.add(
            NodeRow(
                id=uuid.uuid4(),
                owner_id=globex_owner,
                parent_id=folder.id,
                name="globex-secret",
                kind=FOLDER,
            )
        )
    return folder.id


@pytest.mark.parametrize(
    "loader",
    [lazyload, selectinload, joinedload, subqueryload],
    ids=["lazy", "selectin", "joined", "subquery"],
)
def test_relationship_loads_own_children(
    runtime: Runtime, cast: Cast, twin_folders: uuid.UUID, loader: Any, tally: Tally, where: str
) -> None:
    query = (
        select(ProbeNode).where(ProbeNode.id == twin_folders).options(loader(ProbeNode.children))
    )
    tally.attempt(FAMILY, where)

    with runtime.stores.session(cast.acme) as session:
        folder = session.scalars(query).unique().one()
        names = sorted(child.name for child in folder.children)

    assert names == ["acme-child"]


# Bulk UPDATE and DELETE -----------------------------------------------------------------


@pytest.mark.parametrize("synchronize", ["auto", "fetch", "evaluate", False])
@pytest.mark.parametrize("verb", ["update", "delete"])
def test_bulk_change_of_other_ids_misses(
    runtime: Runtime, stocked: Cast, verb: str, synchronize: Any, tally: Tally, where: str
) -> None:
    before = rows_of(runtime, stocked.globex, NodeRow)
    ids = [row[1] for row in before]
    if verb == "update":
        statement = update(NodeRow).where(NodeRow.id.in_(ids)).values(name="taken")
    else:
        statement = delete(NodeRow).where(NodeRow.id.in_(ids))
    tally.attempt(FAMILY, where)

    with runtime.stores.session(stocked.acme, write=True) as session:
        changed = session.execute(statement.execution_options(synchronize_session=synchronize))

    assert changed.rowcount == 0
    assert rows_of(runtime, stocked.globex, NodeRow) == before


def test_update_returning_other_ids_is_empty(runtime: Runtime, stocked: Cast) -> None:
    before = rows_of(runtime, stocked.globex, NodeRow)
    ids = [row[1] for row in before]
    statement = (
        update(NodeRow).where(NodeRow.id.in_(ids)).values(name="taken").returning(NodeRow.id)
    )

    with runtime.stores.session(stocked.acme, write=True) as session:
        returned = session.scalars(statement).all()

    assert returned == []
    assert rows_of(runtime, stocked.globex, NodeRow) == before


# merge and add --------------------------------------------------------------------------


def globex_folder(runtime: Runtime, cast: Cast) -> NodeRow:
    """A folder of globex, loaded in a globex session and detached from it."""
    owner = cast.globex_admin.user_id
    with runtime.stores.session(cast.globex, write=True) as session:
        return make_folder(session, owner, ("globex-plans",), owner)


def test_merge_other_tenant_row_raises(runtime: Runtime, cast: Cast) -> None:
    stranger = globex_folder(runtime, cast)
    before = rows_of(runtime, cast.globex, NodeRow)
    copy = NodeRow(
        tenant_id=cast.globex.id,
        id=stranger.id,
        owner_id=stranger.owner_id,
        parent_id=stranger.parent_id,
        name="taken",
        kind=FOLDER,
    )

    with (
        pytest.raises(MissingTenantContext),
        runtime.stores.session(cast.acme, write=True) as session,
    ):
        session.merge(copy)
        session.flush()

    assert rows_of(runtime, cast.globex, NodeRow) == before


def test_merge_without_load_then_change_raises(runtime: Runtime, cast: Cast) -> None:
    stranger = globex_folder(runtime, cast)
    before = rows_of(runtime, cast.globex, NodeRow)

    with (
        pytest.raises(MissingTenantContext),
        runtime.stores.session(cast.acme, write=True) as session,
    ):
        merged = session.merge(stranger, load=False)
        merged.name = "taken"
        session.flush()

    assert rows_of(runtime, cast.globex, NodeRow) == before


def test_add_detached_row_then_change_raises(runtime: Runtime, cast: Cast) -> None:
    stranger = globex_folder(runtime, cast)
    before = rows_of(runtime, cast.globex, NodeRow)

    with (
        pytest.raises(MissingTenantContext),
        runtime.stores.session(cast.acme, write=True) as session,
    ):
        session.add(stranger)
        stranger.name = "taken"
        session.flush()

    assert rows_of(runtime, cast.globex, NodeRow) == before


# Raw SQL on the session's connection ----------------------------------------------------


def test_connection_without_marker_is_refused(
    runtime: Runtime, stocked: Cast, tally: Tally, where: str
) -> None:
    tally.attempt(FAMILY, where)

    with runtime.stores.session(stocked.acme) as session:
        # On SQLite nothing below the session would filter SQL sent on its connection.
        with pytest.raises(MissingTenantContext):
            session.connection()


def test_marked_connection_runs_filtered_sql(
    runtime: Runtime, stocked: Cast, tally: Tally, where: str
) -> None:
    tally.attempt(FAMILY, where)

    with runtime.stores.session(stocked.acme) as session:
        connection = session.connection(execution_options={"tenant_scoped": True})
        seen = set(
            connection.execute(
                text("SELECT DISTINCT tenant_id FROM nodes WHERE tenant_id = :tenant"),
                {"tenant": stocked.acme.id.hex if runtime.engine.dialect.name == "sqlite" else stocked.acme.id},
            ).scalars()
        )

    assert {str(value).replace("-", "") for value in seen} == {stocked.acme.id.hex}
