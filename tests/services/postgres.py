"""Start a throwaway PostgreSQL server from Debian's packages for a test session.

The server listens on 127.0.0.1 on a free port and on a unix socket in its own temporary
folder, and trades durability for speed (fsync=off and similar), so it must only ever hold
test data. PostgreSQL refuses to run as root, so when the tests run as root the server runs
as the `postgres` system account instead, or as one created with useradd if that is missing.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self
from urllib.parse import quote

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from . import MissingService

DEBIAN_BIN_DIRS = "/usr/lib/postgresql/*/bin"
HOST = "127.0.0.1"
SUPERUSER = "postgres"

# Debian's postgresql package creates the `postgres` account. This one is created only
# when the server binaries came from somewhere that did not.
FALLBACK_ACCOUNT = "strongroom-postgres"

# PostgreSQL truncates longer identifiers to this many bytes (NAMEDATALEN - 1).
MAX_IDENTIFIER_BYTES = 63

STARTUP_TIMEOUT_SECONDS = 60.0
SHUTDOWN_TIMEOUT_SECONDS = 15.0
START_ATTEMPTS = 3

# These settings make the server faster by giving up crash safety, which a cluster that is
# deleted at the end of the test session never needs.
FAST_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
}


class PostgresServer:
    """A running throwaway PostgreSQL server and the temporary folder that contains its data."""

    def __init__(
        self,
        *,
        bin_dir: Path,
        base_dir: Path,
        port: int,
        password: str,
        process: subprocess.Popen[bytes],
    ) -> None:
        self.bin_dir = bin_dir
        self.base_dir = base_dir
        self.host = HOST
        self.port = port
        self.user = SUPERUSER
        self.password = password
        self.process = process
        self._stopped = False

    def __repr__(self) -> str:
        # The password stays out so that it never appears in test reports.
        return f"<PostgresServer {self.host}:{self.port} in {self.base_dir}>"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def url(self, database: str) -> str:
        """Return the URL that logs in to `database` as the cluster's superuser over TCP."""
        user = quote(self.user, safe="")
        password = quote(self.password, safe="")
        return f"postgresql://{user}:{password}@{self.host}:{self.port}/{quote(database, safe='')}"

    @property
    def admin_url(self) -> str:
        """URL of the `postgres` maintenance database, for creating and dropping databases."""
        return self.url("postgres")

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create a database called `name`, empty or as a copy of `template`, and return its URL."""
        _check_identifier(name)
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            _check_identifier(template)
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            connection.execute(statement)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop the database `name`, closing its open connections first. A missing one is fine."""
        _check_identifier(name)
        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def stop(self) -> None:
        """Shut the server down and delete its folder. Calling it again does nothing."""
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        try:
            _shut_down(self.process)
        finally:
            shutil.rmtree(self.base_dir)


def start_postgres() -> PostgresServer:
    """Initialise a new cluster in a temporary folder and start a server on it.

    Raises MissingService when PostgreSQL's server binaries are not installed.
    """
    bin_dir = find_bin_dir()
    account = _server_account()
    base_dir = Path(tempfile.mkdtemp(prefix="strongroom-postgres-"))
    try:
        if account is not None:
            os.chown(base_dir, account.pw_uid, account.pw_gid)
        password = secrets.token_urlsafe(24)
        _init_cluster(bin_dir, base_dir, account, password)
        process, port = _start_server(bin_dir, base_dir, account, password)
    except BaseException:
        shutil.rmtree(base_dir, ignore_errors=True)
        raise

    server = PostgresServer(
        bin_dir=bin_dir, base_dir=base_dir, port=port, password=password, process=process
    )
    # A fallback for callers outside pytest that forget stop().
    atexit.register(server.stop)
    return server


def find_bin_dir() -> Path:
    """Return the newest PostgreSQL version's bin folder that contains the server binaries."""
    candidates = []
    for bin_dir in map(Path, glob.glob(DEBIAN_BIN_DIRS)):
        version = bin_dir.parent.name
        if not version.replace(".", "").isdigit():
            continue
        if (bin_dir / "postgres").is_file() and (bin_dir / "initdb").is_file():
            candidates.append((tuple(int(part) for part in version.split(".")), bin_dir))
    if not candidates:
        raise MissingService("PostgreSQL", "postgresql")
    return max(candidates)[1]


def _check_identifier(name: str) -> None:
    size = len(name.encode())
    if size == 0 or size > MAX_IDENTIFIER_BYTES:
        raise ValueError(
            f"invalid database name {name!r}: it is {size} bytes long, but PostgreSQL needs "
            f"1 to {MAX_IDENTIFIER_BYTES} bytes, so choose a name of that length"
        )


