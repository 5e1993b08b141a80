"""Measure large transfers and small listings against baselines measured in the same run.

Run it as `python -m bench.transfer [--size-mib 1024] [--output results.json]`.
The machine is shared and noisy, so every figure that matters is a ratio
against a baseline taken minutes apart on the same machine:

- download of a large file from Strongroom against nginx sending the same
  file from disk with sendfile (target at least 0.8);
- upload to Strongroom, which encrypts and syncs before it replies, against a
  plain file copy synced to disk (target at least 0.5);
- folder listings per second against a bare Starlette endpoint doing one
  indexed SQLite lookup (target at least 0.5), and with 1,000 tenants in the
  catalog against 1 (target at least 0.9);
- the server's peak resident memory during each transfer (target under 200 MB).

Measurements run in rounds, each round taking every measurement once, and the
median of the rounds is reported, so that a burst of load from another job
spoils one round rather than one side of a ratio. The exit status is 0 when
every transfer returned the right bytes, whether or not the targets are met;
1 when a transfer or a request failed; 2 when nginx is missing.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import httpx

from bench import baseline_app
from bench.harness import (
    LOOPBACK,
    Account,
    BenchmarkError,
    ServerProcess,
    create_account,
    free_port,
    machine_facts,
    print_machine_facts,
    read_memory_kib,
    strongroom_server,
    temporary_work_dir,
    without_strongroom_environment,
)

MIB = 1024 * 1024
PIECE_BYTES = MIB
BIG_FILE_NAME = "big.bin"
LISTING_FOLDER = "listing"
LISTING_FILES = 20
LISTING_FILE_BYTES = 1024
RSS_SAMPLE_SECONDS = 0.01
RSS_TARGET_BYTES = 200_000_000
HTTP_TIMEOUT_SECONDS = 600.0
REPO_ROOT = Path(__file__).resolve().parent.parent


class TransferFailed(Exception):
    """A transfer returned other bytes or another status than expected."""


# --- baselines -----------------------------------------------------------------------------------


def find_nginx() -> str | None:
    # Debian installs nginx in /usr/sbin, which is not on every user's PATH.
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def nginx_server(binary: str, folder: Path, work: Path) -> ServerProcess:
    """Return (not yet started) a foreground nginx serving `folder` on a free loopback port."""
    port = free_port()
    for temporary in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (work / temporary).mkdir(parents=True, exist_ok=True)
    # As root, nginx's workers would switch to `nobody`, who cannot enter a private temp folder.
    user = "user root;\n" if os.geteuid() == 0 else ""
    config = f"""{user}worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    default_type application/octet-stream;
    client_body_temp_path {work}/client_body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    server {{
        listen {LOOPBACK}:{port};
        root {folder};
        location / {{ }}
    }}
}}
"""
    config_path = work / "nginx.conf"
    config_path.write_text(config)
    command = [binary, "-p", str(work), "-c", str(config_path), "-e", str(work / "error.log")]
    return ServerProcess(command, os.environ, port, work / "stdout.log")


def starlette_server(database: Path, log_path: Path) -> ServerProcess:
    """Return (not yet started) uvicorn serving `bench.baseline_app` as `strongroom serve` would."""
    port = free_port()
    environment = dict(os.environ, **{baseline_app.DATABASE_VARIABLE: str(database)})
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.baseline_app:app",
        "--app-dir",
        str(REPO_ROOT),
        "--host",
        LOOPBACK,
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    return ServerProcess(command, environment, port, log_path, cwd=REPO_ROOT)


def settle_disk() -> None:
    """Write out everything pending on the machine's disks before a timed transfer starts.

    Removing a file queues work for the file system's next journal commit, and
    on a file system mounted with `discard` that work includes trimming every
    freed block. Whichever transfer synced next paid for the removal before it:
    here the upload, after the copy removed its copy, ran a fifth slower than
    after a sync. Syncing, untimed, before each transfer makes each pay for its
    own writes only.
    """
    os.sync()


def synced_copy(source: Path, destination: Path) -> float:
    """Copy a file, sync the copy to disk, and return the seconds it took; remove the copy after."""
    started = time.perf_counter()
    shutil.copyfile(source, destination)
    descriptor = os.open(destination, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    elapsed = time.perf_counter() - started
    destination.unlink()
    return elapsed


# --- large transfers -----------------------------------------------------------------------------


def write_random_file(path: Path, size: int) -> str:
    """Write `size` random bytes to `path` and return their SHA-256."""
    digest = hashlib.sha256()
    with path.open("wb") as handle:
        remaining = size
        while remaining:
            piece = os.urandom(min(PIECE_BYTES, remaining))
            digest.update(piece)
            handle.write(piece)
            remaining -= len(piece)
    return digest.hexdigest()


def _read_pieces(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while piece := handle.read(PIECE_BYTES):
            yield piece


def upload(client: httpx.Client, account: Account, source: Path, size: int, sha256: str) -> float:
    """Stream `source` to Strongroom, check what it stored, and return the seconds it took."""
    headers = {**account.headers, "Content-Length": str(size)}
    started = time.perf_counter()
    response = client.put(
        account.url("files", BIG_FILE_NAME), content=_read_pieces(source), headers=headers
    )
    elapsed = time.perf_counter() - started
    if response.status_code not in (200, 201):
        raise TransferFailed(f"upload returned {response.status_code}: {response.text[:300]}")
    stored = response.json()
    if stored["size"] != size or stored["sha256"] != sha256:
        raise TransferFailed(
            f"upload stored {stored['size']} bytes with SHA-256 {stored['sha256']}, "
            f"expected {size} bytes with {sha256}"
        )
    return elapsed


def remove_uploaded(client: httpx.Client, account: Account) -> None:
    """Delete the last round's upload and empty the trash, so that its blob is removed.

    The synced copy removes its copy after each round, and the kernel reuses the
    freed pages for the next one. Without this, each upload would add a version
    and keep the last one's pages, so every round would write into pages never
    used before, which on virtual machines can cost several times the copy itself.
    """
    deleted = client.delete(account.url("files", BIG_FILE_NAME), headers=account.headers)
    if deleted.status_code not in (200, 204, 404):
        raise TransferFailed(f"deleting the upload returned {deleted.status_code}: {deleted.text}")
    emptied = client.delete(f"/t/{account.slug}/api/v1/trash", headers=account.headers)
    if emptied.status_code != 200:
        raise TransferFailed(f"emptying the trash returned {emptied.status_code}: {emptied.text}")


def timed_download(port: int, path: str, headers: dict[str, str], size: int) -> float:
    """Fetch `path` over a plain socket into one reused buffer; return the seconds it took.

    httpx's streaming loop tops out below what nginx sends on loopback
    (about 800 against 1,400 MiB/s on the 2-core benchmark machine), so with
    it the client would be the limit being measured. A bare `recv_into`
    loop costs the client almost nothing.
    """
    buffer = bytearray(PIECE_BYTES)
    view = memoryview(buffer)
    started = time.perf_counter()
    with socket.create_connection((LOOPBACK, port)) as connection:
        connection.sendall(prepare_get(path, {**headers, "Connection": "close"}))
        head = bytearray()
        while (end := head.find(b"\r\n\r\n")) < 0:
            received = connection.recv_into(view)
            if not received:
                raise TransferFailed(f"GET {path}: the connection closed before the headers ended")
            head += view[:received]
        status, length = _parse_head(bytes(head[:end]))
        if status != 200:
            raise TransferFailed(f"GET {path} returned {status}")
        if length != size:
            raise TransferFailed(f"GET {path} announced {length} bytes, expected {size}")
        body = len(head) - end - 4
        while body < length:
            received = connection.recv_into(view)
            if not received:
                break
            body += received
    elapsed = time.perf_counter() - started
    if body != size:
        raise TransferFailed(f"GET {path} returned {body} bytes, expected {size}")
    return elapsed


def verified_download(
    client: httpx.Client, url: str, headers: dict[str, str], size: int, sha256: str
) -> None:
    """Stream `url` with httpx into one reused buffer, hashing it; raise unless it is the file."""
    buffer = memoryview(bytearray(PIECE_BYTES))
    digest = hashlib.sha256()
    received = 0
    with client.stream("GET", url, headers=headers) as response:
        if response.status_code != 200:
            response.read()
            raise TransferFailed(
                f"GET {url} returned {response.status_code}: {response.text[:300]}"
            )
        for piece in response.iter_raw():
            for offset in range(0, len(piece), PIECE_BYTES):
                part = piece[offset : offset + PIECE_BYTES]
                buffer[: len(part)] = part
                digest.update(part)
            received += len(piece)
    if received != size or digest.hexdigest() != sha256:
        raise TransferFailed(
            f"GET {url} returned {received} bytes with SHA-256 {digest.hexdigest()}, "
            f"expected {size} bytes with {sha256}"
        )


def _parse_head(head: bytes) -> tuple[int, int | None]:
    """Return the status code and Content-Length of a response head."""
    lines = head.decode("latin-1").split("\r\n")
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding":
            raise BenchmarkError(
                "the benchmark's HTTP client reads Content-Length bodies only, not chunked ones"
            )
    return int(lines[0][9:12]), length


class MemorySampler:
    """Track a process's peak resident memory while a transfer runs.

    It first resets the kernel's high-water mark (VmHWM) where Linux allows
    it, so that VmHWM afterwards is the exact peak of this transfer. It also
    samples VmRSS every 10 ms, which is the only figure left when the reset
    is rejected.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.sampled_peak_kib = 0
        self.high_water_kib: int | None = None
        self._high_water_reset = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @property
    def peak_kib(self) -> int:
        return max(self.sampled_peak_kib, self.high_water_kib or 0)

    def _sample(self) -> None:
        while True:
            self.sampled_peak_kib = max(self.sampled_peak_kib, read_memory_kib(self.pid)["VmRSS"])
            if self._stop.wait(RSS_SAMPLE_SECONDS):
                return

    def __enter__(self) -> Self:
        try:
            # "5" resets the peak RSS to the current RSS (Linux 4.0 and later, proc(5)).
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
            self._high_water_reset = True
        except OSError:
            self._high_water_reset = False
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        values = read_memory_kib(self.pid)
        self.sampled_peak_kib = max(self.sampled_peak_kib, values["VmRSS"])
        if self._high_water_reset:
            self.high_water_kib = values["VmHWM"]


