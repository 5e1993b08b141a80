"""The real-tree benchmark on a small tree: two packages of the standard library.

The benchmark starts its own `strongroom serve` subprocess on the embedded
default (SQLite), so these tests run once, not once per database backend. Its
tenants are on the database level, a SQLite file each, so the plaintext scan
covers tenant files as well as the catalog.
They check what the run found and counted, never how fast it was.
"""

from __future__ import annotations

import json
import os
import shutil
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench import real_tree

PACKAGES = ("json", "email")


@dataclass(frozen=True)
class Run:
    status: int
    report: dict
    source_files: int
    source_bytes: int


def copy_packages(destination: Path) -> None:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for package in PACKAGES:
        shutil.copytree(
            stdlib / package, destination / package, ignore=shutil.ignore_patterns("__pycache__")
        )


def count_files(root: Path) -> tuple[int, int]:
    sizes = [path.stat().st_size for path in root.rglob("*") if path.is_file()]
    return len(sizes), sum(sizes)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Run the benchmark once for every test here: it spends most of its time starting processes."""
    base = tmp_path_factory.mktemp("real_tree")
    source = base / "source"
    copy_packages(source)
    files, size = count_files(source)
    output = base / "report.json"

    status = real_tree.main(
        [
            "--source",
            str(source),
            "--workers",
            "2",
            "--work-dir",
            str(base),
            "--output",
            str(output),
            "--isolation",
            "database",
        ]
    )

    return Run(status, json.loads(output.read_text()), files, size)


def test_real_tree_exits_with_success(small_run: Run) -> None:
    assert small_run.status == 0


def test_real_tree_reports_no_problems(small_run: Run) -> None:
    assert small_run.report["problems"] == []


def test_real_tree_counts_source_files(small_run: Run) -> None:
    assert small_run.report["files_per_tenant"] == small_run.source_files


def test_real_tree_counts_source_bytes(small_run: Run) -> None:
    assert small_run.report["bytes_per_tenant"] == small_run.source_bytes


def test_real_tree_uploads_tree_twice_plus_extra(small_run: Run) -> None:
    assert small_run.report["upload"]["files"] == 2 * small_run.source_files + 1


def test_real_tree_downloads_every_uploaded_file(small_run: Run) -> None:
    assert small_run.report["download"]["files"] == small_run.report["upload"]["files"]


def test_real_tree_downloads_every_uploaded_byte(small_run: Run) -> None:
    assert small_run.report["download"]["bytes"] == small_run.report["upload"]["bytes"]


def test_real_tree_makes_five_isolation_checks(small_run: Run) -> None:
    # With two tenants: each token against the other's root, the extra file through the
    # first tenant's URL, and each tenant's own root listing.
    assert small_run.report["isolation_checks"] == 5


def test_real_tree_scans_all_stored_bytes(small_run: Run) -> None:
    assert small_run.report["scanned_bytes"] >= small_run.report["upload"]["bytes"]


def test_real_tree_rejects_single_tenant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.txt").write_text("a")

    status = real_tree.main(["--source", str(tmp_path), "--tenants", "1"])

    assert status == 2
    assert "at least 2 tenants" in capsys.readouterr().err


def test_collect_files_skips_caches_and_links(tmp_path: Path) -> None:
    (tmp_path / "pkg" / "__pycache__").mkdir(parents=True)
    (tmp_path / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"cache")
    (tmp_path / "pkg" / "mod.py").write_text("x = 1\n")
    (tmp_path / "pkg" / "link.py").symlink_to(tmp_path / "pkg" / "mod.py")
    (tmp_path / "linked-folder").symlink_to(tmp_path / "pkg")
    os.mkfifo(tmp_path / "pkg" / "pipe")

    found = real_tree.collect_files(tmp_path)

    assert [item.relative for item in found] == ["pkg/mod.py"]


def test_collect_files_skips_named_top_folders(tmp_path: Path) -> None:
    (tmp_path / "site-packages").mkdir()
    (tmp_path / "site-packages" / "third.py").write_text("")
    (tmp_path / "own.py").write_text("")

    found = real_tree.collect_files(tmp_path, real_tree.STDLIB_SKIPPED_FOLDERS)

    assert [item.relative for item in found] == ["own.py"]


def test_plaintext_scan_finds_marker_across_pieces(tmp_path: Path) -> None:
    needle = b"strongroom-bench-marker-0123456789"
    # Start the needle just before the end of the first piece the scan reads.
    content = b"\0" * (real_tree.SCAN_PIECE_BYTES - 5) + needle + b"\0" * 100
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "blob").write_bytes(content)
    (tmp_path / "other").write_bytes(b"nothing to see")

    files, scanned, hits = real_tree.scan_for_plaintext(tmp_path, needle)

    assert hits == [tmp_path / "nested" / "blob"]
    assert files == 2
    assert scanned == len(content) + len(b"nothing to see")


def test_plaintext_scan_passes_clean_folder(tmp_path: Path) -> None:
    (tmp_path / "blob").write_bytes(b"ciphertext only")

    _files, _scanned, hits = real_tree.scan_for_plaintext(tmp_path, b"marker")

    assert hits == []
