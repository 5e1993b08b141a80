"""The tenants benchmark at a tiny scale: 3 tenants, 1 round, two SQLite levels and schema tenants.

The benchmark runs as a command in its own process, as an operator runs it,
because it configures logging for itself, and it starts its own PostgreSQL
server and `strongroom serve` processes, so these tests run once, not once
per level. The django-tenants comparison is left out: it installs Django
from PyPI on first use. The tests check what the run created, listed and
migrated, never how fast it was.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from bench import tenants
from bench.harness import CheckFailed
from bench.tenant_migrations import check_same_columns
from bench.tenant_stores import LISTING_FILE_BYTES, LISTING_FILES, check_listing
from strongroom.runtime import Runtime  # noqa: F401 - registers every tenant table
from strongroom.storage.db import TenantBase
from tests.services import MissingService
from tests.services.fixtures import require_service
from tests.services.postgres import find_bin_dir

REPO_ROOT = Path(__file__).resolve().parent.parent
LEVELS = ["sqlite-shared", "sqlite-database", "postgres-schema"]
TENANTS = 3
ROUNDS = 1

pytestmark = pytest.mark.postgres


@dataclass(frozen=True)
class Run:
    status: int
    stdout: str
    report: dict


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Run the benchmark once for every test here: it spends most of its time starting processes."""
    try:
        find_bin_dir()
    except MissingService as exc:
        require_service(exc)
    base = tmp_path_factory.mktemp("tenants")
    output = base / "report.json"

    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.tenants",
            f"--tenants={TENANTS}",
            f"--rounds={ROUNDS}",
            f"--levels={','.join(LEVELS)}",
            "--listing-seconds=0.2",
            "--listing-warmup=0.05",
            "--clients=2",
            "--jobs=1",
            "--no-django",
            f"--work-dir={base}",
            f"--output={output}",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    return Run(completed.returncode, completed.stdout, json.loads(output.read_text()))


def test_tenants_records_exact_command(tiny_run: Run) -> None:
    command = tiny_run.report["command"]

    assert command.startswith("python -m bench.tenants --tenants=3 ")
    assert f"command: {command}" in tiny_run.stdout


def test_tenants_records_machine_facts(tiny_run: Run) -> None:
    assert {"date", "nproc", "cpu_model", "memory_gib", "python"} <= set(tiny_run.report["machine"])


def test_tenants_measures_requested_levels(tiny_run: Run) -> None:
    assert list(tiny_run.report["levels"]) == LEVELS


@pytest.mark.parametrize("level", LEVELS)
def test_tenants_counts_created_tenants(tiny_run: Run, level: str) -> None:
    creation = tiny_run.report["levels"][level]["creation"]

    assert creation["tenants"] == TENANTS
    assert creation["total_seconds"] > 0


@pytest.mark.parametrize("level", LEVELS)
def test_tenants_takes_one_sample_per_round(tiny_run: Run, level: str) -> None:
    samples = tiny_run.report["levels"][level]["samples"]

    assert set(samples) == {
        f"{side}_{name}"
        for side in ("one", "many")
        for name in ("latency_ms", "rate_1_client", "rate_2_clients")
    }
    assert all(len(values) == ROUNDS for values in samples.values())


@pytest.mark.parametrize("level", LEVELS)
def test_tenants_compares_many_with_one(tiny_run: Run, level: str) -> None:
    ratios = tiny_run.report["levels"][level]["ratios"]

    assert [ratio["name"] for ratio in ratios] == [
        f"{level}: latency, 3 tenants / 1, 1 client",
        f"{level}: requests/s, 3 tenants / 1, 2 clients",
    ]
    assert [(ratio["target"], ratio["at_most"]) for ratio in ratios] == [(1.1, True), (0.9, False)]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("side", ["one", "many"])
def test_tenants_lists_stored_files(tiny_run: Run, level: str, side: str) -> None:
    listing = tiny_run.report["levels"][level]["listing"]
    stored = listing["stored_sha256"][side]

    listed = {item["name"]: (item["size"], item["sha256"]) for item in listing["items"][side]}

    assert len(stored) == LISTING_FILES
    assert listed == {name: (LISTING_FILE_BYTES, digest) for name, digest in stored.items()}


@pytest.mark.parametrize("level", LEVELS)
def test_tenants_checks_every_response(tiny_run: Run, level: str) -> None:
    # Two stores, and on each one load with 1 client and one with 2, each sending at least
    # one request per client.
    assert tiny_run.report["levels"][level]["listing"]["responses_checked"] >= 2 * (1 + 2)


