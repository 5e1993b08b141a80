"""Upload a real tree into several tenants at once, download it back and check every byte.

By default the tree is the standard library of the running interpreter:
thousands of files from a few bytes to tens of megabytes. The run fails (exit
status 1) on any of these:

- a file whose downloaded SHA-256 differs from the source, or an upload whose
  reply names another size or digest;
- a tenant's token that lists another tenant's folder, where it must get 401;
- a file that exists only in the last tenant and is found through another
  tenant's URL, where it must get 404;
- a root listing that differs from the tenant's own tree;
- a random marker, planted in that file, found in plaintext anywhere under the
  data directory.

Run it as `python -m bench.real_tree [--source DIR] [--tenants 2] [--workers N]
[--isolation shared|database]`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import stat
import sys
import sysconfig
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from bench.harness import (
    Account,
    BenchmarkError,
    create_account,
    machine_facts,
    print_machine_facts,
    strongroom_server,
    temporary_work_dir,
)

# Third-party packages installed into the interpreter are not its standard library.
STDLIB_SKIPPED_FOLDERS = frozenset({"site-packages", "dist-packages"})
EXTRA_FOLDER = "strongroom-bench"
EXTRA_PATH = f"{EXTRA_FOLDER}/only-in-last-tenant.txt"
SCAN_PIECE_BYTES = 1024 * 1024
HTTP_TIMEOUT_SECONDS = 300.0
MIB = 1024 * 1024


@dataclass(frozen=True)
class SourceFile:
    relative: str
    size: int
    sha256: str
    location: Path | None = None
    content: bytes | None = None

    def read(self) -> bytes:
        if self.content is not None:
            return self.content
        assert self.location is not None
        return self.location.read_bytes()


@dataclass
class Phase:
    """One timed pass over every file of every tenant."""

    files: int = 0
    bytes: int = 0
    seconds: float = 0.0

    @property
    def mib_per_second(self) -> float:
        return self.bytes / MIB / self.seconds if self.seconds else 0.0

    @property
    def files_per_second(self) -> float:
        return self.files / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, float]:
        return {
            **asdict(self),
            "mib_per_second": round(self.mib_per_second, 2),
            "files_per_second": round(self.files_per_second, 1),
        }


@dataclass
class TreeReport:
    source: str
    tenants: list[str]
    workers: int
    files_per_tenant: int = 0
    bytes_per_tenant: int = 0
    upload: Phase = field(default_factory=Phase)
    download: Phase = field(default_factory=Phase)
    isolation_checks: int = 0
    scanned_files: int = 0
    scanned_bytes: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, object]:
        described = asdict(self)
        described["upload"] = self.upload.as_dict()
        described["download"] = self.download.as_dict()
        described["ok"] = self.ok
        return described


def default_source() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def collect_files(source: Path, skipped_folders: Iterable[str] = ()) -> list[SourceFile]:
    """List the regular files under `source`, sorted, without `__pycache__` or symbolic links.

    `skipped_folders` names folders directly under `source` to leave out.
    """
    skipped_top = set(skipped_folders)
    found = []
    for folder, subfolders, names in os.walk(source):
        folder_path = Path(folder)
        at_top = folder_path == source
        subfolders[:] = sorted(
            name
            for name in subfolders
            if name != "__pycache__"
            and not (at_top and name in skipped_top)
            and not (folder_path / name).is_symlink()
        )
        for name in sorted(names):
            location = folder_path / name
            if not stat.S_ISREG(location.lstat().st_mode):
                continue
            content = location.read_bytes()
            found.append(
                SourceFile(
                    relative=location.relative_to(source).as_posix(),
                    size=len(content),
                    sha256=hashlib.sha256(content).hexdigest(),
                    location=location,
                )
            )
    return found


def planted_file(marker: str) -> SourceFile:
    """Return the extra file for the last tenant; its text repeats the marker many times."""
    line = f"This file exists in one tenant only. Plaintext marker: {marker}\n"
    content = (line * 2000).encode("ascii")
    return SourceFile(
        relative=EXTRA_PATH,
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        content=content,
    )


def upload_one(client: httpx.Client, account: Account, item: SourceFile) -> str | None:
    """Upload one file; return a problem, or None when the reply matches the source."""
    response = client.put(
        account.url("files", item.relative), content=item.read(), headers=account.headers
    )
    if response.status_code not in (200, 201):
        return (
            f"{account.slug}: PUT {item.relative} returned {response.status_code}: "
            f"{response.text[:200]}"
        )
    stored = response.json()
    if stored.get("size") != item.size or stored.get("sha256") != item.sha256:
        return (
            f"{account.slug}: PUT {item.relative} stored {stored.get('size')} bytes with SHA-256 "
            f"{stored.get('sha256')}, expected {item.size} bytes with {item.sha256}"
        )
    return None


def download_one(client: httpx.Client, account: Account, item: SourceFile) -> str | None:
    """Download one file, hashing it as it streams; return a problem, or None when it matches."""
    digest = hashlib.sha256()
    size = 0
    with client.stream(
        "GET", account.url("files", item.relative), headers=account.headers
    ) as response:
        if response.status_code != 200:
            response.read()
            return (
                f"{account.slug}: GET {item.relative} returned {response.status_code}: "
                f"{response.text[:200]}"
            )
        for piece in response.iter_bytes():
            digest.update(piece)
            size += len(piece)
    if size != item.size or digest.hexdigest() != item.sha256:
        return (
            f"{account.slug}: GET {item.relative} returned {size} bytes with SHA-256 "
            f"{digest.hexdigest()}, expected {item.size} bytes with {item.sha256}"
        )
    return None


Transfer = Callable[[httpx.Client, Account, SourceFile], "str | None"]


def transfer_all(
    base_url: str,
    work: Sequence[tuple[Account, Sequence[SourceFile]]],
    workers: int,
    transfer: Transfer,
    phase: Phase,
    problems: list[str],
) -> None:
    """Run `transfer` on every file, with one thread pool and one client per tenant, all at once.

    `phase` counts the files that transferred intact; the others add a problem each.
    """
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    clients = [
        httpx.Client(base_url=base_url, timeout=HTTP_TIMEOUT_SECONDS, limits=limits) for _ in work
    ]
    pools = [
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix=account.slug)
        for account, _ in work
    ]
    try:
        started = time.perf_counter()
        futures = [
            (item, pool.submit(transfer, client, account, item))
            for pool, client, (account, items) in zip(pools, clients, work, strict=True)
            for item in items
        ]
        for item, future in futures:
            try:
                problem = future.result()
            except httpx.HTTPError as exc:
                problem = f"{item.relative}: request failed: {type(exc).__name__}: {exc}"
            if problem is not None:
                problems.append(problem)
                continue
            phase.files += 1
            phase.bytes += item.size
        phase.seconds = time.perf_counter() - started
    finally:
        for pool in pools:
            pool.shutdown(cancel_futures=True)
        for client in clients:
            client.close()


def check_isolation(
    client: httpx.Client, accounts: Sequence[Account], top_names: set[str]
) -> tuple[int, list[str]]:
    """Check that each token reaches its own tenant only; return (checks made, problems)."""
    problems = []
    checks = 0
    last = accounts[-1]
    for index, account in enumerate(accounts):
        other = accounts[(index + 1) % len(accounts)]

        response = client.get(other.url("folders"), headers=account.headers)
        checks += 1
        if response.status_code != 401:
            problems.append(
                f"{account.slug}'s token listed {other.slug}'s root: "
                f"status {response.status_code}, expected 401"
            )

        if account is not last:
            response = client.get(account.url("files", EXTRA_PATH), headers=account.headers)
            checks += 1
            if response.status_code != 404:
                problems.append(
                    f"{EXTRA_PATH}, stored in {last.slug} only, returned {response.status_code} "
                    f"through {account.slug}'s URL, expected 404"
                )

        response = client.get(account.url("folders"), headers=account.headers)
        checks += 1
        expected = top_names | ({EXTRA_FOLDER} if account is last else set())
        listed = (
            {item["name"] for item in response.json()["items"]}
            if response.status_code == 200
            else set()
        )
        if listed != expected:
            problems.append(
                f"{account.slug}'s root listing (status {response.status_code}) differs from its "
                f"tree: unexpected {sorted(listed - expected)[:5]}, "
                f"missing {sorted(expected - listed)[:5]}"
            )
    return checks, problems


def scan_for_plaintext(root: Path, needle: bytes) -> tuple[int, int, list[Path]]:
    """Search every file under `root` for `needle`; return (files, bytes, files containing it).

    Pieces overlap by one byte less than the needle, so a match across a
    piece boundary is still found.
    """
    files = 0
    scanned = 0
    hits = []
    overlap = len(needle) - 1
    for folder, _subfolders, names in os.walk(root):
        for name in names:
            location = Path(folder) / name
            if not stat.S_ISREG(location.lstat().st_mode):
                continue
            files += 1
            tail = b""
            with location.open("rb") as handle:
                while piece := handle.read(SCAN_PIECE_BYTES):
                    scanned += len(piece)
                    window = tail + piece
                    if needle in window:
                        hits.append(location)
                        break
                    tail = window[-overlap:] if overlap else b""
    return files, scanned, hits


def run(
    source: Path,
    tenant_count: int = 2,
    workers: int = 4,
    skipped_folders: Iterable[str] = (),
    work_dir: Path | None = None,
    log: Callable[[str], None] = print,
    isolation: str = "shared",
) -> TreeReport:
    """Run the whole benchmark against a fresh server and return what it measured and found."""
    if tenant_count < 2:
        raise BenchmarkError("isolation needs at least 2 tenants; pass --tenants 2 or more")
    files = collect_files(source, skipped_folders)
    if not files:
        raise BenchmarkError(f"{source} contains no regular files to upload")
    marker = f"strongroom-bench-marker-{secrets.token_hex(16)}"
    extra = planted_file(marker)
    top_names = {item.relative.split("/", 1)[0] for item in files}

    report = TreeReport(
        source=str(source),
        tenants=[f"bench-{number}" for number in range(1, tenant_count + 1)],
        workers=workers,
        files_per_tenant=len(files),
        bytes_per_tenant=sum(item.size for item in files),
    )
    log(
        f"source: {source}: {report.files_per_tenant} files, "
        f"{report.bytes_per_tenant / MIB:.1f} MiB, into {tenant_count} tenants "
        f"with {workers} workers each"
    )

    with temporary_work_dir("strongroom-bench-", work_dir) as temporary:
        data_dir = Path(temporary) / "data"
        server = strongroom_server(data_dir, Path(temporary) / "server.log")
        with server:
            accounts = _create_accounts(server.environment, report.tenants, isolation)
            work = [(account, files) for account in accounts[:-1]]
            work.append((accounts[-1], [*files, extra]))

            transfer_all(server.url, work, workers, upload_one, report.upload, report.problems)
            log(_describe_phase("upload", report.upload))
            transfer_all(server.url, work, workers, download_one, report.download, report.problems)
            log(_describe_phase("download", report.download))

            with httpx.Client(base_url=server.url, timeout=HTTP_TIMEOUT_SECONDS) as client:
                checks, problems = check_isolation(client, accounts, top_names)
            report.isolation_checks = checks
            report.problems.extend(problems)
            log(f"isolation: {checks} checks, {len(problems)} failed")

            # Scan while the server still runs, so SQLite's write-ahead log is there to scan too.
            _scan(data_dir, marker, report, log)
    return report


def _create_accounts(
    environment: dict[str, str], slugs: Sequence[str], isolation: str
) -> list[Account]:
    """Create every tenant's account at once; each CLI call spends most of a second starting up."""
    with ThreadPoolExecutor(max_workers=min(len(slugs), 4)) as pool:
        futures = [
            pool.submit(create_account, environment, slug, f"bench@{slug}.example.org", isolation)
            for slug in slugs
        ]
        return [future.result() for future in futures]


