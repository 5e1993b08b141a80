"""`strongroom migrate` and `strongroom check`: upkeep of the database and the blob store."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import Progress

from strongroom.base.config import get_settings
from strongroom.base.logging import configure_logging
from strongroom.drive.integrity import DEFAULT_GRACE_SECONDS, check_all
from strongroom.interfaces.cli.main import app, err, open_runtime, out, reports_errors
from strongroom.runtime import ensure_data_dir, open_catalog, open_engine
from strongroom.tenancy.upgrades import upgrade_every_store


@app.command()
@reports_errors
def migrate(
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs",
            "-j",
            help=(
                "Worker processes that migrate tenant stores at once. A run of fewer "
                "than 200 stores migrates them in this process, which is faster."
            ),
            min=1,
        ),
    ] = 1,
    canary: Annotated[
        str,
        typer.Option(
            help="Comma-separated tenant slugs to migrate first; a failure among them stops "
            "the run before the other tenants."
        ),
    ] = "",
) -> None:
    """Upgrade the catalog, the shared tenant tables and every tenant schema and database."""
    settings = get_settings()
    configure_logging("console", "warning")
    # The master key is not needed: migrating reads and writes no tenant key.
    ensure_data_dir(settings.data_dir)
    engine = open_engine(settings)
    catalog, stores = open_catalog(settings, engine)
    try:
        with Progress(console=err, transient=True) as progress:
            task = progress.add_task("migrating tenant stores", total=None)
            report = upgrade_every_store(
                settings,
                catalog,
                stores,
                jobs=jobs,
                canaries=canary.split(","),
                on_plan=lambda total: progress.update(task, total=total),
                on_outcome=lambda _outcome: progress.advance(task),
            )
    finally:
        stores.close()
        engine.dispose()

    for revision in report.platform:
        out.print(f"{revision.kind}: at revision {revision.current}")
    migrated = len(report.outcomes) - len(report.failures)
    out.print(
        f"tenant stores: {migrated} migrated to {report.head}, {report.up_to_date} already there, "
        f"{len(report.failures)} failed"
    )
    for outcome in report.failures:
        tenant = outcome.tenant
        err.print(
            f"error: tenant {tenant.slug} ({tenant.isolation} {tenant.placement} on server "
            f"{tenant.server}): {outcome.error}"
        )
    if report.stopped_by_canary:
        err.print(
            f"a canary failed, so the other {report.not_started} tenant stores were left as "
            "they were; fix it and run `strongroom migrate` again"
        )
    elif report.failures:
        err.print(
            "the tenants that failed answer 503 until migrated; fix the cause and run "
            "`strongroom migrate` again, which resumes with them"
        )
    if report.failures:
        raise typer.Exit(1)


@app.command()
@reports_errors
def check(
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help=(
                "Remove orphans, damaged blobs, rows without content and expired uploads, "
                "and settle uploads a crash left inconsistent."
            ),
        ),
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
        for upload_id in tenant.expired_uploads:
            out.print(f"{tenant.slug}: resumable upload {upload_id} has expired ({verb})")
        for upload_id, problem in tenant.unsettled_uploads:
            action = "settled" if repair else "found"
            out.print(f"{tenant.slug}: resumable upload {upload_id} {problem} ({action})")
        for loop in tenant.folder_loops:
            chain = " -> ".join(str(node_id) for node_id in [*loop, loop[0]])
            out.print(f"{tenant.slug}: folder loop {chain} (needs manual repair)")
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