def test_tenants_migrates_every_schema(tiny_run: Run) -> None:
    migration = tiny_run.report["migration"]

    assert migration["schemas"] == TENANTS
    assert len(migration["samples"]["strongroom_seconds"]) == ROUNDS
    assert "django_tenants_seconds" not in migration["samples"]


def test_tenants_migrate_target_needs_full_scale(tiny_run: Run) -> None:
    assert tiny_run.report["migration"]["limit"]["applies"] is False


# Parts that need no run ------------------------------------------------------------------


def test_check_listing_rejects_wrong_digest() -> None:
    stored = {"a.txt": "0" * 64}
    items = [{"name": "a.txt", "type": "file", "size": LISTING_FILE_BYTES, "sha256": "1" * 64}]

    with pytest.raises(CheckFailed, match="differs from the 1 files stored"):
        check_listing(items, stored)


def test_check_listing_rejects_missing_file() -> None:
    stored = {"a.txt": "0" * 64, "b.txt": "0" * 64}
    items = [{"name": "a.txt", "type": "file", "size": LISTING_FILE_BYTES, "sha256": "0" * 64}]

    with pytest.raises(CheckFailed):
        check_listing(items, stored)


def test_check_same_columns_rejects_missing_table(postgres_database: str) -> None:
    # One schema per side, as in the benchmark's two databases, but both in one database here.
    with psycopg.connect(postgres_database, autocommit=True) as connection:
        for schema in ("tenant_one", "bench_one"):
            connection.execute(f"CREATE SCHEMA {schema}")
            connection.execute(f"CREATE TABLE {schema}.users (tenant_id uuid NOT NULL, id uuid)")
        assert check_same_columns(postgres_database, postgres_database) == 2
        connection.execute("CREATE TABLE tenant_one.links (tenant_id uuid NOT NULL)")

    missing = r"only in Strongroom \[\('links', 'tenant_id', 'uuid', True\)\], only in Django \[\]"
    with pytest.raises(CheckFailed, match=missing):
        check_same_columns(postgres_database, postgres_database)


def test_compare_rounds_latency_bound_is_upper() -> None:
    ratio = tenants.compare_rounds("latency", [1.2, 1.0], [1.0, 1.0], 1.1, at_most=True)

    assert ratio["ratio"] == 1.1
    assert ratio["met"] is True


def test_compare_rounds_rate_bound_is_lower() -> None:
    ratio = tenants.compare_rounds("rate", [80.0, 85.0], [100.0, 100.0], 0.9, at_most=False)

    assert ratio["ratio"] == 0.825
    assert ratio["met"] is False


def test_tenants_rejects_unknown_level(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        tenants.parse_arguments(["--levels", "sqlite-schema"])

    assert raised.value.code == 2
    assert "--levels 'sqlite-schema': choose from sqlite-shared" in capsys.readouterr().err


def django_columns() -> dict[str, set[str]]:
    """Return the columns of each table that the django-tenants project declares, read from source.

    Django is not installed in this environment, so the models are read as
    Python syntax: each class with a `Meta.db_table` gives its table, and its
    field assignments give the columns.
    """
    source = REPO_ROOT / "bench" / "django_tenants_project" / "drive" / "models.py"
    tables = {}
    for node in ast.parse(source.read_text()).body:
        if not isinstance(node, ast.ClassDef):
            continue
        columns, table = set(), None
        for statement in node.body:
            if isinstance(statement, ast.Assign) and isinstance(statement.targets[0], ast.Name):
                columns.add(statement.targets[0].id)
            if isinstance(statement, ast.ClassDef) and statement.name == "Meta":
                for setting in statement.body:
                    if (
                        isinstance(setting, ast.Assign)
                        and ast.unparse(setting.targets[0]) == "db_table"
                    ):
                        table = ast.literal_eval(setting.value)
        if table is not None:
            tables[table] = columns - {"pk"}
    return tables


def test_django_project_declares_every_tenant_column() -> None:
    # The benchmark compares the two sides' columns only after creating a thousand
    # tenants. This test finds a table or column added on one side alone at once.
    expected = {
        name: {column.name for column in table.columns}
        for name, table in TenantBase.metadata.tables.items()
    }

    declared = django_columns()

    assert set(declared) == set(expected)
    for name, columns in expected.items():
        assert declared[name] == columns, name
