"""Shared plumbing for the benchmarks: a Strongroom server in a subprocess, the CLI, machine facts.

Each benchmark runs the product the way an operator would: `strongroom serve`
on the embedded default (SQLite and local blobs in a fresh data directory),
set up with the real `strongroom` commands, and reached over HTTP on loopback.
"""

from __future__ import annotations

import contextlib
import os
import platform
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Self
from urllib.parse import quote

import httpx

if TYPE_CHECKING:
    from tests.services.postgres import PostgresServer

LOOPBACK = "127.0.0.1"
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0


class BenchmarkError(Exception):
    """A benchmark could not set up or tear down what it measures."""


class CheckFailed(Exception):
    """A wrong result from the measured operation, such as wrong bytes or a missing column."""


def strongroom_command() -> str:
    """Return the `strongroom` console script of the running environment."""
    beside_python = Path(sys.executable).parent / "strongroom"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("strongroom")
    if found is None:
        raise BenchmarkError(
            "the strongroom command is not installed; run `make test` once, "
            "or `pip install -e .` in the virtual environment"
        )
    return found


def free_port() -> int:
    """Return a loopback port that was free a moment ago; the server binds it soon after."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def strongroom_environment(data_dir: Path, **settings: str) -> dict[str, str]:
    """Return this process's environment with only the given STRONGROOM_* settings.

    A developer's own STRONGROOM_DATABASE_URL or master key must not leak into
    a benchmark that claims to measure the embedded default.
    """
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("STRONGROOM_")
    }
    environment["STRONGROOM_DATA_DIR"] = str(data_dir)
    for name, value in settings.items():
        environment[f"STRONGROOM_{name.upper()}"] = value
    return environment


def temporary_work_dir(prefix: str, parent: Path | None) -> tempfile.TemporaryDirectory[str]:
    """Return a temporary folder under `parent` (the system's when None), creating `parent` first."""
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(prefix=prefix, dir=parent)


@contextlib.contextmanager
def without_strongroom_environment() -> Iterator[None]:
    """Hide the caller's STRONGROOM_* variables, so in-process set-up reads only the given ones."""
    saved = {name: value for name, value in os.environ.items() if name.startswith("STRONGROOM_")}
    for name in saved:
        del os.environ[name]
    try:
        yield
    finally:
        os.environ.update(saved)


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Start the tests' throwaway PostgreSQL server on loopback, and stop it on exit.

    That server trades durability for speed (fsync off), so it creates
    databases and schemas faster than a production server would.
    """
    # Imported here so that the benchmarks that need no PostgreSQL do not depend on the tests.
    from tests.services import MissingService
    from tests.services.postgres import start_postgres

    try:
        server = start_postgres()
    except MissingService as exc:
        raise BenchmarkError(str(exc)) from None
    try:
        yield server
    finally:
        server.stop()


def run_cli(
    arguments: Sequence[str], environment: Mapping[str, str], stdin: str | None = None
) -> str:
    """Run one `strongroom` command and return its standard output; raise with its error output."""
    completed = subprocess.run(
        [strongroom_command(), *arguments],
        input=stdin,
        env=dict(environment),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if completed.returncode != 0:
        raise BenchmarkError(
            f"`strongroom {' '.join(arguments)}` exited with {completed.returncode}: "
            f"{completed.stderr.strip() or completed.stdout.strip()}"
        )
    return completed.stdout


@dataclass(frozen=True)
class Account:
    """A tenant with one user and that user's API token."""

    slug: str
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def url(self, kind: str, path: str = "") -> str:
        """Return the path-form URL of `kind` (files, folders) and `path`, each segment encoded."""
        return f"/t/{self.slug}/api/v1/{kind}/{encode_path(path)}"


def encode_path(path: str) -> str:
    """Percent-encode each segment of a relative path, keeping the slashes between them."""
    return "/".join(quote(segment, safe="") for segment in path.split("/"))


def create_account(
    environment: Mapping[str, str], slug: str, email: str, isolation: str = "shared"
) -> Account:
    """Create a tenant, a user with a random password and a token, all with the real CLI."""
    run_cli(["tenant", "create", slug, "--isolation", isolation], environment)
    password = secrets.token_urlsafe(24)
    run_cli(["user", "create", slug, email, "--password-stdin"], environment, stdin=password + "\n")
    token = run_cli(["token", "create", slug, email], environment).strip()
    if not token or len(token.split()) != 1:
        raise BenchmarkError(f"`strongroom token create` printed {token!r}, not one token")
    return Account(slug=slug, email=email, token=token)


class ServerProcess:
    """A web server in a subprocess on a loopback port, stopped on exit even when a step fails.

    Its output goes to a log file, whose end is quoted when the server fails to start.
    """

    def __init__(
        self,
        command: Sequence[str],
        environment: Mapping[str, str],
        port: int,
        log_path: Path,
        ready_path: str = "/",
        cwd: Path | None = None,
    ) -> None:
        self.command = list(command)
        self.environment = dict(environment)
        self.port = port
        self.url = f"http://{LOOPBACK}:{port}"
        self.log_path = log_path
        self.ready_path = ready_path
        self.cwd = cwd
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise BenchmarkError("the server is not running")
        return self._process.pid

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self.command,
                env=self.environment,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
            )
        try:
            self._wait_until_ready()
        except BaseException:
            # The caller's `with` block never starts, so its exit cannot stop the server.
            self.stop()
            raise

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        with httpx.Client(base_url=self.url, timeout=2) as client:
            while time.monotonic() < deadline:
                if self._process is not None and self._process.poll() is not None:
                    raise BenchmarkError(
                        f"{self.command[0]} exited with {self._process.returncode} on start; "
                        f"its log ends with:\n{self.log_tail()}"
                    )
                try:
                    client.get(self.ready_path)
                    return
                except httpx.TransportError:
                    time.sleep(0.05)
        raise BenchmarkError(
            f"{self.command[0]} did not respond on {self.url} "
            f"within {START_TIMEOUT_SECONDS:.0f} s; "
            f"its log ends with:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def strongroom_server(
    data_dir: Path, log_path: Path, log_level: str = "info", **settings: str
) -> ServerProcess:
    """Return (not yet started) `strongroom serve --no-demo` on a free loopback port."""
    port = free_port()
    environment = strongroom_environment(data_dir, log_level=log_level, **settings)
    command = [strongroom_command(), "serve", "--host", LOOPBACK, "--port", str(port), "--no-demo"]
    return ServerProcess(command, environment, port, log_path, ready_path="/healthz")


def read_memory_kib(pid: int) -> dict[str, int]:
    """Return VmRSS and VmHWM of a process in KiB, from /proc/PID/status (Linux only)."""
    values = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0])
    return values


def machine_facts() -> dict[str, object]:
    """Return the facts a reader needs to compare runs: date, cores, CPU model, memory, Python."""
    cpu_model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu_model = line.partition(":")[2].strip()
                    break
    except OSError:
        pass
    memory_kib = 0
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    memory_kib = int(line.split()[1])
                    break
    except OSError:
        pass
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        # Other jobs share the machine, and the load at the start shows how quiet the run was.
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def print_machine_facts(facts: Mapping[str, object]) -> None:
    print(
        f"machine: {facts['nproc']} cores, {facts['cpu_model']}, {facts['memory_gib']} GiB, "
        f"Python {facts['python']}, Linux {facts['kernel']}; {facts['date']}, "
        f"load average {facts['load_average_1min']}"
    )
