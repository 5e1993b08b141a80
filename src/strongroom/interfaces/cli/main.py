"""The `strongroom` command: serve, migrate, and manage tenants, users, tokens and app passwords.

Commands are thin: they parse arguments, call the functions the API calls,
print the result, and on failure print one line saying what went wrong and
exit non-zero (1 for a refused request, 2 for bad configuration).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from strongroom.base.config import get_settings
from strongroom.base.errors import ConfigurationError, StrongroomError
from strongroom.base.logging import configure_logging
from strongroom.runtime import Runtime, build_runtime

PIPED_WIDTH = 1000

app = typer.Typer(
    help="Strongroom: multi-tenant, encrypted file storage.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
tenant_app = typer.Typer(help="Create, inspect, suspend and re-key tenants.", no_args_is_help=True)
user_app = typer.Typer(help="Manage the users of a tenant.", no_args_is_help=True)
token_app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)
app_password_app = typer.Typer(
    help="Create, list and revoke the app passwords that WebDAV clients log in with.",
    no_args_is_help=True,
)
server_app = typer.Typer(
    help="Register the PostgreSQL servers that tenants can be placed on.", no_args_is_help=True
)
plan_app = typer.Typer(
    help="Create, change and delete plans: bundles of limits and modules for tenants.",
    no_args_is_help=True,
)
guest_app = typer.Typer(
    help="List the guests of a tenant and end one; members and admins invite them.",
    no_args_is_help=True,
)
operator_app = typer.Typer(help="Manage what operators use: API tokens.", no_args_is_help=True)
operator_token_app = typer.Typer(
    help="Create, list and revoke operator API tokens.", no_args_is_help=True
)
operator_app.add_typer(operator_token_app, name="token")
app.add_typer(tenant_app, name="tenant")
app.add_typer(plan_app, name="plan")
app.add_typer(server_app, name="server")
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
app.add_typer(guest_app, name="guest")
app.add_typer(app_password_app, name="app-password")
app.add_typer(operator_app, name="operator")

# Markup is off because names, e-mail addresses and paths may contain [brackets].
# Piped output gets no width limit: a table cut at 80 columns would end ids with "…",
# and scripts read ids from it to pass to `revoke`.
out = Console(
    highlight=False,
    soft_wrap=True,
    markup=False,
    width=None if sys.stdout.isatty() else PIPED_WIDTH,
)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)

Command = TypeVar("Command", bound=Callable[..., Any])


def reports_errors(command: Command) -> Command:
    """Turn Strongroom errors into one line on standard error and an exit status."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ConfigurationError as exc:
            err.print(f"[red]error:[/red] {escape(exc.detail)}", markup=True)
            raise typer.Exit(2) from None
        except StrongroomError as exc:
            err.print(f"[red]error:[/red] {escape(exc.detail)}", markup=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def open_runtime(migrate: bool | None = None) -> Runtime:
    settings = get_settings()
    configure_logging("console" if sys.stderr.isatty() else settings.log_format, "warning")
    return build_runtime(settings, migrate=migrate)


# Importing the command modules registers their commands on the apps above.
from strongroom.interfaces.cli import (  # noqa: E402, F401
    admin,
    app_passwords,
    guests,
    operators,
    plans,
    server,
    servers,
    tenants,
    usage,
    users,
    worker,
)


def run() -> None:
    try:
        app()
    except ConfigurationError as exc:
        err.print(f"error: {exc.detail}", markup=False)
        sys.exit(2)