# --- small requests ------------------------------------------------------------------------------


class KeepAliveConnection:
    """A minimal HTTP/1.1 client on one keep-alive connection, for counting requests per second.

    Client and server share two cores, so the client must be cheap for the
    rate to be the server's. This one spends about 70 µs of CPU a request,
    httpx about 400 µs (both measured against `bench.baseline_app` on the
    2-core benchmark machine).
    """

    def __init__(self, port: int) -> None:
        self._socket = socket.create_connection((LOOPBACK, port))
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._pending = b""

    def request(self, raw: bytes) -> int:
        """Send one prepared request, read the whole response, and return its status code."""
        return self.exchange(raw)[0]

    def exchange(self, raw: bytes) -> tuple[int, bytes]:
        """Send one prepared request and return the status code and body of its response."""
        self._socket.sendall(raw)
        data = self._pending
        while (end := data.find(b"\r\n\r\n")) < 0:
            data += self._receive()
        status, length = _parse_head(data[:end])
        if length is None:
            raise BenchmarkError(f"a response had no Content-Length: {data[:end]!r}")
        body_start = end + 4
        while len(data) < body_start + length:
            data += self._receive()
        self._pending = data[body_start + length :]
        return status, data[body_start : body_start + length]

    def _receive(self) -> bytes:
        piece = self._socket.recv(256 * 1024)
        if not piece:
            raise BenchmarkError("the server closed a keep-alive connection")
        return piece

    def close(self) -> None:
        self._socket.close()


