"""Measure how much one flooding tenant slows ten quiet ones on the same server.

Run it as `python -m bench.noisy_neighbour [--rounds 3] [--seconds 20] [--output results.json]`.

One `strongroom serve` on the embedded default hosts eleven tenants, all with
the same limits: a request rate per minute, a number of concurrent transfers
and a bandwidth. Ten quiet tenants each make ordinary requests at a steady
pace (a folder listing, then a small download, one request every
`--interval` seconds). The noisy tenant floods at twenty times its rate limit
and keeps parallel downloads of a large file going.

Each round measures every quiet tenant's p99 latency twice, alone and under
the flood, minutes apart on the same machine, so the ratio shows what the
flood costs and not what the machine's other load costs. The figure reported
per tenant is the median over the rounds; the target is at most 1.5 for every
tenant. The exit status is 0 when every quiet request succeeded, whether or
not the target is met, and 1 when one failed or the flood was not limited.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import queue
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from bench.harness import (
    Account,
    BenchmarkError,
    CheckFailed,
    machine_facts,
    print_machine_facts,
    strongroom_server,
    without_strongroom_environment,
)

if TYPE_CHECKING:
    from strongroom.runtime import Runtime

QUIET_TENANTS = 10
FLOOD_FACTOR = 20
TARGET = 1.5
SMALL_FILE = b"a small file that the quiet tenants download\n" * 20
MIB = 1024 * 1024
# The rate limits count requests per minute.
WINDOW_SECONDS = 60.0


@dataclass
class Limits:
    """The limits every tenant gets, the noisy one included."""

    requests_per_minute: int
    concurrent_transfers: int
    bandwidth: int


@dataclass
class Phase:
    """The measurements of one phase: each quiet tenant's latencies and the flood's responses."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    flood_answers: dict[int, int] = field(default_factory=dict)
    flood_bytes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count_flood(self, status: int, size: int = 0) -> None:
        with self.lock:
            self.flood_answers[status] = self.flood_answers.get(status, 0) + 1
            self.flood_bytes += size

    def p99(self, slug: str) -> float:
        return percentile(self.latencies[slug], 0.99)


