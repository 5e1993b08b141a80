"""Start a throwaway Redis server from Debian's redis-server package for a test session.

The server listens on 127.0.0.1 on a free port, requires a password, keeps
nothing on disk (no snapshots, no append-only file) and runs in a temporary
folder of its own, removed when it stops.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from . import MissingService
from .postgres import HOST, _command_prefix, _find_free_port, _log_tail

DEBIAN_BINARY = "/usr/bin/redis-server"
STARTUP_TIMEOUT_SECONDS = 30.0
SHUTDOWN_TIMEOUT_SECONDS = 15.0
START_ATTEMPTS = 3


class RedisServer:
    def __init__(
        self, *, base_dir: Path, port: int, password: str, process: subprocess.Popen[bytes]
    ) -> None:
        self.base_dir = base_dir
        self.host = HOST
        self.port = port
        self.password = password
        self.process = process
        self._stopped = False

    def __repr__(self) -> str:
        # The password stays out so that it never appears in test reports.
        return f"<RedisServer {self.host}:{self.port}>"

    def url(self, database: int = 0) -> str:
        return f"redis://:{self.password}@{self.host}:{self.port}/{database}"

    def flush(self) -> None:
        """Empty every database, so that a test starts without another test's keys."""
        with redis.Redis.from_url(self.url()) as client:
            client.flushall()

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        try:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=SHUTDOWN_TIMEOUT_SECONDS)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)


def find_binary() -> Path:
    found = shutil.which("redis-server") or (
        DEBIAN_BINARY if Path(DEBIAN_BINARY).is_file() else None
    )
    if found is None:
        raise MissingService("Redis", "redis-server")
    return Path(found)


def start_redis() -> RedisServer:
    """Start Redis on a free loopback port; raise MissingService when it is not installed."""
    binary = find_binary()
    base_dir = Path(tempfile.mkdtemp(prefix="strongroom-redis-"))
    try:
        for _attempt in range(START_ATTEMPTS):
            server = _start_once(binary, base_dir)
            if server is not None:
                return server
        raise RuntimeError(f"Redis lost the race for a free port {START_ATTEMPTS} times")
    except BaseException:
        shutil.rmtree(base_dir, ignore_errors=True)
        raise


def _start_once(binary: Path, base_dir: Path) -> RedisServer | None:
    """Start Redis and wait until it responds to PING.

    Returns None when another process took its port first.
    """
    port = _find_free_port()
    password = secrets.token_urlsafe(24)
    _write_config(base_dir, port, password)
    process = subprocess.Popen(
        _command_prefix(None, kill_with_parent=True) + [str(binary), str(base_dir / "redis.conf")],
        cwd=base_dir,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = RedisServer(base_dir=base_dir, port=port, password=password, process=process)

    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = _log_tail(base_dir / "redis.log")
            if "Address already in use" in log:
                return None
            raise RuntimeError(f"Redis exited during startup. Its log ends with:\n{log}")
        try:
            with redis.Redis.from_url(server.url(), socket_timeout=2) as client:
                client.ping()
            return server
        except redis.ConnectionError:
            time.sleep(0.05)

    process.kill()
    process.wait()
    raise RuntimeError(f"Redis did not respond within {STARTUP_TIMEOUT_SECONDS:.0f} seconds")


def _write_config(base_dir: Path, port: int, password: str) -> None:
    # The password goes in a file readable by its owner, not on the command line that ps shows.
    config = base_dir / "redis.conf"
    config.write_text(
        "\n".join(
            [
                f"bind {HOST}",
                f"port {port}",
                f"requirepass {password}",
                'save ""',
                "appendonly no",
                f"dir {base_dir}",
                f"logfile {base_dir / 'redis.log'}",
                "",
            ]
        )
    )
    config.chmod(0o600)