def prepare_get(path: str, headers: dict[str, str] | None = None) -> bytes:
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {LOOPBACK}",
        *(f"{k}: {v}" for k, v in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def request_rate(port: int, raw: bytes, clients: int, seconds: float, warmup: float) -> float:
    """Return the requests per second `clients` connections get, each sending `raw` back to back.

    Every response must be 200; the first other status raises TransferFailed.
    """
    barrier = threading.Barrier(clients + 1)
    window: dict[str, float] = {}

    def client() -> int:
        connection = KeepAliveConnection(port)
        try:
            barrier.wait()
            count = 0
            warm_until = window["warm_until"]
            stop_at = window["stop_at"]
            while (now := time.perf_counter()) < stop_at:
                status = connection.request(raw)
                if status != 200:
                    raise TransferFailed(f"{raw.split(b' ')[1].decode()} returned {status}")
                if now >= warm_until:
                    count += 1
            return count
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=clients) as pool:
        futures = [pool.submit(client) for _ in range(clients)]
        started = time.perf_counter()
        window["warm_until"] = started + warmup
        window["stop_at"] = started + warmup + seconds
        barrier.wait()
        counts = [future.result() for future in futures]
    return sum(counts) / seconds


# --- set-up --------------------------------------------------------------------------------------


def provision_fillers(data_dir: Path, count: int) -> None:
    """Create `count` empty tenants in a data directory before its server starts.

    The CLI would take over a second a tenant to start up; the function it
    calls takes milliseconds.
    """
    from strongroom.base.config import load_settings
    from strongroom.base.logging import configure_logging
    from strongroom.runtime import build_runtime
    from strongroom.tenancy.lifecycle import provision_tenant

    # The first start creates the master key file and warns about it, which is expected here.
    configure_logging("json", "error")
    with without_strongroom_environment():
        settings = load_settings(data_dir=data_dir)
    runtime = build_runtime(settings, migrate=True)
    try:
        for number in range(count):
            provision_tenant(runtime.catalog, runtime.stores, f"filler-{number:04d}")
    finally:
        runtime.close()