def percentile(values: Sequence[float], fraction: float) -> float:
    """Return the nearest-rank percentile of `values`."""
    ordered = sorted(values)
    if not ordered:
        raise CheckFailed("no latency was measured; the quiet clients sent nothing")
    rank = max(1, round(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


# Set-up ---------------------------------------------------------------------------------


def set_up(data_dir: Path, limits: Limits) -> tuple[list[Account], Account]:
    """Create the quiet tenants and the noisy one, all with the same limits.

    This calls the functions behind `strongroom tenant create`, `user create`,
    `token create` and `tenant limits`, in this process, before the server
    starts. Running those commands took 44 processes, each importing the
    application, which made the set-up longer than a short run.
    """
    # Imported here, so that the flood's process, which imports this module, starts quickly.
    from bench.tenant_stores import write_master_key
    from strongroom.base.config import load_settings
    from strongroom.base.logging import configure_logging
    from strongroom.runtime import build_runtime

    configure_logging("json", "error")
    write_master_key(data_dir)
    with without_strongroom_environment():
        settings = load_settings(data_dir=data_dir)
    runtime = build_runtime(settings, migrate=True)
    try:
        quiet = [
            _create_account(runtime, f"quiet-{number}", f"user@quiet-{number}.example", limits)
            for number in range(1, QUIET_TENANTS + 1)
        ]
        noisy = _create_account(runtime, "noisy", "user@noisy.example", limits)
    finally:
        runtime.close()
    return quiet, noisy


def _create_account(runtime: Runtime, slug: str, email: str, limits: Limits) -> Account:
    """Create a tenant with `limits`, an admin and the admin's API token."""
    from strongroom.identity.tokens import create_token
    from strongroom.identity.users import create_user
    from strongroom.tenancy.events import OPERATOR
    from strongroom.tenancy.lifecycle import provision_tenant
    from strongroom.tenancy.plans import set_limit_overrides

    provision_tenant(runtime.catalog, runtime.stores, slug, None, runtime.settings.default_quota)
    changes = {
        "requests_per_minute": limits.requests_per_minute,
        "concurrent_transfers": limits.concurrent_transfers,
        "bandwidth_bytes_per_second": limits.bandwidth,
    }
    tenant = set_limit_overrides(runtime.catalog, runtime.stores, slug, changes, OPERATOR)
    with runtime.stores.session(tenant, write=True) as session:
        user = create_user(session, email, secrets.token_urlsafe(24), role="admin")
        _row, token = create_token(session, user, "noisy-neighbour benchmark")
    return Account(slug=slug, email=email, token=token)


def upload_files(base_url: str, quiet: list[Account], noisy: Account, large_mib: int) -> None:
    with httpx.Client(base_url=base_url, timeout=120) as client:
        for account in quiet:
            response = client.put(
                account.url("files", "docs/small.txt"), content=SMALL_FILE, headers=account.headers
            )
            _check_stored(response, account)
        large = os.urandom(MIB) * large_mib
        response = client.put(noisy.url("files", "large.bin"), content=large, headers=noisy.headers)
        _check_stored(response, noisy)


def _check_stored(response: httpx.Response, account: Account) -> None:
    if response.status_code not in (200, 201):
        raise BenchmarkError(
            f"upload to {account.slug} failed with {response.status_code}: {response.text[:200]}"
        )


# The quiet tenants ----------------------------------------------------------------------


def quiet_client(
    base_url: str, account: Account, interval: float, stop: threading.Event, phase: Phase
) -> None:
    """Send a listing, then a download, one request every `interval` seconds, until `stop`."""
    latencies = phase.latencies.setdefault(account.slug, [])
    requests = [account.url("folders", "docs"), account.url("files", "docs/small.txt")]
    with httpx.Client(base_url=base_url, timeout=30, headers=account.headers) as client:
        next_start = time.monotonic()
        turn = 0
        while not stop.is_set():
            started = time.monotonic()
            try:
                response = client.get(requests[turn % 2])
            except httpx.HTTPError as exc:
                phase.failures.append(f"{account.slug}: {type(exc).__name__}")
            else:
                latencies.append(time.monotonic() - started)
                if response.status_code != 200:
                    phase.failures.append(f"{account.slug}: {response.status_code}")
            turn += 1
            # A fixed schedule, so a slow response does not lower the request rate.
            next_start += interval
            stop.wait(max(0.0, next_start - time.monotonic()))


# The noisy tenant -----------------------------------------------------------------------


def flood_client(
    base_url: str, noisy: Account, rate: float, stop: threading.Event, phase: Phase
) -> None:
    """Send listings at `rate` requests per second, counting the responses by status."""
    with httpx.Client(base_url=base_url, timeout=30, headers=noisy.headers) as client:
        next_start = time.monotonic()
        while not stop.is_set():
            try:
                status = client.get(noisy.url("folders", "")).status_code
            except httpx.HTTPError:
                status = 0
            phase.count_flood(status)
            next_start += 1 / rate
            delay = next_start - time.monotonic()
            if delay > 0:
                stop.wait(delay)
            else:
                # Behind schedule: catch up without sleeping, but never more than a second behind.
                next_start = max(next_start, time.monotonic() - 1)


def download_client(base_url: str, noisy: Account, stop: threading.Event, phase: Phase) -> None:
    """Download the large file again and again, reading the body as fast as it comes."""
    with httpx.Client(base_url=base_url, timeout=60, headers=noisy.headers) as client:
        while not stop.is_set():
            received = 0
            try:
                with client.stream("GET", noisy.url("files", "large.bin")) as response:
                    for piece in response.iter_bytes(MIB):
                        received += len(piece)
                        if stop.is_set():
                            break
                    status = response.status_code
            except httpx.HTTPError:
                status = 0
            phase.count_flood(status, received)
            if status == 429:
                stop.wait(0.05)


# Rounds ---------------------------------------------------------------------------------


def run_phase(
    base_url: str,
    quiet: list[Account],
    noisy: Account | None,
    arguments: argparse.Namespace,
    limits: Limits,
) -> Phase:
    """Run the quiet clients for `--seconds`, with the flood when `noisy` is given.

    The flood runs in a process of its own. As threads of this process, its
    clients could hold the interpreter lock for up to the switch interval
    (5 ms by default) while a quiet response waited to be timed. The quiet
    latencies would then include the load generator's delays.
    """
    phase = Phase()
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=quiet_client, args=(base_url, account, arguments.interval, stop, phase)
        )
        for account in quiet
    ]
    flood = None if noisy is None else Flood.start(base_url, noisy, arguments, limits)
    for thread in threads:
        thread.start()
    time.sleep(arguments.seconds)
    stop.set()
    for thread in threads:
        thread.join(timeout=120)
    if flood is not None:
        phase.flood_answers, phase.flood_bytes = flood.finish()
    return phase


