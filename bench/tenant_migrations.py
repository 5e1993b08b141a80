"""Add one column to N tenant schemas: `strongroom migrate` against django-tenants' `migrate_schemas`.

Both sides run on the benchmark's PostgreSQL server, each in a database of
its own with N tenant schemas. The schemas of both sides have the same
tables and columns, which the benchmark checks before the first round. Each round adds a nullable column
`bench_note_R` to the `nodes` table of every schema, through a new migration
on each side, and times the command that applies it as an operator runs it:
a fresh process, from start to exit.

- Strongroom: a new Alembic revision in a folder of the benchmark's own,
  which `STRONGROOM_EXTRA_TENANT_MIGRATIONS` names, then `strongroom
  migrate --jobs J`. The product's own migrations are not touched.
- django-tenants: a copy of `bench/django_tenants_project` in the work
  folder, a new Django migration in its tenant app, then `manage.py
  migrate_schemas --executor=multiprocessing` with J processes. Django and
  django-tenants are installed only in `bench/.venv-django`, created on
  first use.

After each command the benchmark counts the schemas whose `nodes` table has
the new column, and fails unless every one has it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg

from bench.harness import (
    BenchmarkError,
    CheckFailed,
    strongroom_command,
    strongroom_environment,
    without_strongroom_environment,
)
from bench.tenant_stores import Store
from strongroom.tenancy.migrations import head_revision

if TYPE_CHECKING:
    from tests.services.postgres import PostgresServer

BENCH_DIR = Path(__file__).resolve().parent
DJANGO_PROJECT = BENCH_DIR / "django_tenants_project"
DJANGO_VENV = BENCH_DIR / ".venv-django"
# Django 5.2 is the first with composite primary keys, which the tenant tables need;
# Django 6 needs Python 3.12.
DJANGO_REQUIREMENTS = ("Django>=5.2,<6", "django-tenants>=3.7,<5", "psycopg[binary]>=3.2")
DJANGO_DATABASE = "bench_django_tenants"
DJANGO_SCHEMA_PREFIX = "bench_"
STRONGROOM_SCHEMA_PREFIX = "tenant_"
NOTE_TABLE = "nodes"
COMMAND_TIMEOUT_SECONDS = 3600

REVISION_SCRIPT = '''"""Add {column} to the folder tree: the column the tenants benchmark adds in round {number}.

Revision ID: {revision}
Revises: {down_revision}
"""

import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = "{down_revision}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("{table}", sa.Column("{column}", sa.String(200), nullable=True))


def downgrade() -> None:
    op.drop_column("{table}", "{column}")
'''

DJANGO_MIGRATION = '''"""Add {column} to the folder tree: the column the tenants benchmark adds in round {number}."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("drive", "{previous}")]
    operations = [
        migrations.AddField(
            model_name="node", name="{column}", field=models.CharField(max_length=200, null=True)
        )
    ]