def fill_listing_folder(base_url: str, account: Account) -> None:
    with httpx.Client(base_url=base_url, timeout=HTTP_TIMEOUT_SECONDS) as client:
        for number in range(LISTING_FILES):
            path = f"{LISTING_FOLDER}/file-{number:02d}.txt"
            response = client.put(
                account.url("files", path),
                content=os.urandom(LISTING_FILE_BYTES),
                headers=account.headers,
            )
            if response.status_code != 201:
                raise BenchmarkError(
                    f"PUT {path} returned {response.status_code}: {response.text[:300]}"
                )
        listed = client.get(account.url("folders", LISTING_FOLDER), headers=account.headers)
        if len(listed.json()["items"]) != LISTING_FILES:
            raise BenchmarkError(
                f"{LISTING_FOLDER}/ does not list the {LISTING_FILES} files just stored"
            )


# --- the run -------------------------------------------------------------------------------------


@dataclass
class Options:
    size_mib: int
    rounds: int
    listing_seconds: float
    listing_warmup: float
    clients: int
    tenants: int
    work_dir: Path | None
    output: Path | None


class Samples(dict[str, list[float]]):
    """Every value measured, by name, one per round."""

    def record(self, name: str, value: float) -> None:
        self.setdefault(name, []).append(value)


@dataclass
class Setup:
    """The servers and accounts of one run, all on loopback."""

    source: Path
    sha256: str
    size: int
    one: ServerProcess
    many: ServerProcess
    static: ServerProcess
    bare: ServerProcess
    one_account: Account
    many_account: Account


def run(options: Options, nginx: str, log: Callable[[str], None] = print) -> dict[str, object]:
    """Run every measurement in rounds and return the results, ready to print or dump as JSON."""
    samples = Samples()
    with contextlib.ExitStack() as stack:
        work = Path(
            stack.enter_context(temporary_work_dir("strongroom-transfer-", options.work_dir))
        )
        setup = _start_servers(stack, work, options, nginx, log)
        memory = _measure_transfers(setup, work, options.rounds, samples, log)
        _measure_listings(setup, options, samples, log)
    return _summarise(options, samples, memory, setup.size)


def _start_servers(
    stack: contextlib.ExitStack,
    work: Path,
    options: Options,
    nginx: str,
    log: Callable[[str], None],
) -> Setup:
    """Write the file, fill the large catalog, start all four servers and create the accounts."""
    size = options.size_mib * MIB
    serve_dir = work / "serve"
    serve_dir.mkdir()
    source = serve_dir / BIG_FILE_NAME
    log(f"writing {options.size_mib} MiB of random bytes to {source}")
    sha256 = write_random_file(source, size)

    one_dir, many_dir = work / "one-tenant", work / "many-tenants"
    log(f"creating {options.tenants - 1} tenants in {many_dir} before its server starts")
    provision_fillers(many_dir, options.tenants - 1)
    database = work / "baseline.db"
    baseline_app.create_database(database)

    one = stack.enter_context(strongroom_server(one_dir, work / "one.log"))
    many = stack.enter_context(strongroom_server(many_dir, work / "many.log"))
    static = stack.enter_context(nginx_server(nginx, serve_dir, work / "nginx"))
    bare = stack.enter_context(starlette_server(database, work / "baseline.log"))
    with ThreadPoolExecutor(max_workers=2) as pool:
        one_account, many_account = pool.map(
            lambda server: create_account(server.environment, "bench-1", "bench@example.org"),
            (one, many),
        )
    return Setup(source, sha256, size, one, many, static, bare, one_account, many_account)


