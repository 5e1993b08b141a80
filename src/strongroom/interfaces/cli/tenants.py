"""`strongroom tenant ...`: the operator's commands for tenants."""

from __future__ import annotations

import json
from enum import Enum
from typing import Annotated, Optional

import typer
from rich.progress import Progress
from rich.table import Table

from strongroom.base.errors import InvalidInput
from strongroom.drive.keys import count_blobs_to_rewrap, rewrap_blob_keys
from strongroom.interfaces.cli.main import open_runtime, out, reports_errors, tenant_app
from strongroom.interfaces.cli.plans import (
    Bandwidth,
    ConcurrentTransfers,
    MaxFileSize,
    RequestsPerMinute,
    Storage,
    UserRequestsPerMinute,
    Users,
    limit_options,
    parse_assignments,
)
from strongroom.tenancy.configuration import set_modules, update_settings
from strongroom.tenancy.context import (
    ACTIVE,
    DEFAULT_PLAN,
    ISOLATION_LEVELS,
    SUSPENDED,
    TenantInfo,
)
from strongroom.tenancy.events import OPERATOR
from strongroom.tenancy.lifecycle import provision_tenant
from strongroom.tenancy.modules import MODULES
from strongroom.tenancy.moves import STEPS, move_tenant
from strongroom.tenancy.plans import get_plan, set_limit_overrides, set_tenant_plan
from strongroom.tenancy.usage import get_usage


def _describe(tenant: TenantInfo, used: int | None = None) -> dict[str, object]:
    described: dict[str, object] = {
        "id": str(tenant.id),
        "slug": tenant.slug,
        "name": tenant.name,
        "status": tenant.status,
        "isolation": tenant.isolation,
        "server": tenant.server,
        "placement": tenant.placement,
        "store_revision": tenant.store_revision,
        "quota_bytes": tenant.quota_bytes,
        "plan": tenant.plan,
        "limits": tenant.limits.as_dict(),
        "modules": [name for name in MODULES if name in tenant.modules],
    }
    if used is not None:
        described["used_bytes"] = used
    return described


Isolation = Enum("Isolation", {level: level for level in ISOLATION_LEVELS}, type=str)  # type: ignore[misc]


@tenant_app.command("create")
@reports_errors
def create(
    slug: Annotated[str, typer.Argument(help="3 to 63 lowercase letters, digits and hyphens.")],
    name: Annotated[Optional[str], typer.Option(help="Display name; default the slug.")] = None,
    quota: Annotated[
        Optional[int], typer.Option(help="Storage quota in bytes; default unlimited.", min=0)
    ] = None,
    isolation: Annotated[
        Isolation,
        typer.Option(
            help="shared: tables shared with other tenants. schema: a PostgreSQL schema of its "
            "own. database: a database of its own (a SQLite file in the embedded default)."
        ),
    ] = Isolation.shared,  # type: ignore[attr-defined]
    server: Annotated[
        Optional[str],
        typer.Option(help="For schema and database: a server from `strongroom server list`."),
    ] = None,
    plan: Annotated[
        Optional[str], typer.Option(help="A plan from `strongroom plan list`; default 'default'.")
    ] = None,
) -> None:
    """Create a tenant, with its own encryption key, on the isolation level and plan chosen.

    --quota overrides the plan's storage limit. Without --quota and --plan,
    STRONGROOM_DEFAULT_QUOTA, when set, is that override.
    """
    runtime = open_runtime()
    # A quota of 0 is a real limit, so only a missing --quota falls back to the default.
    if quota is None and plan is None:
        quota = runtime.settings.default_quota
    tenant = provision_tenant(
        runtime.catalog,
        runtime.stores,
        slug,
        name,
        quota,
        isolation.value,
        server,
        plan=plan or DEFAULT_PLAN,
    )
    out.print(f"created tenant {tenant.slug} ({tenant.id}) on plan {tenant.plan}")


