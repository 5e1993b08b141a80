"""Real WebDAV clients from Debian's packages against the live server: litmus, rclone and cadaver.

The litmus counts and the rclone round trip are written to docs/webdav.md,
one row per backend, so the page shows what the last run of the suite found.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sysconfig
from pathlib import Path

import httpx

from tests.conftest import TEST_CHUNK_SIZE, Level
from tests.dav.conftest import DavUser, client_program

DOCS_PAGE = Path(__file__).resolve().parents[2] / "docs" / "webdav.md"
LITMUS_SUITES = ("basic", "copymove", "props", "locks")
# Tests of those suites that are allowed to fail, with the reason. None fails today.
KNOWN_FAILURES: dict[str, str] = {}
SUMMARY = re.compile(
    r"<- summary for `(?P<suite>\w+)': of (?P<run>\d+) tests run: "
    r"(?P<passed>\d+) passed, (?P<failed>\d+) failed"
)
FAILED_TEST = re.compile(r"^\s*\d+\.\s+(?P<name>\w+)\.*\s.*\bFAIL\b", re.MULTILINE)
WARNINGS = re.compile(r"-> (?P<count>\d+) warnings? (was|were) issued")
# Standard library packages to sync: a few hundred files in nested folders, small and large.
STDLIB_PACKAGES = ("email", "json", "xml", "http")


def run_litmus(work_dir: Path, user: DavUser, suites: tuple[str, ...]) -> str:
    """Run litmus's `suites` against the user's WebDAV URL and return its standard output."""
    # litmus writes its debug.log and child.log to the working directory.
    completed = subprocess.run(
        # "--" ends the options: a generated password may start with "-".
        [client_program("litmus"), "--", user.url(), user.email, user.password],
        cwd=work_dir,
        env={**os.environ, "TESTS": " ".join(suites)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return completed.stdout


def test_litmus_suites(tmp_path: Path, acme_dav: DavUser, level: Level) -> None:
    output = run_litmus(tmp_path, acme_dav, tuple(LITMUS_SUITES))
    summaries = {match["suite"]: match for match in SUMMARY.finditer(output)}
    assert list(summaries) == list(LITMUS_SUITES), output
    failed = set(FAILED_TEST.findall(output))
    assert failed <= set(KNOWN_FAILURES), output
    rows = {
        suite: (int(match["run"]), int(match["passed"]), int(match["failed"]))
        for suite, match in summaries.items()
    }
    for suite, (run, passed, failures) in rows.items():
        assert run == passed + failures, suite
        assert failures <= len(KNOWN_FAILURES), f"{suite}: {failures} failed\n{output}"
    warnings = sum(int(match["count"]) for match in WARNINGS.finditer(output))
    cells = [f"{passed}/{run}" for run, passed, _failed in rows.values()]
    record("litmus", str(level), " | ".join([*cells, str(warnings)]))


def make_tree(root: Path) -> Path:
    """Copy a part of the standard library, with an empty file, a multi-chunk file and odd names."""
    source = Path(sysconfig.get_paths()["stdlib"])
    for package in STDLIB_PACKAGES:
        shutil.copytree(
            source / package, root / "stdlib" / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    (root / "empty.txt").write_bytes(b"")
    (root / "random.bin").write_bytes(os.urandom(5 * TEST_CHUNK_SIZE + 11))
    (root / "Grüße & café").mkdir()
    (root / "Grüße & café" / "naïve résumé (1).txt").write_text("décor\n", encoding="utf-8")
    (root / "spaces in name.txt").write_text("spaces\n")
    return root


def tree_contents(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def rclone(user: DavUser, config: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    program = client_program("rclone")
    obscured = subprocess.run(
        # "--" ends the options: a generated password may start with "-".
        [program, "obscure", "--", user.password], capture_output=True, text=True, check=True
    ).stdout.strip()
    environment = {
        **os.environ,
        # An empty configuration of its own, so no remote of the machine's user is used.
        "RCLONE_CONFIG": str(config),
        "RCLONE_WEBDAV_URL": user.url(),
        "RCLONE_WEBDAV_VENDOR": "other",
        "RCLONE_WEBDAV_USER": user.email,
        "RCLONE_WEBDAV_PASS": obscured,
    }
    return subprocess.run(
        [program, *arguments, "--retries", "1", "--low-level-retries", "1", "--transfers", "4"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_rclone_round_trip(
    tmp_path: Path, client: httpx.Client, acme_dav: DavUser, level: Level
) -> None:
    local = make_tree(tmp_path / "local")
    config = tmp_path / "rclone.conf"
    config.write_text("")
    expected = tree_contents(local)

    up = rclone(acme_dav, config, "sync", str(local), ":webdav:tree")
    assert up.returncode == 0, up.stderr
    down = rclone(acme_dav, config, "sync", ":webdav:tree", str(tmp_path / "first"))
    assert down.returncode == 0, down.stderr
    assert tree_contents(tmp_path / "first") == expected

    # A second sync sends a changed file, a new one and a deletion, and nothing else.
    (local / "stdlib" / "json" / "__init__.py").write_bytes(b"changed\n")
    (local / "new.txt").write_bytes(b"new\n")
    (local / "spaces in name.txt").unlink()
    expected = tree_contents(local)
    up = rclone(acme_dav, config, "sync", str(local), ":webdav:tree")
    assert up.returncode == 0, up.stderr
    down = rclone(acme_dav, config, "sync", ":webdav:tree", str(tmp_path / "second"))
    assert down.returncode == 0, down.stderr
    assert tree_contents(tmp_path / "second") == expected

    member = acme_dav.member
    trash = client.get(member.url("trash"), headers=member.headers).json()
    assert [item["original_path"] for item in trash["items"]] == ["tree/spaces in name.txt"]
    size = sum(len(content) for content in expected.values())
    record("rclone", str(level), f"{len(expected)} | {size} | every byte identical")


def test_cadaver_session(tmp_path: Path, acme_dav: DavUser) -> None:
    cadaver = client_program("cadaver")
    home = tmp_path / "home"
    home.mkdir()
    netrc = home / ".netrc"
    netrc.write_text(f"machine 127.0.0.1\nlogin {acme_dav.email}\npassword {acme_dav.password}\n")
    netrc.chmod(0o600)
    (tmp_path / "local.txt").write_bytes(b"sent by cadaver\n")
    script = """\