def _measure_transfers(
    setup: Setup, work: Path, rounds: int, samples: Samples, log: Callable[[str], None]
) -> dict[str, dict[str, int]]:
    """Time the copy, the upload and both downloads in each round; return the server's memory."""
    size = setup.size
    account = setup.one_account
    file_path = account.url("files", BIG_FILE_NAME)
    memory = {"idle": read_memory_kib(setup.one.pid)}
    with httpx.Client(base_url=setup.one.url, timeout=HTTP_TIMEOUT_SECONDS) as client:
        for number in range(1, rounds + 1):
            remove_uploaded(client, account)
            settle_disk()
            samples.record("copy_seconds", synced_copy(setup.source, work / "copy.bin"))
            settle_disk()
            with MemorySampler(setup.one.pid) as upload_memory:
                samples.record(
                    "upload_seconds", upload(client, account, setup.source, size, setup.sha256)
                )
            samples.record("upload_peak_rss_kib", upload_memory.peak_kib)
            with MemorySampler(setup.one.pid) as download_memory:
                samples.record(
                    "download_seconds",
                    timed_download(setup.one.port, file_path, account.headers, size),
                )
            samples.record("download_peak_rss_kib", download_memory.peak_kib)
            samples.record(
                "nginx_seconds", timed_download(setup.static.port, f"/{BIG_FILE_NAME}", {}, size)
            )
            log(
                f"transfer round {number}: copy {_rate(size, samples['copy_seconds'][-1])}, "
                f"upload {_rate(size, samples['upload_seconds'][-1])}, "
                f"download {_rate(size, samples['download_seconds'][-1])}, "
                f"nginx {_rate(size, samples['nginx_seconds'][-1])}; server RSS peaks "
                f"{upload_memory.peak_kib / 1024:.0f} MiB (upload), "
                f"{download_memory.peak_kib / 1024:.0f} MiB (download)"
            )

        verified_download(client, file_path, account.headers, size, setup.sha256)
    with httpx.Client(base_url=setup.static.url, timeout=HTTP_TIMEOUT_SECONDS) as static_client:
        verified_download(static_client, f"/{BIG_FILE_NAME}", {}, size, setup.sha256)
    log("downloads verified: both servers returned the file's exact SHA-256")
    return memory


def _measure_listings(
    setup: Setup, options: Options, samples: Samples, log: Callable[[str], None]
) -> None:
    """Count listing and baseline requests per second, each target in turn within every round."""
    fill_listing_folder(setup.one.url, setup.one_account)
    fill_listing_folder(setup.many.url, setup.many_account)
    targets = {
        "listing_one": (
            setup.one.port,
            prepare_get(
                setup.one_account.url("folders", LISTING_FOLDER), setup.one_account.headers
            ),
        ),
        "listing_many": (
            setup.many.port,
            prepare_get(
                setup.many_account.url("folders", LISTING_FOLDER), setup.many_account.headers
            ),
        ),
        "bare": (setup.bare.port, prepare_get(f"/items/{baseline_app.item_key(500)}")),
    }
    for number in range(1, options.rounds + 1):
        rates = []
        for name, (port, raw) in targets.items():
            for clients in (1, options.clients):
                rate = request_rate(
                    port, raw, clients, options.listing_seconds, options.listing_warmup
                )
                samples.record(f"{name}_{clients}_clients_per_second", rate)
                rates.append(f"{rate:.0f}")
        log(
            f"listing round {number}, requests/s with 1 and {options.clients} clients: "
            f"1 tenant {rates[0]} and {rates[1]}, "
            f"{options.tenants} tenants {rates[2]} and {rates[3]}, "
            f"bare Starlette {rates[4]} and {rates[5]}"
        )


def _rate(size: int, seconds: float) -> str:
    return f"{size / MIB / seconds:.0f} MiB/s"


