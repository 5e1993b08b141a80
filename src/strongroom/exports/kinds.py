"""The kinds of export: what each one contains, its formats and how its filters are checked.

A kind checks its filters when the export is requested, so that a bad
filter gets a 400 at once and not a failed job later, and returns them in a
normal form that is stored with the export. Its writer gets them back in the
job and feeds the content, in the chosen format, to the encrypted blob.

A later kind, such as an export of a user's files for a data subject
request, is one more `ExportKind` in `KINDS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from strongroom.base.errors import InvalidInput
from strongroom.exports import audit_trail, metered_usage
from strongroom.tenancy.context import TenantInfo

if TYPE_CHECKING:
    from strongroom.runtime import Runtime

# Feeds plaintext bytes into the export's blob.
Sink = Callable[[bytes], None]


@dataclass(frozen=True)
class Format:
    name: str
    media_type: str
    extension: str


JSON_LINES = Format("jsonl", "application/x-ndjson", "jsonl")
CSV = Format("csv", "text/csv; charset=utf-8", "csv")
JSON = Format("json", "application/json", "json")


@dataclass(frozen=True)
class ExportKind:
    """A kind of export.

    `check_filters(tenant, filters)` raises InvalidInput naming a bad filter
    and returns the filters to store, JSON-serialisable. `write(runtime,
    tenant, filters, format name, sink)` feeds the content to `sink`.
    """

    name: str
    description: str
    formats: tuple[Format, ...]  # the first is the default
    check_filters: Callable[[TenantInfo, Mapping[str, Any]], dict[str, Any]]
    write: Callable[[Runtime, TenantInfo, dict[str, Any], str, Sink], None]

    def format_named(self, name: str | None) -> Format:
        """Return the format called `name`, or the default for None; raise InvalidInput if none."""
        if name is None:
            return self.formats[0]
        for candidate in self.formats:
            if candidate.name == name:
                return candidate
        raise InvalidInput(
            f"format {name!r} is not a format of {self.name} exports; use one of: "
            f"{', '.join(f.name for f in self.formats)}"
        )


KINDS: dict[str, ExportKind] = {
    kind.name: kind
    for kind in (
        ExportKind(
            name="audit",
            description="the audit trail, oldest event first, one JSON object per line",
            formats=(JSON_LINES,),
            check_filters=audit_trail.check_filters,
            write=audit_trail.write,
        ),
        ExportKind(
            name="usage",
            description="the tenant's metered use per UTC hour of one month",
            formats=(CSV, JSON),
            check_filters=metered_usage.check_filters,
            write=metered_usage.write,
        ),
    )
}


def kind_named(name: str) -> ExportKind:
    """Return the kind called `name`, or raise InvalidInput listing the kinds."""
    kind = KINDS.get(name)
    if kind is None:
        raise InvalidInput(f"kind {name!r} is not a kind of export; use one of: {', '.join(KINDS)}")
    return kind

