"""Start a throwaway Redis server from Debian's redis-server package for a test session.

The server listens on 127.0.0.1 on a free port, keeps nothing on disk and
requires a password, so a stray client on the machine cannot use it.
"""

from __future__ import annotations

import atexit
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import redis

from . import MissingService

HOST = "127.0.0.1"
STARTUP_TIMEOUT_SECONDS = 30.0
START_ATTEMPTS = 3


class RedisServer:
    """A running throwaway Redis server and its temporary folder."""

    def __init__(
        self, base_dir: Path, port: int, password: str, process: subprocess.Popen[bytes]
    ) -> None:
        self.base_dir = base_dir
        self.port = port
        self.password = password
        self.process = process
        self._stopped = False

    def __repr__(self) -> str:
        # The password stays out so that it never appears in test reports.
        return f"<RedisServer {HOST}:{self.port}>"

    def url(self, database: int = 0) -> str:
        return f"redis://:{quote(self.password, safe='')}@{HOST}:{self.port}/{database}"

    def flush(self) -> None:
        """Delete every key, so that each test starts from empty counters."""
        _command(self.port, self.password, "FLUSHALL")

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        try:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)


def start_redis() -> RedisServer:
    """Start redis-server on a free loopback port; raise MissingService when it is not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise MissingService("Redis", "redis-server")
    base_dir = Path(tempfile.mkdtemp(prefix="strongroom-redis-"))
    password = secrets.token_urlsafe(24)
    try:
        for _attempt in range(START_ATTEMPTS):
            port = _free_port()
            process = _start(binary, base_dir, port, password)
            if _wait_until_ready(process, port, password, base_dir / "redis.log"):
                server = RedisServer(base_dir, port, password, process)
                atexit.register(server.stop)
                return server
            # Another process took the port between _free_port() and the bind; try again.
    except BaseException:
        shutil.rmtree(base_dir, ignore_errors=True)
        raise
    shutil.rmtree(base_dir, ignore_errors=True)
    raise RuntimeError(f"Redis could not bind a free port on {HOST} in {START_ATTEMPTS} attempts")


def _start(binary: str, base_dir: Path, port: int, password: str) -> subprocess.Popen[bytes]:
    config = base_dir / "redis.conf"
    config.write_text(
        "\n".join(
            [
                f"bind {HOST}",
                f"port {port}",
                f"requirepass {password}",
                f"dir {base_dir}",
                f"logfile {base_dir / 'redis.log'}",
                # Nothing is written to disk: the data is thrown away with the session.
                'save ""',
                "appendonly no",
                "daemonize no",
            ]
        )
        + "\n"
    )
    config.chmod(0o600)
    return subprocess.Popen(
        [binary, str(config)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
    )


def _wait_until_ready(
    process: subprocess.Popen[bytes], port: int, password: str, log_path: Path
) -> bool:
    """Return True once the server replies to PING, or False if it lost a race for its port."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = log_path.read_text(errors="replace") if log_path.exists() else ""
            if "Address already in use" in log:
                return False
            raise RuntimeError(f"redis-server exited with status {process.returncode}:\n{log}")
        try:
            if _command(port, password, "PING"):
                return True
        except redis.RedisError:
            pass
        time.sleep(0.05)
    process.kill()
    raise TimeoutError(
        f"Redis on {HOST}:{port} timed out: no answer to PING within "
        f"{STARTUP_TIMEOUT_SECONDS:.0f} seconds"
    )


def _command(port: int, password: str, *words: str) -> object:
    client = redis.Redis(host=HOST, port=port, password=password, socket_timeout=2)
    try:
        return client.execute_command(*words)
    finally:
        client.close()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]
