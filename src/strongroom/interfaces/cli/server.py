"""`strongroom serve`: run the HTTP server, creating a demo tenant on a first embedded start."""

from __future__ import annotations

import signal
import socket
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from strongroom.base.config import get_settings
from strongroom.base.logging import configure_logging, get_logger
from strongroom.identity.passwords import generate_password
from strongroom.identity.tokens import create_token
from strongroom.identity.users import create_user
from strongroom.interfaces.cli.main import app, err, reports_errors
from strongroom.runtime import Runtime, build_runtime
from strongroom.tenancy.lifecycle import provision_tenant

if TYPE_CHECKING:
    import uvicorn

log = get_logger(__name__)

DEMO_SLUG = "demo"
DEMO_EMAIL = "demo@example.org"


@app.command()
@reports_errors
def serve(
    host: Annotated[Optional[str], typer.Option(help="Address to listen on.")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port to listen on.")] = None,
    demo: Annotated[
        bool, typer.Option(help="On a first start with no tenants, create the demo tenant.")
    ] = True,
    worker: Annotated[
        Optional[bool],
        typer.Option(
            help="Run the background jobs in this process too; default STRONGROOM_SERVE_WORKER, "
            "which is on with the SQLite job queue and off with Redis."
        ),
    ] = None,
) -> None:
    """Serve the web API on STRONGROOM_HOST:STRONGROOM_PORT (default 127.0.0.1:8000)."""
    # Imported here because the web stack costs half a second to import and no other
    # command needs it.
    import uvicorn

    from strongroom.interfaces.api.app import create_app

    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    address = (host or settings.host, port or settings.port)
    # Listen before anything else, so that a port in use stops the start before the
    # demo tenant is made and its one-time token printed for a server that never runs.
    try:
        listener = socket.create_server(address)
    except OSError as exc:
        log.error(
            "listen_failed",
            host=address[0],
            port=address[1],
            error=exc.strerror,
            advice="stop the other server on that port or set STRONGROOM_PORT",
        )
        raise typer.Exit(1) from None

    runtime = build_runtime(settings)
    if demo and settings.is_embedded and not runtime.catalog.list_tenants():
        _create_demo_tenant(runtime, *address)

    run_jobs = settings.should_serve_worker if worker is None else worker
    config = uvicorn.Config(
        create_app(runtime, run_jobs=run_jobs),
        access_log=False,
        log_config=None,
        proxy_headers=False,
        server_header=False,
    )
    log.info("server_starting", host=address[0], port=address[1], jobs=run_jobs)
    terminated = _serve_until_terminated(uvicorn.Server(config), listener, runtime)
    if terminated:
        # Die by the signal, as the default handler would, so that a supervisor
        # such as systemd records a clean stop.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.raise_signal(signal.SIGTERM)


class _Terminated(Exception):
    """SIGTERM arrived, and uvicorn has stopped serving."""


def _raise_terminated(_signum: int, _frame: object) -> None:
    raise _Terminated


def _serve_until_terminated(
    server: uvicorn.Server, listener: socket.socket, runtime: Runtime
) -> bool:
    """Serve until stopped, then close the runtime; return whether SIGTERM stopped the server.

    uvicorn catches SIGTERM while it serves, and once it has stopped it raises
    the signal again for the handler in place before it. With the default
    handler the process would end there, before the runtime closes and sends
    the mails still queued, so the handler here raises instead.
    """
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        server.run(sockets=[listener])
    except _Terminated:
        return True
    finally:
        signal.signal(signal.SIGTERM, previous)
        runtime.close()
        log.info("server_stopped")
    return False


def _create_demo_tenant(runtime: Runtime, host: str, port: int) -> None:
    tenant = provision_tenant(runtime.catalog, runtime.stores, DEMO_SLUG, "Demo")
    with runtime.stores.session(tenant, write=True) as session:
        password = generate_password(tenant.settings.password_policy)
        user = create_user(session, DEMO_EMAIL, password, role="admin", tenant=tenant)
        _row, token = create_token(session, user, "demo")

    base = f"http://{host}:{port}/t/{DEMO_SLUG}/api/v1"
    err.print(
        "\n".join(
            [
                "",
                f"Created the demo tenant {DEMO_SLUG!r} with the admin user {DEMO_EMAIL}.",
                "Its API token, shown only this once:",
                "",
                f"  export TOKEN={token}",
                "",
                "Try it:",
                f'  curl -H "Authorization: Bearer $TOKEN" -T README.md {base}/files/docs/README.md',
                f'  curl -H "Authorization: Bearer $TOKEN" {base}/folders/',
                "",
                f"A new token at any time: .venv/bin/strongroom token create {DEMO_SLUG} {DEMO_EMAIL}",
                "",
                f"The web UI is at http://{host}:{port}/t/{DEMO_SLUG}/; log in as {DEMO_EMAIL}",
                f"with the password {password} (shown only this once).",
                "",
            ]
        )
    )
