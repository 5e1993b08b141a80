"""Folder listings in one statement, for the route that clients call most often.

Resolving a path through the ORM costs a query per level, and each ORM query
costs several times the same query sent as a Core statement. Here one
statement joins the root of the user's drive, one row per path level and the
folder's children, so a listing is one round trip whatever the depth. The
columns are read as the driver returns them, without building `uuid.UUID` and
`datetime` objects that would only be turned back into text: that conversion
cost more than the query itself (docs/benchmarks.md).

Core and DB-API statements bypass the ORM's tenant guard, so every table in
the statement is filtered by `tenant_id` here, in `_is_tenant_row`. On
PostgreSQL the transaction is also bound to the tenant, and row-level
security backs the filter up.
"""

from __future__ import annotations

import datetime as dt
import functools
import sqlite3
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Select, String, and_, bindparam, select, type_coerce
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql.selectable import NamedFromClause

from strongroom.base.errors import Conflict, NotFound
from strongroom.drive.files import Names
from strongroom.drive.models import FOLDER, NodeRow, VersionRow
from strongroom.drive.paths import join_path

# SQLite joins at most 64 tables in one statement. Deeper paths, which people rarely
# make, are resolved one level at a time by `list_folder` instead.
MAX_JOINED_DEPTH = 32

_nodes = NodeRow.__table__
_versions = VersionRow.__table__


class Entry(NamedTuple):
    """One child of a listed folder, with ids and times already in their text forms.

    A named tuple, because a listing builds one per child and a frozen dataclass
    takes several times as long to construct.
    """

    id: str
    name: str
    kind: str
    size: int
    version: int
    modified: str
    version_id_hex: str | None
    sha256: str | None


class DriveNotCreated(NotFound):
    """The user's drive has no root folder yet, because the user never wrote to it.

    The caller creates the root, with `files.ensure_root`, and lists it empty.
    """


@dataclass(frozen=True, slots=True)
class Listing:
    folder_id: str
    path: str
    entries: list[Entry]


def list_folder(
    connection: Connection,
    tenant_id: uuid.UUID,
    owner_id: uuid.UUID,
    names: Names,
    base_id: uuid.UUID | None = None,
) -> Listing:
    """Return the live children of the folder at `names` of the user's drive, folders first, then by name.

    With `base_id`, `names` starts at that node of the drive instead of its
    root, as in `strongroom.drive.files`. Raises NotFound when nothing live is
    at the path, DriveNotCreated for the root of a drive never used, and
    Conflict when a file is at the path.
    """
    if len(names) > MAX_JOINED_DEPTH:
        folder_id, kind = _resolve_deep(connection, tenant_id, owner_id, names, base_id)
        _check_folder(names, kind)
        rows = connection.execute(_children_statement(), {"tenant": tenant_id, "folder": folder_id})
        return _listing(names, folder_id, [(None, None, *row) for row in rows])

    parameters = _parameters(tenant_id, owner_id, names)
    anchored = base_id is not None
    if anchored:
        parameters["base"] = base_id
    rows = connection.execute(_listing_statement(len(names), anchored), parameters).all()
    return _listing_of_rows(names, rows, anchored)


def list_folder_sqlite(
    connection: sqlite3.Connection, tenant_id: uuid.UUID, owner_id: uuid.UUID, names: Names
) -> Listing:
    """Do what `list_folder` does on a plain sqlite3 connection, for paths of up to MAX_JOINED_DEPTH names.

    It skips SQLAlchemy's execution layer, which costs more than the query on
    a small folder, and runs the statement SQLAlchemy compiled for SQLite.
    """
    if len(names) > MAX_JOINED_DEPTH:
        raise ValueError(f"a path of {len(names)} names is too deep for one statement; use list_folder")

    sql, order = _sqlite_listing_statement(len(names))
    # SQLAlchemy stores a UUID in SQLite as its 32 hex digits.
    parameters = _parameters(tenant_id.hex, owner_id.hex, names)
    rows = connection.execute(sql, [parameters[name] for name in order]).fetchall()
    return _listing_of_rows(names, rows, anchored=False)


def _parameters(tenant: object, owner: object, names: Names) -> dict[str, object]:
    parameters: dict[str, object] = {"tenant": tenant, "owner": owner}
    for level, name in enumerate(names):
        parameters[f"name_{level}"] = name
    return parameters


def _listing_of_rows(names: Names, rows: Sequence[Sequence[Any]], anchored: bool) -> Listing:
    if not rows and not names and anchored:
        raise NotFound("the shared item is no longer there; its owner moved it to the trash")
    if not rows and not names:
        raise DriveNotCreated("the drive has no root folder yet")
    if not rows:
        raise NotFound(f"nothing exists at {join_path(names)!r}")
    _check_folder(names, rows[0][1])
    return _listing(names, rows[0][0], rows)


def _check_folder(names: Names, kind: str) -> None:
    if kind != FOLDER:
        raise Conflict(f"{join_path(names)!r} is a file, not a folder")


def _listing(names: Names, folder_id: object, rows: Sequence[Sequence[Any]]) -> Listing:
    # The outer join yields one row of NULL children for an empty folder.
    entries = [
        Entry(
            id=_uuid_text(row[2]),
            name=row[3],
            kind=row[4],
            size=row[5],
            version=row[6],
            modified=_time_text(row[7]),
            version_id_hex=None if row[8] is None else _uuid_hex(row[8]),
            sha256=row[9],
        )
        for row in rows
        if row[2] is not None
    ]
    return Listing(folder_id=_uuid_text(folder_id), path=join_path(names), entries=entries)