def _server_account() -> pwd.struct_passwd | None:
    """Return the account to run PostgreSQL as, or None to run it as the current user."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", FALLBACK_ACCOUNT):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            pass

    result = subprocess.run(
        [
            "useradd",
            "--system",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            FALLBACK_ACCOUNT,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    # Exit status 9 means that a parallel test run created the account first.
    if result.returncode not in (0, 9):
        raise RuntimeError(
            f"useradd failed with exit status {result.returncode} while creating the account "
            f"{FALLBACK_ACCOUNT!r} to run PostgreSQL, which refuses to run as root. Create "
            f"that account by hand or run the tests as a user other than root. useradd "
            f"printed: {result.stderr.strip()}"
        )
    return pwd.getpwnam(FALLBACK_ACCOUNT)


def _command_prefix(account: pwd.struct_passwd | None, *, kill_with_parent: bool) -> list[str]:
    """Return the setpriv arguments that run a command as `account`.

    With `kill_with_parent`, the command also gets SIGQUIT (PostgreSQL's immediate shutdown)
    when the thread that started it dies. That stops the server even when the test process
    is killed before its fixtures can tear down, although the folder is then left behind.
    Because Linux sends the signal when the starting thread ends, not the process, the
    server must be started from a thread that outlives it, such as pytest's main thread.
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        if account is not None:
            raise MissingService("setpriv", "util-linux")
        # Running as ourselves works without setpriv, at the cost of the kill-with-parent guard.
        return []

    prefix = [setpriv]
    if kill_with_parent:
        prefix += ["--pdeathsig", "QUIT"]
    if account is not None:
        prefix += [
            f"--reuid={account.pw_uid}",
            f"--regid={account.pw_gid}",
            "--clear-groups",
        ]
    return prefix


def _child_environment() -> dict[str, str]:
    # The C locale keeps server messages in English, because the startup code below
    # searches the log for one of them.
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith(("PG", "LC_"))
    }
    environment["LC_ALL"] = "C"
    return environment


def _init_cluster(
    bin_dir: Path, base_dir: Path, account: pwd.struct_passwd | None, password: str
) -> None:
    password_file = base_dir / "password"
    password_file.write_text(password + "\n")
    password_file.chmod(0o600)
    if account is not None:
        os.chown(password_file, account.pw_uid, account.pw_gid)

    command = _command_prefix(account, kill_with_parent=False) + [
        str(bin_dir / "initdb"),
        f"--pgdata={base_dir / 'data'}",
        f"--username={SUPERUSER}",
        f"--pwfile={password_file}",
        # Password logins for TCP and the unix socket alike, so tests use one kind of URL.
        "--auth=scram-sha-256",
        "--encoding=UTF8",
        "--locale=C",
        # The cluster is deleted after the session, so flushing it to disk only costs time.
        "--no-sync",
    ]
    result = subprocess.run(
        command,
        cwd=base_dir,
        env=_child_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    password_file.unlink()
    if result.returncode != 0:
        hint = ""
        if account is not None:
            hint = (
                f"\nThe account {account.pw_name!r} must be able to enter every parent folder "
                f"of {base_dir}; point TMPDIR at a folder that it can reach."
            )
        raise RuntimeError(
            f"initdb failed with exit status {result.returncode} in {base_dir}:\n"
            f"{result.stdout}{hint}"
        )


def _start_server(
    bin_dir: Path, base_dir: Path, account: pwd.struct_passwd | None, password: str
) -> tuple[subprocess.Popen[bytes], int]:
    """Start the server on a free port and wait until it accepts a password login."""
    log_path = base_dir / "postgres.log"
    for _attempt in range(START_ATTEMPTS):
        port = _find_free_port()
        settings = {
            **FAST_SETTINGS,
            "listen_addresses": HOST,
            "port": str(port),
            "unix_socket_directories": str(base_dir),
        }
        command = _command_prefix(account, kill_with_parent=True) + [
            str(bin_dir / "postgres"),
            "-D",
            str(base_dir / "data"),
        ]
        for name, value in settings.items():
            command += ["-c", f"{name}={value}"]

        # Each attempt starts a new log, so that a failed earlier attempt cannot be mistaken
        # for the reason this one failed.
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command,
                cwd=base_dir,
                env=_child_environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            started = _wait_until_ready(process, port, password, log_path)
        except BaseException:
            _shut_down(process)
            raise
        if started:
            return process, port
        # Otherwise another process took the port between _find_free_port() and the
        # server's bind, so the loop tries again with a new one.

    raise RuntimeError(
        f"PostgreSQL could not bind a free port on {HOST} in {START_ATTEMPTS} attempts. "
        f"Its log ends with:\n{_log_tail(log_path)}"
    )


def _find_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _wait_until_ready(
    process: subprocess.Popen[bytes], port: int, password: str, log_path: Path
) -> bool:
    """Return True once the server accepts logins, or False if it lost a race for its port."""
    conninfo = make_conninfo(
        host=HOST, port=port, user=SUPERUSER, password=password, dbname="postgres"
    )
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while True:
        status = process.poll()
        if status is not None:
            log = _log_tail(log_path)
            if "could not create any TCP/IP sockets" in log:
                return False
            raise RuntimeError(
                f"PostgreSQL exited with status {status} during startup. Its log ends with:\n{log}"
            )
        try:
            with psycopg.connect(conninfo, connect_timeout=2):
                return True
        except psycopg.OperationalError as error:
            last_error = error
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"PostgreSQL on {HOST}:{port} timed out: it did not accept logins within "
                f"{STARTUP_TIMEOUT_SECONDS:.0f} seconds (last error: {last_error}). "
                f"Its log ends with:\n{_log_tail(log_path)}"
            )
        time.sleep(0.1)


def _shut_down(process: subprocess.Popen[bytes]) -> None:
    """Stop the server with a fast shutdown, escalating to immediate shutdown and then SIGKILL."""
    for stop_signal in (signal.SIGINT, signal.SIGQUIT, signal.SIGKILL):
        if process.poll() is not None:
            return
        process.send_signal(stop_signal)
        try:
            process.wait(timeout=SHUTDOWN_TIMEOUT_SECONDS)
            return
        except subprocess.TimeoutExpired:
            continue
    raise RuntimeError(
        f"PostgreSQL process {process.pid} did not exit within {SHUTDOWN_TIMEOUT_SECONDS:.0f} "
        "seconds of SIGKILL"
    )


def _log_tail(log_path: Path, lines: int = 40) -> str:
    try:
        text = log_path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log was written)"
    return "\n".join(text.splitlines()[-lines:])
