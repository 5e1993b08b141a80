"""`strongroom plan ...`: the operator's plans, and the option parsing that tenant limits share."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from strongroom.base.errors import InvalidInput
from strongroom.interfaces.cli.main import open_runtime, out, plan_app, reports_errors
from strongroom.tenancy.plans import (
    FROM_PLAN,
    count_tenants_by_plan,
    create_plan,
    delete_plan,
    get_plan,
    list_plans,
    update_plan,
)

UNLIMITED = "unlimited"

LIMIT_HELP = "Give a whole number, or 'unlimited'."
Storage = Annotated[str | None, typer.Option("--storage", help=f"Storage in bytes. {LIMIT_HELP}")]
Users = Annotated[str | None, typer.Option("--users", help=f"Number of users. {LIMIT_HELP}")]
MaxFileSize = Annotated[
    str | None, typer.Option("--max-file-size", help=f"Bytes per file. {LIMIT_HELP}")
]
RequestsPerMinute = Annotated[
    str | None,
    typer.Option("--requests-per-minute", help=f"Requests per minute, whole tenant. {LIMIT_HELP}"),
]
UserRequestsPerMinute = Annotated[
    str | None,
    typer.Option("--user-requests-per-minute", help=f"Requests per minute, each user. {LIMIT_HELP}"),
]
Bandwidth = Annotated[
    str | None,
    typer.Option("--bandwidth", help=f"Bytes per second, uploads and downloads. {LIMIT_HELP}"),
]
ConcurrentTransfers = Annotated[
    str | None,
    typer.Option(
        "--concurrent-transfers", help=f"Uploads and downloads at once. {LIMIT_HELP}"
    ),
]
Modules = Annotated[
    str | None,
    typer.Option(help="Comma-separated modules the plan allows; default all of them."),
]
SettingValues = Annotated[
    list[str] | None,
    typer.Option(
        "--setting",
        help="A default tenant setting, KEY=VALUE, repeatable. VALUE is JSON or plain text; "
        "KEY may be dotted, as in password_policy.min_length=14.",
    ),
]


def parse_limit(name: str, text: str, allow_plan: bool = False) -> Any:
    """Parse a limit option: bytes or a count, 'unlimited' (None), or with `allow_plan` 'plan'."""
    value = text.strip().lower()
    if value == UNLIMITED:
        return None
    if allow_plan and value == "plan":
        return FROM_PLAN
    if not value.isdigit():
        choices = "'unlimited' or 'plan'" if allow_plan else "'unlimited'"
        raise InvalidInput(f"{name} {text!r} is invalid; give a whole number, or {choices}")
    return int(value)


def limit_options(allow_plan: bool = False, **options: str | None) -> dict[str, Any]:
    """Return the limit options that were given, by TenantLimits field name."""
    return {
        name: parse_limit(name, text, allow_plan)
        for name, text in options.items()
        if text is not None
    }


def parse_assignments(assignments: list[str] | None) -> dict[str, Any]:
    """Turn KEY=VALUE strings into a JSON merge patch; a dotted KEY sets a nested value."""
    patch: dict[str, Any] = {}
    for assignment in assignments or []:
        key, equals, text = assignment.partition("=")
        path = key.strip().split(".")
        if not equals or not all(path):
            raise InvalidInput(f"{assignment!r} is not KEY=VALUE; write for example time_zone=UTC")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        target = patch
        for part in path[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise InvalidInput(f"{key!r} sets a part of {part!r}, which another KEY=VALUE set")
        target[path[-1]] = value
    return patch


def show_limit(value: int | None) -> str:
    return UNLIMITED if value is None else str(value)


@plan_app.command("create")
@reports_errors
def create(
    name: Annotated[str, typer.Argument(help="1 to 63 lowercase letters, digits and hyphens.")],
    description: Annotated[str, typer.Option(help="What the plan is for.")] = "",
    storage: Storage = None,
    users: Users = None,
    max_file_size: MaxFileSize = None,
    requests_per_minute: RequestsPerMinute = None,
    user_requests_per_minute: UserRequestsPerMinute = None,
    bandwidth: Bandwidth = None,
    concurrent_transfers: ConcurrentTransfers = None,
    modules: Modules = None,
    setting: SettingValues = None,
) -> None:
    """Create a plan; limits not given are unlimited."""
    limits = limit_options(
        storage_bytes=storage,
        max_users=users,
        max_file_size=max_file_size,
        requests_per_minute=requests_per_minute,
        user_requests_per_minute=user_requests_per_minute,
        bandwidth_bytes_per_second=bandwidth,
        concurrent_transfers=concurrent_transfers,
    )
    runtime = open_runtime()
    plan = create_plan(
        runtime.catalog,
        name,
        description,
        limits,
        _module_list(modules),
        parse_assignments(setting),
    )
    out.print(f"created plan {plan.name}")


@plan_app.command("update")
@reports_errors
def update(
    name: str,
    description: Annotated[str | None, typer.Option(help="What the plan is for.")] = None,
    storage: Storage = None,
    users: Users = None,
    max_file_size: MaxFileSize = None,
    requests_per_minute: RequestsPerMinute = None,
    user_requests_per_minute: UserRequestsPerMinute = None,
    bandwidth: Bandwidth = None,
    concurrent_transfers: ConcurrentTransfers = None,
    modules: Modules = None,
    setting: SettingValues = None,
) -> None:
    """Change a plan; its tenants get the change within STRONGROOM_TENANT_CACHE_SECONDS."""
    limits = limit_options(
        storage_bytes=storage,
        max_users=users,
        max_file_size=max_file_size,
        requests_per_minute=requests_per_minute,
        user_requests_per_minute=user_requests_per_minute,
        bandwidth_bytes_per_second=bandwidth,
        concurrent_transfers=concurrent_transfers,
    )
    runtime = open_runtime()
    plan = update_plan(
        runtime.catalog,
        name,
        description=description,
        limits=limits,
        modules=_module_list(modules),
        settings=parse_assignments(setting) if setting else None,
    )
    out.print(json.dumps(plan.as_dict(), indent=2), markup=False)


@plan_app.command("list")
@reports_errors
def list_all() -> None:
    """List the plans, their limits and how many tenants have each."""
    runtime = open_runtime()
    plans = list_plans(runtime.catalog)
    tenants = count_tenants_by_plan(runtime.catalog)
    table = Table(
        "name",
        "tenants",
        "storage (bytes)",
        "users",
        "max file size",
        "requests/min",
        "user requests/min",
        "bandwidth (bytes/s)",
        "transfers",
        "modules",
    )
    for plan in plans:
        limits = plan.limits
        table.add_row(
            plan.name,
            str(tenants.get(plan.name, 0)),
            show_limit(limits.storage_bytes),
            show_limit(limits.max_users),
            show_limit(limits.max_file_size),
            show_limit(limits.requests_per_minute),
            show_limit(limits.user_requests_per_minute),
            show_limit(limits.bandwidth_bytes_per_second),
            show_limit(limits.concurrent_transfers),
            ",".join(plan.modules),
        )
    out.print(table)


@plan_app.command("show")
@reports_errors
def show(name: str) -> None:
    """Print a plan as JSON, with the number of tenants that have it."""
    runtime = open_runtime()
    plan = get_plan(runtime.catalog, name)
    described = {**plan.as_dict(), "tenants": count_tenants_by_plan(runtime.catalog).get(name, 0)}
    out.print(json.dumps(described, indent=2), markup=False)


@plan_app.command("delete")
@reports_errors
def delete(name: str) -> None:
    """Delete a plan that no tenant has."""
    runtime = open_runtime()
    delete_plan(runtime.catalog, name)
    out.print(f"deleted plan {name}")


def _module_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [name.strip() for name in text.split(",") if name.strip()]