def _scan(data_dir: Path, marker: str, report: TreeReport, log: Callable[[str], None]) -> None:
    files, scanned, hits = scan_for_plaintext(data_dir, marker.encode("ascii"))
    report.scanned_files = files
    report.scanned_bytes = scanned
    for hit in hits:
        report.problems.append(f"the plaintext marker is stored unencrypted in {hit}")
    if scanned < report.upload.bytes:
        report.problems.append(
            f"the data directory holds {scanned} bytes, fewer than the {report.upload.bytes} "
            "uploaded, so the contents are stored elsewhere and the scan proves nothing"
        )
    log(
        f"plaintext scan: {files} files, {scanned / MIB:.1f} MiB under the data directory, "
        f"marker found in {len(hits)}"
    )


def _describe_phase(name: str, phase: Phase) -> str:
    return (
        f"{name}: {phase.files} files, {phase.bytes / MIB:.1f} MiB in {phase.seconds:.2f} s: "
        f"{phase.mib_per_second:.1f} MiB/s, {phase.files_per_second:.0f} files/s"
    )


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.real_tree",
        description="Upload a real tree into several tenants of a fresh Strongroom server, "
        "download it back, and check contents, isolation and encryption at rest.",
    )
    parser.add_argument(
        "--source",
        type=Path,
        help="folder to upload; default the running interpreter's standard library "
        "without site-packages",
    )
    parser.add_argument("--tenants", type=int, default=2, help="number of tenants (at least 2)")
    parser.add_argument("--workers", type=int, default=4, help="concurrent requests per tenant")
    parser.add_argument("--output", type=Path, help="also write the results to this JSON file")
    parser.add_argument(
        "--work-dir",
        type=Path,
        help="where to create the server's data directory; default the system temp",
    )
    parser.add_argument(
        "--isolation",
        choices=("shared", "database"),
        default="shared",
        help="isolation level of the tenants; the server runs on the embedded default (SQLite)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; return 0 when every byte and check matched, 1 if not, 2 on bad set-up."""
    options = parse_arguments(argv)
    source = options.source.resolve() if options.source else default_source()
    skipped = () if options.source else STDLIB_SKIPPED_FOLDERS
    facts = machine_facts()
    print_machine_facts(facts)
    try:
        report = run(
            source,
            options.tenants,
            options.workers,
            skipped,
            options.work_dir,
            isolation=options.isolation,
        )
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    for problem in report.problems[:50]:
        print(f"problem: {problem}")
    if len(report.problems) > 50:
        print(f"... and {len(report.problems) - 50} more problems")
    print("result: OK" if report.ok else f"result: FAILED with {len(report.problems)} problems")
    facts["load_average_1min_after"] = round(os.getloadavg()[0], 2)
    print(f"load average at the end: {facts['load_average_1min_after']}")
    if options.output:
        options.output.write_text(
            json.dumps({"machine": facts, **report.as_dict()}, indent=2) + "\n"
        )
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