def _summarise(
    options: Options, samples: Samples, memory: dict[str, dict[str, int]], size: int
) -> dict[str, object]:
    def median(name: str) -> float:
        return statistics.median(samples[name])

    def throughput(name: str) -> float:
        return size / MIB / median(name)

    figures = {
        "copy_mib_per_second": throughput("copy_seconds"),
        "upload_mib_per_second": throughput("upload_seconds"),
        "download_mib_per_second": throughput("download_seconds"),
        "nginx_mib_per_second": throughput("nginx_seconds"),
        "upload_peak_rss_mb": max(samples["upload_peak_rss_kib"]) * 1024 / 1e6,
        "download_peak_rss_mb": max(samples["download_peak_rss_kib"]) * 1024 / 1e6,
        "idle_rss_mb": memory["idle"]["VmRSS"] * 1024 / 1e6,
    }
    for name in samples:
        if name.endswith("_per_second"):
            figures[name] = median(name)

    def rates(name: str) -> list[float]:
        """Per-round rates, higher is better: MiB/s for transfers, requests/s for listings."""
        if name.endswith("_seconds"):
            return [size / MIB / seconds for seconds in samples[name]]
        return samples[name]

    def plural(clients: int) -> str:
        return f"{clients} client{'s' if clients > 1 else ''}"

    ratios = [
        _ratio("download / nginx", rates("download_seconds"), rates("nginx_seconds"), 0.8),
        _ratio("upload / synced copy", rates("upload_seconds"), rates("copy_seconds"), 0.5),
    ]
    for clients in (1, options.clients):
        ratios.append(
            _ratio(
                f"listing / bare Starlette, {plural(clients)}",
                rates(f"listing_one_{clients}_clients_per_second"),
                rates(f"bare_{clients}_clients_per_second"),
                0.5,
            )
        )
    for clients in (1, options.clients):
        ratios.append(
            _ratio(
                f"listing, {options.tenants} tenants / 1 tenant, {plural(clients)}",
                rates(f"listing_many_{clients}_clients_per_second"),
                rates(f"listing_one_{clients}_clients_per_second"),
                0.9,
            )
        )
    limits = [
        {
            "name": f"server RSS peak during {kind}",
            "value_mb": round(figures[f"{kind}_peak_rss_mb"], 1),
            "target_mb": RSS_TARGET_BYTES / 1e6,
            "met": figures[f"{kind}_peak_rss_mb"] * 1e6 < RSS_TARGET_BYTES,
        }
        for kind in ("upload", "download")
    ]
    return {
        "parameters": {
            "size_mib": options.size_mib,
            "rounds": options.rounds,
            "listing_seconds": options.listing_seconds,
            "listing_warmup_seconds": options.listing_warmup,
            "concurrent_clients": options.clients,
            "tenants": options.tenants,
            "listing_folder_files": LISTING_FILES,
        },
        "figures": {name: round(value, 2) for name, value in figures.items()},
        "ratios": ratios,
        "limits": limits,
        "samples": samples,
    }


def _ratio(
    name: str, values: Sequence[float], baselines: Sequence[float], target: float
) -> dict[str, object]:
    """Compare each round's value with the same round's baseline, and keep the median ratio.

    The two sides of a round ran seconds apart, so load from other jobs
    that comes and goes between rounds cancels out better than in a ratio
    of medians.
    """
    per_round = [value / baseline for value, baseline in zip(values, baselines, strict=True)]
    ratio = statistics.median(per_round)
    return {
        "name": name,
        "ratio": round(ratio, 3),
        "lowest": round(min(per_round), 3),
        "highest": round(max(per_round), 3),
        "target": target,
        "met": ratio >= target,
    }


