"""Start a throwaway PgBouncer from Debian's package in front of the test PostgreSQL server.

It listens on 127.0.0.1 on a free port, pools in transaction mode (a server
connection serves one transaction, then the next client's) and passes every
database name through to the PostgreSQL server. One server connection per
database and user makes every client share it, so state that leaked from one
transaction into the next would show. PgBouncer refuses to run as root, so as
root it runs as the account PostgreSQL runs as.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg.conninfo import make_conninfo

from . import MissingService
from .postgres import (
    HOST,
    PostgresServer,
    _child_environment,
    _command_prefix,
    _find_free_port,
    _log_tail,
    _server_account,
    _shut_down,
)

DEBIAN_BINARY = "/usr/sbin/pgbouncer"
STARTUP_TIMEOUT_SECONDS = 30.0
POOL_SIZE = 1


class PgBouncer:
    """A running PgBouncer and the temporary folder holding its configuration and log."""

    def __init__(
        self, *, postgres: PostgresServer, base_dir: Path, port: int, process: subprocess.Popen[bytes]
    ) -> None:
        self.postgres = postgres
        self.base_dir = base_dir
        self.host = HOST
        self.port = port
        self.process = process
        self._stopped = False

    def __repr__(self) -> str:
        return f"<PgBouncer {self.host}:{self.port} in front of {self.postgres!r}>"

    def url(self, database: str) -> str:
        """Return the URL that reaches `database` through PgBouncer as the server's superuser."""
        user = quote(self.postgres.user, safe="")
        password = quote(self.postgres.password, safe="")
        return f"postgresql://{user}:{password}@{self.host}:{self.port}/{quote(database, safe='')}"

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        try:
            _shut_down(self.process)
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)


def find_binary() -> Path:
    found = shutil.which("pgbouncer") or (DEBIAN_BINARY if Path(DEBIAN_BINARY).is_file() else None)
    if found is None:
        raise MissingService("PgBouncer", "pgbouncer")
    return Path(found)


def start_pgbouncer(postgres: PostgresServer) -> PgBouncer:
    """Start PgBouncer in transaction pooling mode in front of `postgres`.

    Raises MissingService when PgBouncer is not installed.
    """
    binary = find_binary()
    account = _server_account()
    base_dir = Path(tempfile.mkdtemp(prefix="strongroom-pgbouncer-"))
    try:
        port = _find_free_port()
        config = _write_config(base_dir, postgres, port)
        if account is not None:
            for path in (base_dir, *base_dir.iterdir()):
                shutil.chown(path, account.pw_uid, account.pw_gid)
        command = _command_prefix(account, kill_with_parent=True) + [str(binary), str(config)]
        process = subprocess.Popen(
            command,
            cwd=base_dir,
            env=_child_environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        bouncer = PgBouncer(postgres=postgres, base_dir=base_dir, port=port, process=process)
        try:
            _wait_until_ready(bouncer)
        except BaseException:
            _shut_down(process)
            raise
    except BaseException:
        shutil.rmtree(base_dir, ignore_errors=True)
        raise
    return bouncer


def _write_config(base_dir: Path, postgres: PostgresServer, port: int) -> Path:
    users = base_dir / "userlist.txt"
    users.write_text(f'"{postgres.user}" "{postgres.password}"\n')
    users.chmod(0o600)
    config = base_dir / "pgbouncer.ini"
    config.write_text(
        "\n".join(
            [
                "[databases]",
                f"* = host={postgres.host} port={postgres.port} pool_size={POOL_SIZE}",
                "[pgbouncer]",
                f"listen_addr = {HOST}",
                f"listen_port = {port}",
                "unix_socket_dir =",
                "pool_mode = transaction",
                "auth_type = scram-sha-256",
                f"auth_file = {users}",
                f"logfile = {base_dir / 'pgbouncer.log'}",
                "max_client_conn = 200",
                # libpq clients may send it; PgBouncer refuses unknown startup parameters.
                "ignore_startup_parameters = extra_float_digits",
                "",
            ]
        )
    )
    return config


def _wait_until_ready(bouncer: PgBouncer) -> None:
    conninfo = make_conninfo(
        host=bouncer.host,
        port=bouncer.port,
        user=bouncer.postgres.user,
        password=bouncer.postgres.password,
        dbname="postgres",
    )
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while True:
        status = bouncer.process.poll()
        if status is not None:
            raise RuntimeError(
                f"PgBouncer exited with status {status} at start. Its log ends with:\n"
                f"{_log_tail(bouncer.base_dir / 'pgbouncer.log')}"
            )
        try:
            with psycopg.connect(conninfo, connect_timeout=2, prepare_threshold=None):
                return
        except psycopg.OperationalError as error:
            last_error = error
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"PgBouncer on {bouncer.host}:{bouncer.port} did not accept logins within "
                f"{STARTUP_TIMEOUT_SECONDS:.0f} seconds (last error: {last_error}). Its log ends "
                f"with:\n{_log_tail(bouncer.base_dir / 'pgbouncer.log')}"
            )
        time.sleep(0.05)