@tenant_app.command("list")
@reports_errors
def list_tenants(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """List every tenant with its status and isolation level."""
    runtime = open_runtime()
    tenants = runtime.catalog.list_tenants()
    if as_json:
        for tenant in tenants:
            out.print(json.dumps(_describe(tenant)), markup=False)
        return
    table = Table("slug", "name", "status", "isolation", "server", "plan", "quota (bytes)", "id")
    for tenant in tenants:
        quota = "unlimited" if tenant.quota_bytes is None else str(tenant.quota_bytes)
        table.add_row(
            tenant.slug,
            tenant.name,
            tenant.status,
            tenant.isolation,
            tenant.server,
            tenant.plan,
            quota,
            str(tenant.id),
        )
    out.print(table)


@tenant_app.command("show")
@reports_errors
def show(slug: str) -> None:
    """Print a tenant's catalog entry and storage usage as JSON."""
    runtime = open_runtime()
    tenant = runtime.catalog.get_tenant(slug)
    used = None
    # A tenant still being made, or left half-made, may have no store to read yet.
    if tenant.status in (ACTIVE, SUSPENDED):
        with runtime.stores.session(tenant) as session:
            used = get_usage(session)
    out.print(json.dumps(_describe(tenant, used), indent=2), markup=False)


@tenant_app.command("suspend")
@reports_errors
def suspend(slug: str) -> None:
    """Block every request to the tenant with 403; its data stays intact."""
    runtime = open_runtime()
    runtime.catalog.set_status(slug, SUSPENDED)
    out.print(f"suspended tenant {slug}")


@tenant_app.command("resume")
@reports_errors
def resume(slug: str) -> None:
    """Let a suspended tenant's requests through again."""
    runtime = open_runtime()
    runtime.catalog.set_status(slug, ACTIVE)
    out.print(f"resumed tenant {slug}")


@tenant_app.command("set-quota")
@reports_errors
def set_quota(
    slug: str,
    quota: Annotated[Optional[int], typer.Argument(help="Bytes; omit for unlimited.", min=0)] = None,
) -> None:
    """Override the plan's storage limit for a tenant; without BYTES, its storage is unlimited."""
    runtime = open_runtime()
    tenant = set_limit_overrides(
        runtime.catalog, runtime.stores, slug, {"storage_bytes": quota}, OPERATOR
    )
    limit = "unlimited" if tenant.quota_bytes is None else f"{tenant.quota_bytes} bytes"
    out.print(f"quota of tenant {slug}: {limit}")


@tenant_app.command("set-plan")
@reports_errors
def set_plan(
    slug: str, plan: Annotated[str, typer.Argument(help="A plan from `strongroom plan list`.")]
) -> None:
    """Move a tenant to another plan; its own limit overrides, modules and settings stay."""
    runtime = open_runtime()
    tenant = set_tenant_plan(runtime.catalog, runtime.stores, slug, plan, OPERATOR)
    out.print(f"tenant {slug} is on plan {tenant.plan}")


@tenant_app.command("limits")
@reports_errors
def limits(
    slug: str,
    requests_per_minute: RequestsPerMinute = None,
    storage: Storage = None,
    max_file_size: MaxFileSize = None,
    user_requests_per_minute: UserRequestsPerMinute = None,
    users: Users = None,
    bandwidth: Bandwidth = None,
    concurrent_transfers: ConcurrentTransfers = None,
) -> None:
    """Override limits of the tenant's plan for this tenant, then print its limits as JSON.

    Each option takes a whole number, 'unlimited', or 'plan' to remove the
    override. Without options, only print.
    """
    changes = limit_options(
        allow_plan=True,
        requests_per_minute=requests_per_minute,
        storage_bytes=storage,
        max_file_size=max_file_size,
        user_requests_per_minute=user_requests_per_minute,
        max_users=users,
        bandwidth_bytes_per_second=bandwidth,
        concurrent_transfers=concurrent_transfers,
    )
    runtime = open_runtime()
    if changes:
        tenant = set_limit_overrides(runtime.catalog, runtime.stores, slug, changes, OPERATOR)
    else:
        tenant = runtime.catalog.get_tenant(slug)
    described = {
        "plan": tenant.plan,
        "limits": tenant.limits.as_dict(),
        "plan_limits": get_plan(runtime.catalog, tenant.plan).limits.as_dict(),
    }
    out.print(json.dumps(described, indent=2), markup=False)


@tenant_app.command("modules")
@reports_errors
def modules(
    slug: str,
    enable: Annotated[
        Optional[list[str]], typer.Option("--enable", help="Module to switch on; repeatable.")
    ] = None,
    disable: Annotated[
        Optional[list[str]], typer.Option("--disable", help="Module to switch off; repeatable.")
    ] = None,
) -> None:
    """Switch modules on or off for a tenant, then list them.

    The modules are public_links, upload_requests, versioning, webdav, guests
    and webhooks. A module outside the tenant's plan cannot be switched on.
    """
    both = set(enable or []) & set(disable or [])
    if both:
        raise InvalidInput(f"{', '.join(sorted(both))} cannot be enabled and disabled at once")
    changes = {name: True for name in enable or []} | {name: False for name in disable or []}
    runtime = open_runtime()
    if changes:
        tenant = set_modules(runtime.catalog, runtime.stores, slug, changes, OPERATOR)
    else:
        tenant = runtime.catalog.get_tenant(slug)
    table = Table("module", "state", "in plan")
    for name in MODULES:
        state = "enabled" if name in tenant.modules else "disabled"
        table.add_row(name, state, "yes" if name in tenant.plan_modules else "no")
    out.print(table)


@tenant_app.command("settings")
@reports_errors
def settings(
    slug: str,
    assignments: Annotated[
        Optional[list[str]],
        typer.Option(
            "--set",
            help="KEY=VALUE, repeatable. VALUE is JSON or plain text, null restores the plan's "
            "default; KEY may be dotted, as in password_policy.min_length=14.",
        ),
    ] = None,
) -> None:
    """Change a tenant's settings, then print the settings in force as JSON."""
    runtime = open_runtime()
    if assignments:
        tenant = update_settings(
            runtime.catalog, runtime.stores, slug, parse_assignments(assignments), OPERATOR
        )
    else:
        tenant = runtime.catalog.get_tenant(slug)
    out.print(tenant.settings.model_dump_json(indent=2), markup=False)


@tenant_app.command("rotate-key")
@reports_errors
def rotate_key(slug: str) -> None:
    """Add a tenant key version and re-wrap every blob key with it; contents are not rewritten."""
    runtime = open_runtime()
    tenant = runtime.catalog.get_tenant(slug)
    version = runtime.catalog.add_key_version(tenant.id)
    total = count_blobs_to_rewrap(runtime.stores, tenant, version)
    with Progress(console=out, transient=True) as progress:
        task = progress.add_task(f"re-wrapping {total} blob keys", total=total)
        done = rewrap_blob_keys(
            runtime.stores,
            runtime.keyring,
            tenant,
            version,
            progress=lambda count: progress.advance(task, count),
        )
    out.print(f"tenant {slug} now uses key version {version}; re-wrapped {done} blob keys")


@tenant_app.command("move")
@reports_errors
def move(
    slug: str,
    isolation: Annotated[Isolation, typer.Option(help="The isolation level to move to.")],
    server: Annotated[
        Optional[str],
        typer.Option(help="For schema and database: a server from `strongroom server list`."),
    ] = None,
) -> None:
    """Move a tenant's rows to another isolation level or server while it stays online.

    Reads go on throughout; writes get 503 with Retry-After during the last copy
    only. Blobs stay where they are.
    """
    runtime = open_runtime()
    # Other replicas keep the catalog this long, and read the old store meanwhile.
    settle_seconds = runtime.settings.tenant_cache_seconds + 1
    with Progress(console=out, transient=True) as progress:
        task = progress.add_task(f"moving {slug}", total=len(STEPS))

        def show_step(step: str) -> None:
            progress.update(task, description=f"moving {slug}: {step}", completed=STEPS.index(step))

        report = move_tenant(
            runtime.catalog,
            runtime.stores,
            slug,
            isolation.value,
            server,
            settle_seconds=settle_seconds,
            before_step=show_step,
        )
    rows = sum(check.rows for check in report.tables)
    out.print(
        f"moved tenant {slug} from the {report.source.isolation} level of server "
        f"{report.source.server!r} to the {report.target.isolation} level of server "
        f"{report.target.server!r}: {rows} rows in {len(report.tables)} tables, each count and "
        f"checksum verified; writes waited {report.frozen_seconds:.2f} s of {report.seconds:.1f} s"
    )