def print_results(results: dict[str, object]) -> None:
    figures = results["figures"]
    clients = results["parameters"]["concurrent_clients"]
    tenants = results["parameters"]["tenants"]
    rows = [
        ("synced copy (upload baseline)", f"{figures['copy_mib_per_second']:.0f} MiB/s"),
        ("Strongroom upload", f"{figures['upload_mib_per_second']:.0f} MiB/s"),
        ("nginx download (download baseline)", f"{figures['nginx_mib_per_second']:.0f} MiB/s"),
        ("Strongroom download", f"{figures['download_mib_per_second']:.0f} MiB/s"),
    ]
    for count in (1, clients):
        rows += [
            (
                f"bare Starlette, {count} client(s)",
                f"{figures[f'bare_{count}_clients_per_second']:.0f} req/s",
            ),
            (
                f"listing, 1 tenant, {count} client(s)",
                f"{figures[f'listing_one_{count}_clients_per_second']:.0f} req/s",
            ),
            (
                f"listing, {tenants} tenants, {count} client(s)",
                f"{figures[f'listing_many_{count}_clients_per_second']:.0f} req/s",
            ),
        ]
    rows += [
        ("server RSS idle", f"{figures['idle_rss_mb']:.0f} MB"),
        ("server RSS peak during upload", f"{figures['upload_peak_rss_mb']:.0f} MB"),
        ("server RSS peak during download", f"{figures['download_peak_rss_mb']:.0f} MB"),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"\nmedian of {results['parameters']['rounds']} rounds")
    for name, value in rows:
        print(f"  {name:<{width}}  {value:>12}")

    print("\nratios: median of the per-round ratios (lowest to highest round)")
    width = max(len(ratio["name"]) for ratio in results["ratios"])
    for ratio in results["ratios"]:
        verdict = "met" if ratio["met"] else "MISSED"
        spread = f"({ratio['lowest']:.2f} to {ratio['highest']:.2f})"
        print(
            f"  {ratio['name']:<{width}}  {ratio['ratio']:>6.2f} {spread:>14}  "
            f"target >= {ratio['target']:.1f}  {verdict}"
        )
    for limit in results["limits"]:
        verdict = "met" if limit["met"] else "MISSED"
        print(
            f"  {limit['name']:<{width}}  {limit['value_mb']:>6.0f} MB {'':>11}  "
            f"target < {limit['target_mb']:.0f} MB  {verdict}"
        )


def parse_arguments(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.transfer",
        description="Measure Strongroom's upload, download and listing rates against nginx, "
        "a synced file copy and a bare Starlette endpoint, in one run on loopback.",
    )

    parser.add_argument(
        "--size-mib", type=int, default=1024, help="size of the transferred file in MiB"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of every measurement; the median is reported"
    )
    parser.add_argument(
        "--listing-seconds",
        type=float,
        default=3.0,
        help="seconds each listing rate is counted over",
    )
    parser.add_argument(
        "--listing-warmup",
        type=float,
        default=0.5,
        help="seconds of requests before counting starts",
    )
    parser.add_argument(
        "--clients", type=int, default=4, help="connections in the concurrent listing runs"
    )
    parser.add_argument(
        "--tenants",
        type=int,
        default=1000,
        help="tenants in the catalog for the many-tenant listing",
    )

    parser.add_argument("--work-dir", type=Path, help="where to put the file and data directories")
    parser.add_argument("--output", type=Path, help="also write the results to this JSON file")

    arguments = parser.parse_args(argv)
    if (
        arguments.size_mib < 1
        or arguments.rounds < 1
        or arguments.clients < 2
        or arguments.tenants < 2
    ):
        parser.error(
            "--size-mib and --rounds must be at least 1, --clients and --tenants at least 2"
        )

    return Options(
        size_mib=arguments.size_mib,
        rounds=arguments.rounds,
        listing_seconds=arguments.listing_seconds,
        listing_warmup=arguments.listing_warmup,
        clients=arguments.clients,
        tenants=arguments.tenants,
        work_dir=arguments.work_dir,
        output=arguments.output,
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_arguments(argv)
    nginx = find_nginx()
    if nginx is None:
        print(
            "error: nginx is not installed; install the Debian package: apt-get install nginx",
            file=sys.stderr,
        )
        return 2
    facts = machine_facts()
    print_machine_facts(facts)
    try:
        results = run(options, nginx)
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (TransferFailed, httpx.HTTPError) as exc:
        print(f"error: a transfer failed: {exc}", file=sys.stderr)
        return 1
    print_results(results)
    facts["load_average_1min_after"] = round(os.getloadavg()[0], 2)
    print(f"\nload average at the end: {facts['load_average_1min_after']}")
    if options.output:
        options.output.write_text(json.dumps({"machine": facts, **results}, indent=2) + "\n")
        print(f"\nresults written to {options.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