'''

# Every ordinary column of a schema's tables, without the migration tools' own version tables.
COLUMNS_QUERY = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
  AND c.relname NOT IN ('alembic_version_tenant', 'django_migrations')
"""

SCHEMAS_WITH_COLUMN_QUERY = """
SELECT count(*)
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relname = %s AND a.attname = %s AND NOT a.attisdropped AND n.nspname LIKE %s
"""


def note_column(number: int) -> str:
    return f"bench_note_{number}"


def run_timed(
    command: Sequence[str], environment: dict[str, str], cwd: Path | None = None
) -> tuple[float, str]:
    """Run a command to its end; return its wall time in seconds and its standard output.

    Raises BenchmarkError with the end of its output when it exits non-zero or times out.
    """
    started = time.perf_counter()
    try:
        completed = subprocess.run(
            list(command),
            env=environment,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BenchmarkError(
            f"`{' '.join(command[:4])} ...` timed out after {COMMAND_TIMEOUT_SECONDS} s"
        ) from None
    elapsed = time.perf_counter() - started
    if completed.returncode != 0:
        output = (completed.stderr.strip() or completed.stdout.strip())[-2000:]
        raise BenchmarkError(
            f"`{' '.join(command[:4])} ...` exited with {completed.returncode}: {output}"
        )
    return elapsed, completed.stdout


def count_schemas_with_column(database_url: str, schema_prefix: str, column: str) -> int:
    pattern = schema_prefix.replace("_", "\\_") + "%"
    with psycopg.connect(database_url) as connection:
        row = connection.execute(SCHEMAS_WITH_COLUMN_QUERY, (NOTE_TABLE, column, pattern)).fetchone()
    assert row is not None
    return int(row[0])


def schema_columns(database_url: str, schema: str) -> set[tuple[str, str, str, bool]]:
    with psycopg.connect(database_url) as connection:
        return set(connection.execute(COLUMNS_QUERY, (schema,)).fetchall())


def first_schema(database_url: str, prefix: str) -> str:
    pattern = prefix.replace("_", "\\_") + "%"
    with psycopg.connect(database_url) as connection:
        row = connection.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s ORDER BY nspname LIMIT 1",
            (pattern,),
        ).fetchone()
    if row is None:
        raise BenchmarkError(f"no schema named {prefix}... exists in {database_url.rsplit('/', 1)[-1]}")
    return str(row[0])


# --- Strongroom ----------------------------------------------------------------------------------


@dataclass
class StrongroomMigrations:
    """`strongroom migrate` over the schema tenants of one store, with revisions of the benchmark's own."""

    store: Store
    folder: Path
    tenants: int
    jobs: int

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with without_strongroom_environment():
            self._head = head_revision("tenant")

    def add_column(self, number: int) -> float:
        """Write the revision of round `number`, run `strongroom migrate`, check it; return seconds."""
        column = note_column(number)
        revision = f"bench_{number}"
        script = REVISION_SCRIPT.format(
            column=column,
            number=number,
            revision=revision,
            down_revision=self._head,
            table=NOTE_TABLE,
        )
        (self.folder / f"{revision}_add_{column}.py").write_text(script)
        environment = strongroom_environment(
            self.store.data_dir, **self.store.settings, extra_tenant_migrations=str(self.folder)
        )
        seconds, output = run_timed(
            [strongroom_command(), "migrate", "--jobs", str(self.jobs)], environment
        )
        self._head = revision

        summary = f"tenant stores: {self.tenants} migrated to {revision}, 0 already there, 0 failed"
        if summary not in output:
            raise CheckFailed(f"`strongroom migrate` printed {output.strip()!r}, not {summary!r}")
        self._check_every_schema(column)
        return seconds

    def _check_every_schema(self, column: str) -> None:
        assert self.store.database_url is not None
        found = count_schemas_with_column(self.store.database_url, STRONGROOM_SCHEMA_PREFIX, column)
        if found != self.tenants:
            raise CheckFailed(
                f"`strongroom migrate` added {column} to {found} tenant schemas, not {self.tenants}"
            )


# --- django-tenants ------------------------------------------------------------------------------


def ensure_django_environment(log: Callable[[str], None]) -> dict[str, str]:
    """Create bench/.venv-django with Django and django-tenants unless it has them; return versions."""
    python = DJANGO_VENV / "bin" / "python"
    if not python.exists():
        log(f"creating {DJANGO_VENV} for django-tenants")
        _run_setup([sys.executable, "-m", "venv", str(DJANGO_VENV)])
    if _django_versions(python) is None:
        log(f"installing {', '.join(DJANGO_REQUIREMENTS)} into {DJANGO_VENV}")
        _run_setup(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
            + list(DJANGO_REQUIREMENTS)
        )
    versions = _django_versions(python)
    if versions is None:
        raise BenchmarkError(f"Django and django-tenants are still missing from {DJANGO_VENV}")
    return versions


def _run_setup(command: list[str]) -> None:
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise BenchmarkError(
            f"`{' '.join(command[:5])} ...` exited with {completed.returncode}: "
            f"{completed.stderr.strip()[-1000:]}; fix that, or run with --no-django"
        )


def _django_versions(python: Path) -> dict[str, str] | None:
    probe = (
        "import importlib.metadata as m, django_tenants, psycopg; "
        "print(' '.join(m.version(p) for p in ('django', 'django-tenants', 'psycopg')))"
    )
    completed = subprocess.run(
        [str(python), "-c", probe], capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        return None
    django, tenants, driver = completed.stdout.split()
    return {"django": django, "django-tenants": tenants, "psycopg": driver}


@dataclass
class DjangoTenants:
    """A copy of the comparison project, its database, and `migrate_schemas` over its N schemas."""

    project: Path
    postgres: PostgresServer
    tenants: int
    jobs: int

    def __post_init__(self) -> None:
        shutil.copytree(
            DJANGO_PROJECT, self.project, ignore=shutil.ignore_patterns("__pycache__")
        )
        self._previous = "0001_initial"

    @property
    def database_url(self) -> str:
        return self.postgres.url(DJANGO_DATABASE)

    def set_up(self) -> float:
        """Create the database, the N tenants and their tables; return seconds the tables took."""
        self.postgres.create_database(DJANGO_DATABASE)
        self._manage("migrate_schemas", "--shared", "--verbosity", "0")
        self._manage("add_bench_tenants", str(self.tenants))
        seconds, _output = self._manage(
            "migrate_schemas", "--tenant", "--executor", self._executor, "--verbosity", "0"
        )
        return seconds

    def add_column(self, number: int) -> float:
        """Write the migration of round `number`, run `migrate_schemas`, check it; return seconds."""
        column = note_column(number)
        name = f"{number + 1:04d}_add_{column}"
        migration = DJANGO_MIGRATION.format(column=column, number=number, previous=self._previous)
        (self.project / "drive" / "migrations" / f"{name}.py").write_text(migration)
        seconds, _output = self._manage(
            "migrate_schemas", "--executor", self._executor, "--verbosity", "0"
        )
        self._previous = name

        found = count_schemas_with_column(self.database_url, DJANGO_SCHEMA_PREFIX, column)
        if found != self.tenants:
            raise CheckFailed(
                f"django-tenants added {column} to {found} tenant schemas, not {self.tenants}"
            )
        return seconds

    @property
    def _executor(self) -> str:
        return "multiprocessing" if self.jobs > 1 else "standard"

    def _manage(self, *arguments: str) -> tuple[float, str]:
        environment = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("STRONGROOM_", "DJANGO_", "PG"))
        }
        environment.update(
            BENCH_PG_HOST=self.postgres.host,
            BENCH_PG_PORT=str(self.postgres.port),
            BENCH_PG_USER=self.postgres.user,
            BENCH_PG_PASSWORD=self.postgres.password,
            BENCH_PG_DATABASE=DJANGO_DATABASE,
            BENCH_JOBS=str(self.jobs),
        )
        python = DJANGO_VENV / "bin" / "python"
        return run_timed([str(python), "manage.py", *arguments], environment, cwd=self.project)


def check_same_columns(strongroom_url: str, django_url: str) -> int:
    """Raise CheckFailed unless a Strongroom and a Django tenant schema have the same columns.

    Compares table, column, type and NOT NULL; returns the number of columns.
    """
    ours = schema_columns(strongroom_url, first_schema(strongroom_url, STRONGROOM_SCHEMA_PREFIX))
    theirs = schema_columns(django_url, first_schema(django_url, DJANGO_SCHEMA_PREFIX))
    if ours != theirs:
        raise CheckFailed(
            "the Django tenant tables differ from Strongroom's: only in Strongroom "
            f"{sorted(ours - theirs)}, only in Django {sorted(theirs - ours)}"
        )
    return len(ours)
