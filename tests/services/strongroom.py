"""A Strongroom server in its own process, for tests that kill it or measure its memory."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

STRONGROOM = Path(sys.executable).parent / "strongroom"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class StrongroomProcess:
    """`strongroom serve` on a loopback port, with the same environment for its CLI calls."""

    def __init__(self, data_dir: Path, extra_env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "STRONGROOM_DATA_DIR": str(data_dir),
            "STRONGROOM_LOG_LEVEL": "warning",
            **(extra_env or {}),
        }
        self.log_path = data_dir.parent / f"server-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(STRONGROOM), *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def make_member(self, slug: str, email: str) -> str:
        """Create a tenant (if new), a user and a token through the CLI; return the token."""
        self.cli("tenant", "create", slug)
        created = self.cli("user", "create", slug, email, "--password-stdin", stdin="a long password\n")
        if created.returncode != 0 and "already exists" not in created.stderr:
            raise RuntimeError(f"user create failed: {created.stderr}")
        token = self.cli("token", "create", slug, email)
        if token.returncode != 0:
            raise RuntimeError(f"token create failed: {token.stderr}")
        return token.stdout.strip()

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(STRONGROOM), "serve", "--port", str(self.port), "--no-demo"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited at start:\n{self.log_path.read_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("the server did not answer /healthz within 30 seconds")

    def kill(self) -> None:
        """End the server at once, as a crash or an out-of-memory kill would."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def peak_rss_bytes(self) -> int:
        """Peak resident memory of the server so far (VmHWM), while it still runs."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("VmHWM not found in /proc status")