@dataclass
class Flood:
    """The noisy tenant's clients, running in a child process until `finish` stops them."""

    process: multiprocessing.process.BaseProcess
    stop: Any
    results: Any

    @classmethod
    def start(
        cls, base_url: str, noisy: Account, arguments: argparse.Namespace, limits: Limits
    ) -> Flood:
        """Start the flood and return once its clients are about to send."""
        context = multiprocessing.get_context("spawn")
        stop, ready, results = context.Event(), context.Event(), context.Queue()
        rate = FLOOD_FACTOR * limits.requests_per_minute / 60
        process = context.Process(
            target=run_flood,
            args=(base_url, noisy, rate, arguments.downloads, stop, ready, results),
            daemon=True,
        )
        process.start()
        if not ready.wait(timeout=60):
            process.terminate()
            raise BenchmarkError("the flood's process did not start within 60 s")
        return cls(process, stop, results)

    def finish(self) -> tuple[dict[int, int], int]:
        """Stop the flood; return its responses by status and the bytes it downloaded."""
        self.stop.set()
        try:
            answers, received = self.results.get(timeout=120)
        except queue.Empty:
            raise BenchmarkError("the flood's process did not report within 120 s") from None
        finally:
            self.process.join(timeout=10)
        return answers, received


def run_flood(
    base_url: str,
    noisy: Account,
    rate: float,
    downloads: int,
    process_stop: Any,
    ready: Any,
    results: Any,
) -> None:
    """Send listings from two clients at `rate` in all, and parallel downloads, until stopped."""
    phase = Phase()
    stop = threading.Event()
    threads = [
        threading.Thread(target=flood_client, args=(base_url, noisy, rate / 2, stop, phase))
        for _ in range(2)
    ]
    threads += [
        threading.Thread(target=download_client, args=(base_url, noisy, stop, phase))
        for _ in range(downloads)
    ]
    for thread in threads:
        thread.start()
    ready.set()
    process_stop.wait()
    stop.set()
    for thread in threads:
        thread.join(timeout=120)
    results.put((phase.flood_answers, phase.flood_bytes))


def check_round(alone: Phase, flooded: Phase) -> None:
    failures = alone.failures + flooded.failures
    if failures:
        raise CheckFailed(f"{len(failures)} quiet requests failed, such as {failures[:5]}")
    if not flooded.flood_answers.get(429):
        raise CheckFailed(
            f"the flood was never limited: its responses were {flooded.flood_answers}; check the "
            "tenant limits"
        )