# Raw column values: psycopg returns UUID and datetime objects, SQLite the text that
# SQLAlchemy stored, which is 32 hex digits for a UUID and "YYYY-MM-DD HH:MM:SS.ffffff"
# in UTC for a time.


def _uuid_hex(value: uuid.UUID | str) -> str:
    return value.hex if isinstance(value, uuid.UUID) else value


def _uuid_text(value: uuid.UUID | str) -> str:
    if isinstance(value, uuid.UUID):
        return str(value)
    return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"


def _time_text(value: dt.datetime | str) -> str:
    """Return the time in the form the API's models write: ISO 8601, "Z", no zero fraction."""
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    return value.replace(" ", "T", 1).removesuffix(".000000") + "Z"


# Statements ---------------------------------------------------------------------------


def _is_tenant_row(table: NamedFromClause) -> ColumnElement[bool]:
    return table.c.tenant_id == bindparam("tenant")


def _raw(column: ColumnElement[Any]) -> ColumnElement[Any]:
    """Read a column as the driver returns it: SQLAlchemy's Uuid and DateTime parsing is skipped."""
    return type_coerce(column, String)


@functools.lru_cache(maxsize=2 * (MAX_JOINED_DEPTH + 1))
def _listing_statement(depth: int, anchored: bool = False) -> Select:
    """Build the statement for a path of `depth` names; each depth is built once.

    The path starts at the owner's root folder, or when `anchored` at the
    owner's live node with the id `base`.
    """
    root = folder = _nodes.alias("level_0")
    joined = root
    for level in range(1, depth + 1):
        child = _nodes.alias(f"level_{level}")
        joined = joined.join(
            child,
            and_(
                _is_tenant_row(child),
                child.c.parent_id == folder.c.id,
                child.c.name == bindparam(f"name_{level - 1}"),
                child.c.deleted_at.is_(None),
            ),
        )
        folder = child

    children = _nodes.alias("children")
    version = _versions.alias("version")
    joined = joined.outerjoin(
        children,
        and_(
            _is_tenant_row(children),
            children.c.parent_id == folder.c.id,
            children.c.deleted_at.is_(None),
        ),
    ).outerjoin(version, _is_current_version(version, children))
    if anchored:
        start = and_(root.c.id == bindparam("base"), root.c.deleted_at.is_(None))
    else:
        start = root.c.parent_id.is_(None)
    return (
        select(_raw(folder.c.id), folder.c.kind, *_entry_columns(children, version))
        .select_from(joined)
        .where(_is_tenant_row(root), root.c.owner_id == bindparam("owner"), start)
        .order_by(children.c.kind.desc(), children.c.name)
    )


@functools.lru_cache(maxsize=MAX_JOINED_DEPTH + 1)
def _sqlite_listing_statement(depth: int) -> tuple[str, tuple[str, ...]]:
    """Compile the statement for SQLite once per depth: its text and its parameter names in order."""
    compiled = _listing_statement(depth).compile(dialect=sqlite.dialect())
    return str(compiled), tuple(compiled.positiontup or ())


def _is_current_version(version: NamedFromClause, children: NamedFromClause) -> ColumnElement[bool]:
    return and_(
        version.c.tenant_id == children.c.tenant_id, version.c.id == children.c.current_version_id
    )


def _entry_columns(children: NamedFromClause, version: NamedFromClause) -> list[ColumnElement[Any]]:
    return [
        _raw(children.c.id),
        children.c.name,
        children.c.kind,
        children.c.size,
        children.c.version,
        _raw(children.c.modified_at),
        _raw(children.c.current_version_id),
        version.c.sha256,
    ]


@functools.cache
def _children_statement() -> Select:
    children = _nodes.alias("children")
    version = _versions.alias("version")
    return (
        select(*_entry_columns(children, version))
        .select_from(children.outerjoin(version, _is_current_version(version, children)))
        .where(
            _is_tenant_row(children),
            children.c.parent_id == bindparam("folder"),
            children.c.deleted_at.is_(None),
        )
        .order_by(children.c.kind.desc(), children.c.name)
    )


def _resolve_deep(
    connection: Connection,
    tenant_id: uuid.UUID,
    owner_id: uuid.UUID,
    names: Names,
    base_id: uuid.UUID | None,
) -> tuple[uuid.UUID, str]:
    """Walk a path deeper than one statement can join, one query per level."""
    if base_id is None:
        start = _nodes.c.parent_id.is_(None)
    else:
        start = and_(_nodes.c.id == base_id, _nodes.c.deleted_at.is_(None))
    root = connection.execute(
        select(_nodes.c.id, _nodes.c.kind).where(
            _nodes.c.tenant_id == tenant_id, _nodes.c.owner_id == owner_id, start
        )
    ).first()
    if root is None:
        raise NotFound(f"nothing exists at {join_path(names)!r}")

    node_id, kind = root
    for name in names:
        found = None
        if kind == FOLDER:
            found = connection.execute(
                select(_nodes.c.id, _nodes.c.kind).where(
                    _nodes.c.tenant_id == tenant_id,
                    _nodes.c.parent_id == node_id,
                    _nodes.c.name == name,
                    _nodes.c.deleted_at.is_(None),
                )
            ).first()
        if found is None:
            raise NotFound(f"nothing exists at {join_path(names)!r}")
        node_id, kind = found
    return node_id, kind
