"""`strongroom migrate` and `strongroom check`: upkeep of the database and the blob store."""

from __future__ import annotations

from typing import Annotated

import typer

from strongroom.base.config import get_settings
from strongroom.base.logging import configure_logging
from strongroom.drive.integrity import DEFAULT_GRACE_SECONDS, check_all
from strongroom.interfaces.cli.main import app, open_runtime, out, reports_errors
from strongroom.storage.db import make_engine
from strongroom.tenancy import migrations


@app.command()
@reports_errors
def migrate() -> None:
    """Upgrade the catalog and the tenant tables to this version's schema."""
    settings = get_settings()
    configure_logging("console", "warning")
    engine = make_engine(settings.resolved_database_url)
    try:
        for revision in migrations.upgrade(engine):
            out.print(f"{revision.kind}: at revision {revision.current}")
    finally:
        engine.dispose()


@app.command()
@reports_errors
def check(
    repair: Annotated[
        bool,
        typer.Option("--repair", help="Remove orphans, damaged blobs and rows without content."),
    ] = False,
    grace: Annotated[
        float,
        typer.Option(help="Seconds a new blob or upload may wait for its row before it counts."),
    ] = DEFAULT_GRACE_SECONDS,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Also decrypt every blob in full; slow, as it reads all the stored content.",
        ),
    ] = False,
) -> None:
    """Compare the database with the blob store and report (or repair) what does not match."""
    runtime = open_runtime()
    report = check_all(runtime, repair=repair, grace_seconds=grace, verify=verify)
    verb = "removed" if repair else "found"

    for tenant in report.tenants:
        for key in tenant.orphan_blobs:
            out.print(f"{tenant.slug}: orphan blob {key} ({verb})")
        for blob_id in tenant.missing_blobs:
            action = "rows removed" if repair else "rows refer to it"
            out.print(f"{tenant.slug}: blob {blob_id} is missing from the store ({action})")
        for blob_id in tenant.damaged_blobs:
            action = "rows and blob removed" if repair else "rows refer to it"
            out.print(f"{tenant.slug}: blob {blob_id} is damaged ({action})")
        for loop in tenant.folder_loops:
            chain = " -> ".join(str(node_id) for node_id in [*loop, loop[0]])
            out.print(f"{tenant.slug}: folder loop {chain} (needs manual repair)")
        if tenant.missing_root:
            out.print(f"{tenant.slug}: the root folder is missing{' (created)' if repair else ''}")
        if tenant.usage_mismatch:
            fixed = ", recounted" if repair else ""
            out.print(
                f"{tenant.slug}: usage counter records {tenant.usage_recorded} bytes, "
                f"versions add up to {tenant.usage_counted}{fixed}"
            )
    for name in report.stale_uploads:
        out.print(f"abandoned upload {name} ({verb})")
    for key in report.unknown_tenant_blobs:
        out.print(f"blob {key} belongs to no tenant in the catalog (left alone)")

    if report.clean:
        out.print(f"checked {len(report.tenants)} tenants: no problems")
        return
    if report.needs_manual_repair:
        # A loop has no safe automatic fix: which parent link is wrong is a person's call.
        out.print(
            "folder loops need manual repair: set the parent of one folder in each loop to a "
            "folder outside it"
        )
    if not repair:
        rest = "the rest of " if report.needs_manual_repair else ""
        out.print(f"run `strongroom check --repair` to fix {rest}what is listed")
        raise typer.Exit(1)
    if report.needs_manual_repair:
        raise typer.Exit(1)
