"""Moving a tenant to another isolation level or server while it stays online.

A move copies the tenant's rows, never its blobs, whose keys name the tenant
and not the store. It runs in steps:

1. `prepare`: mark the tenant as moving in the catalog, which keeps a second
   move or a suspension out, and make the target store.
2. `copy`: copy every row, in batches of `BATCH_ROWS` per transaction, while
   the tenant goes on reading and writing at its old place.
3. `freeze`: close the old store's write fence (tenancy/store_state.py). The
   fence waits for the writes under way, and writes after it get 503 with
   `Retry-After`. Reads go on.
4. `sync`: apply what changed during the copy to the target, in one
   transaction. When the changes cannot be applied row by row (two files
   that swapped names, say), the target's rows are replaced wholesale.
5. `verify`: compare the row count and a checksum of every table in both
   stores.
6. `switch`: point the catalog at the target and reopen the tenant.
7. `cleanup`: after `settle_seconds`, the time replicas may still read the
   catalog from their cache, remove the old store.

A failure before the switch removes the target and reopens the old store, so
the tenant is where it was, complete and writable. A failure in the cleanup
leaves the tenant moved and the old copy in place; the error names it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.exc import IntegrityError as DatabaseIntegrityError

from strongroom.base.errors import IntegrityError, InvalidInput, ServiceUnavailable
from strongroom.base.logging import get_logger
from strongroom.storage.db import TenantBase
from strongroom.tenancy.catalog import Catalog
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.isolation import (
    Placement,
    TenantStores,
    describe_failure,
    rights_to_delete,
)
from strongroom.tenancy.store_state import StoreStateRow, set_writable

log = get_logger(__name__)

STEPS = ("prepare", "copy", "freeze", "sync", "verify", "switch", "cleanup")
BATCH_ROWS = 1_000

Row = dict[str, Any]
StepHook = Callable[[str], None]


@dataclass(frozen=True)
class TableCheck:
    """The row count and checksum of one table, equal in both stores when a move verified it."""

    table: str
    rows: int
    checksum: str


@dataclass(frozen=True)
class MoveReport:
    slug: str
    source: Placement
    target: Placement
    tables: tuple[TableCheck, ...]
    seconds: float
    frozen_seconds: float
    replaced_wholesale: bool


class MoveFailed(ServiceUnavailable):
    """A move stopped at `step`; the tenant is where it was unless the step is `cleanup`."""

    def __init__(self, detail: str, step: str) -> None:
        super().__init__(detail)
        self.step = step


def tenant_tables() -> list[Table]:
    """Return the tables a move copies, parents before children; each store keeps its own fence."""
    return [
        table
        for table in TenantBase.metadata.sorted_tables
        if table.name != StoreStateRow.__tablename__
    ]


def move_tenant(
    catalog: Catalog,
    stores: TenantStores,
    slug: str,
    isolation: str,
    server: str | None = None,
    *,
    settle_seconds: float = 0.0,
    before_step: StepHook | None = None,
) -> MoveReport:
    """Move the tenant `slug` to `isolation` on `server`; return what was copied and checked.

    `before_step` is called with each step's name before the step runs, for
    progress output and for tests that stop a move at one step.
    """
    started = time.monotonic()
    source = catalog.get_tenant(slug)
    placement = stores.plan(source.id, isolation, server)
    if (placement.isolation, placement.server) == (source.isolation, source.server):
        raise InvalidInput(
            f"tenant {slug!r} is already on the {source.isolation} level of server "
            f"{source.server!r}; choose another --isolation or --server"
        )
    target = dataclasses.replace(
        source,
        isolation=placement.isolation,
        server=placement.server,
        placement=placement.location,
    )
    move = _Move(catalog, stores, source, target, before_step or (lambda _step: None))
    tables, frozen_seconds = move.run(settle_seconds)
    return MoveReport(
        slug=slug,
        source=Placement(source.isolation, source.server, source.placement),
        target=placement,
        tables=tables,
        seconds=time.monotonic() - started,
        frozen_seconds=frozen_seconds,
        replaced_wholesale=move.replaced_wholesale,
    )


class _Move:
    def __init__(
        self,
        catalog: Catalog,
        stores: TenantStores,
        source: TenantInfo,
        target: TenantInfo,
        before_step: StepHook,
    ) -> None:
        self.catalog = catalog
        self.stores = stores
        self.source = source
        self.target = target
        self.before_step = before_step
        self.tables = tenant_tables()
        self.replaced_wholesale = False

    def run(self, settle_seconds: float) -> tuple[tuple[TableCheck, ...], float]:
        # Raises Conflict, with nothing to undo, unless the tenant is active.
        self.catalog.begin_move(self.source.id)
        step = "prepare"
        made_target = frozen = False
        frozen_at = 0.0
        try:
            self.before_step(step)
            revision = self.stores.create_store(self.target)
            made_target = True

            step = "copy"
            self.before_step(step)
            self._copy_all()

            step = "freeze"
            self.before_step(step)
            self._set_source_writable(False)
            frozen, frozen_at = True, time.monotonic()

            step = "sync"
            self.before_step(step)
            self._sync()

            step = "verify"
            self.before_step(step)
            checks = self._verify()

            step = "switch"
            self.before_step(step)
            self.catalog.end_move(self.source.id, self._target_placement(), revision)
        except Exception as exc:
            self._roll_back(step, exc, made_target, frozen)
            raise MoveFailed(self._failure_message(step, exc), step) from exc

        frozen_seconds = time.monotonic() - frozen_at
        log.info(
            "tenant_moved",
            tenant=self.source.slug,
            isolation=self.target.isolation,
            server=self.target.server,
            frozen_ms=round(frozen_seconds * 1000),
        )
        self._clean_up(settle_seconds)
        return checks, frozen_seconds

    # Steps ------------------------------------------------------------------------

    def _copy_all(self) -> None:
        snapshot = self._read_all(self.source)
        for table in self.tables:
            rows = _parents_first(table, snapshot[table.name])
            for start in range(0, len(rows), BATCH_ROWS):
                with self.stores.session(self.target, write=True, fenced=False) as session:
                    _insert(session, table, rows[start : start + BATCH_ROWS])

    def _set_source_writable(self, accepts_writes: bool) -> None:
        with self.stores.session(self.source, write=True, fenced=False) as session:
            set_writable(session, accepts_writes)

    def _sync(self) -> None:
        """Make the target equal to the frozen source: row by row, or else wholesale."""
        wanted = self._read_all(self.source)
        try:
            with self.stores.session(self.target, write=True, fenced=False) as session:
                self._apply_changes(session, wanted)
                set_writable(session, True)
        except DatabaseIntegrityError as exc:
            log.info(
                "tenant_move_replacing_rows",
                tenant=self.source.slug,
                reason=describe_failure(exc),
            )
            with self.stores.session(self.target, write=True, fenced=False) as session:
                self._replace_all(session, wanted)
                set_writable(session, True)
            self.replaced_wholesale = True

    def _apply_changes(self, session: Any, wanted: dict[str, list[Row]]) -> None:
        present = self._read_all(self.target)
        for table in reversed(self.tables):
            keys = {_key(table, row) for row in wanted[table.name]}
            gone = [row for row in present[table.name] if _key(table, row) not in keys]
            with rights_to_delete(session, table.name):
                for row in reversed(_parents_first(table, gone)):
                    session.execute(
                        delete(table)
                        .where(*_matches_key(table, row))
                        .execution_options(tenant_scoped=True)
                    )
        for table in self.tables:
            existing = {_key(table, row): row for row in present[table.name]}
            added = [row for row in wanted[table.name] if _key(table, row) not in existing]
            _insert(session, table, _parents_first(table, added))
            for row in wanted[table.name]:
                old = existing.get(_key(table, row))
                if old is not None and _canonical_row(table, old) != _canonical_row(table, row):
                    session.execute(
                        update(table)
                        .where(*_matches_key(table, row))
                        .values(row)
                        .execution_options(tenant_scoped=True)
                    )

    def _replace_all(self, session: Any, wanted: dict[str, list[Row]]) -> None:
        for table in reversed(self.tables):
            with rights_to_delete(session, table.name):
                session.execute(
                    delete(table)
                    .where(table.c.tenant_id == self.target.id)
                    .execution_options(tenant_scoped=True)
                )
        for table in self.tables:
            _insert(session, table, _parents_first(table, wanted[table.name]))

    def _verify(self) -> tuple[TableCheck, ...]:
        checks = []
        source, target = self._read_all(self.source), self._read_all(self.target)
        for table in self.tables:
            old = _check(table, source[table.name])
            new = _check(table, target[table.name])
            if old != new:
                raise IntegrityError(
                    f"table {table.name} differs after the copy: {old.rows} rows with checksum "
                    f"{old.checksum[:12]} in the old store, {new.rows} with {new.checksum[:12]} "
                    "in the new one"
                )
            checks.append(new)
        return tuple(checks)

    def _target_placement(self) -> Placement:
        return Placement(self.target.isolation, self.target.server, self.target.placement)

    # Ending -----------------------------------------------------------------------

    def _roll_back(self, step: str, exc: Exception, made_target: bool, frozen: bool) -> None:
        """Put the tenant back where it was: old store open, catalog unchanged, target gone."""
        log.error("tenant_move_failed", tenant=self.source.slug, step=step, error=describe_failure(exc))
        undo: list[tuple[str, Callable[[], None]]] = []
        if frozen:
            undo.append(("reopen the old store", lambda: self._set_source_writable(True)))
        if made_target:
            undo.append(("remove the new store", lambda: self.stores.drop_store(self.target)))
        undo.append(("reopen the tenant", lambda: self.catalog.end_move(self.source.id, None)))
        for what, action in undo:
            try:
                action()
            except Exception as undo_exc:  # noqa: BLE001 - each undo step runs and is reported
                log.error(
                    "tenant_move_undo_failed",
                    tenant=self.source.slug,
                    action=what,
                    error=describe_failure(undo_exc),
                )

    def _failure_message(self, step: str, exc: Exception) -> str:
        cause = getattr(exc, "detail", None) or describe_failure(exc)
        return (
            f"moving tenant {self.source.slug!r} to the {self.target.isolation} level of server "
            f"{self.target.server!r} failed at the {step} step: {cause}. The tenant stays on the "
            f"{self.source.isolation} level of server {self.source.server!r}, complete and "
            "writable; fix the cause and run the move again"
        )

    def _clean_up(self, settle_seconds: float) -> None:
        try:
            self.before_step("cleanup")
            # Replicas that read the catalog before the switch may still read the old store.
            time.sleep(settle_seconds)
            self.stores.drop_store(self.source)
        except Exception as exc:
            log.error("tenant_move_cleanup_failed", tenant=self.source.slug, error=describe_failure(exc))
            raise MoveFailed(
                f"tenant {self.source.slug!r} now lives on the {self.target.isolation} level of "
                f"server {self.target.server!r}, but removing its old {self.source.isolation} "
                f"store {self.source.placement!r} failed: {describe_failure(exc)}. Nothing reads "
                "that copy any more; remove it by hand",
                "cleanup",
            ) from exc

    def _read_all(self, tenant: TenantInfo) -> dict[str, list[Row]]:
        """Read every row of the tenant in one snapshot, so that the tables agree with each other."""
        # NOTE: the rows are read whole into memory, which suits tenants of up to a few
        # million rows. Larger ones need a merge of ordered streams instead.
        with self.stores.connect(tenant, snapshot=True) as connection:
            return {
                table.name: [
                    dict(row)
                    for row in connection.execute(
                        select(table).where(table.c.tenant_id == tenant.id)
                    ).mappings()
                ]
                for table in self.tables
            }


# Rows ---------------------------------------------------------------------------------


def _insert(session: Any, table: Table, rows: Sequence[Row]) -> None:
    if rows:
        session.execute(insert(table).execution_options(tenant_scoped=True), list(rows))


def _key(table: Table, row: Row) -> tuple[Any, ...]:
    return tuple(row[column.name] for column in table.primary_key.columns)


def _matches_key(table: Table, row: Row) -> list[Any]:
    return [column == row[column.name] for column in table.primary_key.columns]


def _self_reference(table: Table) -> tuple[str, str] | None:
    """Return (child column, parent column) of a table whose rows point at its own rows."""
    for key in table.foreign_keys:
        if key.column.table is table and key.parent.name != "tenant_id":
            return key.parent.name, key.column.name
    return None


def _parents_first(table: Table, rows: Iterable[Row]) -> list[Row]:
    """Order rows so that a row comes after the row it points at, in a self-referencing table.

    A parent outside `rows` counts as present already. Rows in a loop, which
    the tree never has, come last in their given order. Inserting them then
    fails on the foreign key, so the move stops instead of copying a broken
    tree.
    """
    rows = list(rows)
    reference = _self_reference(table)
    if reference is None:
        return rows
    child_column, parent_column = reference
    by_key = {row[parent_column]: row for row in rows}
    ordered: list[Row] = []
    placed: set[Any] = set()
    pending = rows
    while pending:
        waiting = []
        for row in pending:
            parent = row[child_column]
            if parent is None or parent not in by_key or parent in placed:
                ordered.append(row)
                placed.add(row[parent_column])
            else:
                waiting.append(row)
        if len(waiting) == len(pending):
            ordered.extend(waiting)
            break
        pending = waiting
    return ordered


def _canonical(value: Any) -> Any:
    """Return a form of a column value that is the same whichever database returned it."""
    if isinstance(value, dt.datetime):
        # SQLite returns times without a zone; Strongroom writes every time in UTC.
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return aware.astimezone(dt.UTC).isoformat()
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def _canonical_row(table: Table, row: Row) -> tuple[Any, ...]:
    return tuple(_canonical(row[column.name]) for column in table.columns)


def _check(table: Table, rows: list[Row]) -> TableCheck:
    digest = hashlib.sha256()
    for canonical in sorted(repr(_canonical_row(table, row)) for row in rows):
        digest.update(canonical.encode("utf-8"))
        digest.update(b"\n")
    return TableCheck(table=table.name, rows=len(rows), checksum=digest.hexdigest())