def summarise(rounds: list[tuple[Phase, Phase]], quiet: list[Account]) -> dict[str, object]:
    per_tenant = {}
    for account in quiet:
        ratios = [flooded.p99(account.slug) / alone.p99(account.slug) for alone, flooded in rounds]
        per_tenant[account.slug] = {
            "p99_alone_ms": [round(alone.p99(account.slug) * 1000, 2) for alone, _ in rounds],
            "p99_flooded_ms": [round(flooded.p99(account.slug) * 1000, 2) for _, flooded in rounds],
            "ratio": round(statistics.median(ratios), 3),
        }
    worst = max(entry["ratio"] for entry in per_tenant.values())
    flood = [flooded.flood_answers for _, flooded in rounds]
    return {
        "tenants": per_tenant,
        "worst_ratio": worst,
        "median_ratio": round(
            statistics.median(entry["ratio"] for entry in per_tenant.values()), 3
        ),
        "target": TARGET,
        "met": worst <= TARGET,
        "flood_answers": flood,
        "flood_mib_downloaded": [round(flooded.flood_bytes / MIB, 1) for _, flooded in rounds],
    }


# Command line ---------------------------------------------------------------------------


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.noisy_neighbour", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of alone and flooded")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    parser.add_argument(
        "--interval", type=float, default=0.2, help="seconds between quiet requests"
    )
    parser.add_argument(
        "--rate-limit", type=int, default=600, help="requests per minute per tenant"
    )
    parser.add_argument("--transfers", type=int, default=2, help="concurrent transfers per tenant")
    parser.add_argument("--bandwidth-mib", type=int, default=20, help="MiB/s per tenant")
    parser.add_argument("--downloads", type=int, default=4, help="parallel large downloads")
    parser.add_argument("--large-mib", type=int, default=64, help="size of the noisy tenant's file")
    parser.add_argument("--output", type=Path, help="write the results as JSON here")
    arguments = parser.parse_args(argv)
    if arguments.rounds < 1 or arguments.seconds <= 0 or arguments.interval <= 0:
        parser.error("--rounds must be at least 1, and --seconds and --interval above 0")
    return arguments


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    limits = Limits(arguments.rate_limit, arguments.transfers, arguments.bandwidth_mib * MIB)
    facts = machine_facts()
    print_machine_facts(facts)
    with tempfile.TemporaryDirectory(prefix="strongroom-noisy-") as work:
        data_dir = Path(work) / "data"
        try:
            quiet, noisy = set_up(data_dir, limits)
            server = strongroom_server(data_dir, Path(work) / "server.log", log_level="warning")
            with server:
                upload_files(server.url, quiet, noisy, arguments.large_mib)
                rounds = []
                flood_ended = time.monotonic() - WINDOW_SECONDS
                for number in range(1, arguments.rounds + 1):
                    alone = run_phase(server.url, quiet, None, arguments, limits)
                    # Each flood starts with a fresh minute of the noisy tenant's allowance,
                    # so that every round's flood downloads as much as the limits allow.
                    time.sleep(max(0.0, flood_ended + WINDOW_SECONDS - time.monotonic()))
                    flooded = run_phase(server.url, quiet, noisy, arguments, limits)
                    flood_ended = time.monotonic()
                    check_round(alone, flooded)
                    rounds.append((alone, flooded))
                    print(
                        f"round {number}: quiet p99 alone "
                        f"{statistics.median(alone.p99(a.slug) for a in quiet) * 1000:.1f} ms, "
                        f"flooded {statistics.median(flooded.p99(a.slug) for a in quiet) * 1000:.1f}"
                        f" ms; flood answers {flooded.flood_answers}",
                        flush=True,
                    )
        except (BenchmarkError, CheckFailed) as exc:
            print(f"noisy_neighbour: {exc}", file=sys.stderr)
            return 1
    results = {"machine": facts, "arguments": _arguments_of(arguments), **summarise(rounds, quiet)}
    print(json.dumps({key: results[key] for key in ("worst_ratio", "median_ratio", "met")}))
    if arguments.output is not None:
        arguments.output.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 0


def _arguments_of(arguments: argparse.Namespace) -> dict[str, object]:
    return {
        name: str(value) if isinstance(value, Path) else value
        for name, value in vars(arguments).items()
    }


if __name__ == "__main__":
    sys.exit(main())