mkcol docs
put local.txt docs/report.txt
ls docs
get docs/report.txt fetched.txt
move docs/report.txt docs/final.txt
ls docs
quit
"""

    completed = subprocess.run(
        [cadaver, acme_dav.url()],
        input=script,
        cwd=tmp_path,
        env={**os.environ, "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    output = completed.stdout
    assert completed.returncode == 0, output + completed.stderr
    assert "failed" not in output, output
    listings = output.split("Listing collection")
    assert "report.txt" in listings[1]
    assert "final.txt" in listings[2]
    assert "report.txt" not in listings[2]
    assert (tmp_path / "fetched.txt").read_bytes() == b"sent by cadaver\n"


def record(table: str, key: str, cells: str) -> None:
    """Write one row of a results table in docs/webdav.md, replacing the row of the same key."""
    start, end = f"<!-- {table}:start -->", f"<!-- {table}:end -->"
    page = DOCS_PAGE.read_text(encoding="utf-8")
    before, rest = page.split(start)
    rows_text, after = rest.split(end)
    rows = rows_text.strip().splitlines()
    header, body = rows[:2], rows[2:]
    kept = [line for line in body if not line.startswith(f"| {key} |")]
    updated = sorted([*kept, f"| {key} | {cells} |"])
    new_table = "\n".join([*header, *updated])
    DOCS_PAGE.write_text(f"{before}{start}\n{new_table}\n{end}{after}", encoding="utf-8")
