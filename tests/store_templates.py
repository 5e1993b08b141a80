"""Stores migrated once per test session, and copied for each test that needs a new one.

Running the Alembic chain was the largest part of a test's set-up. Timed
piece by piece on the 2-core test machine while other suites ran on it, it
took about 0.26 s for a new SQLite database (catalog and shared tables) and
0.19 s for each SQLite tenant file. Each PostgreSQL schema tenant took about
0.44 s, and each database tenant 1.4 s with the database's creation. So each
test worker runs the real chain once into template stores, and tests get
copies:

- SQLite: the bytes of the migrated file, written into the new, private file.
- PostgreSQL: the SQL that pg_dump writes for the migrated template schema or
  database, run in the tenant's new schema or database in one round trip.

Only the migration step is replaced. `TenantStores.create_store` still makes
the tenant's file, schema or database, and the catalog still records the
revision reached. The real chain still runs in tests/test_migrations.py, for
every tenant made outside the `cast` fixture, and for every `cast` of a test
marked `real_migrations`.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import make_url

from strongroom.base.config import normalise_database_url
from strongroom.storage.db import make_engine
from strongroom.tenancy import migrations
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.isolation import DATABASE, SCHEMA, SHARED, TenantStores
from tests.services.postgres import PostgresServer

# Neither name matches the patterns that tests/conftest.py drops between tests.
TEMPLATE_SCHEMA = "store_template"
TEMPLATE_DATABASE = "strongroom_store_template"

# Lines of pg_dump's output that set up psql's session rather than make the store. They
# would outlive the transaction on a pooled connection (set_config with false), or are
# psql commands (\restrict), or make the schema that create_store has made already.
SESSION_LINES = ("--", "\\", "SET ", "SELECT pg_catalog.set_config(", "CREATE SCHEMA ")

MigrateStore = Callable[[TenantInfo], "str | None"]


@dataclass(frozen=True)
class SqliteTemplates:
    """The bytes of a migrated main database (catalog and shared tables) and of a tenant file."""

    main: bytes
    tenant: bytes


def make_sqlite_templates(folder: Path) -> SqliteTemplates:
    """Run the real migrations into two new SQLite files and return their contents."""
    main = folder / "main.db"
    tenant = folder / "tenant.db"
    engine = make_engine(f"sqlite:///{main}")
    try:
        migrations.upgrade(engine)
    finally:
        engine.dispose()
    engine = make_engine(f"sqlite:///{tenant}")
    try:
        migrations.upgrade_tenant_store(engine)
    finally:
        engine.dispose()
    return SqliteTemplates(main=read_closed_database(main), tenant=read_closed_database(tenant))


def read_closed_database(path: Path) -> bytes:
    """Return the file's bytes; raise if a write-ahead log still contains pages that are not in it."""
    wal = Path(f"{path}-wal")
    if wal.exists() and wal.stat().st_size > 0:
        raise RuntimeError(f"{wal} is not empty, so {path} alone is not the migrated database")
    return path.read_bytes()


def copy_main_database(database_url: str, templates: SqliteTemplates) -> None:
    """Write the migrated main database to the SQLite file of `database_url`, if it is new.

    The file is made as the product makes it, readable by its owner alone.
    Migrating on start then finds every store at the head revision.
    """
    path = make_url(database_url).database
    if not path or Path(path).exists():
        return
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(templates.main)


@dataclass(frozen=True)
class PostgresScripts:
    """The SQL that makes a migrated tenant store: in schema TEMPLATE_SCHEMA, or in a database."""

    schema: str
    database: str

    def for_schema(self, schema: str) -> str:
        migrations.quote_schema(schema)  # raises on a name that would need quoting
        return re.sub(rf"\b{TEMPLATE_SCHEMA}\b", schema, self.schema)


def make_postgres_scripts(server: PostgresServer, database_url: str) -> PostgresScripts:
    """Migrate a template schema in `database_url` and a template database, dump both, drop both."""
    database = make_url(database_url).database or ""
    engine = make_engine(normalise_database_url(database_url))
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(f"CREATE SCHEMA {TEMPLATE_SCHEMA}")
        migrations.upgrade_tenant_store(engine, schema=TEMPLATE_SCHEMA)
        schema_script = dump(server, database, f"--schema={TEMPLATE_SCHEMA}")
        with engine.begin() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {TEMPLATE_SCHEMA} CASCADE")
    finally:
        engine.dispose()

    template_url = server.create_database(TEMPLATE_DATABASE)
    engine = make_engine(normalise_database_url(template_url))
    try:
        migrations.upgrade_tenant_store(engine)
    finally:
        engine.dispose()
    database_script = dump(server, TEMPLATE_DATABASE)
    server.drop_database(TEMPLATE_DATABASE)
    return PostgresScripts(schema=schema_script, database=database_script)


def dump(server: PostgresServer, database: str, *options: str) -> str:
    """Return pg_dump's SQL for `database`, without the lines that only set up psql's session."""
    command = [
        str(server.bin_dir / "pg_dump"),
        f"--host={server.host}",
        f"--port={server.port}",
        f"--username={server.user}",
        "--no-owner",
        # INSERT rather than COPY FROM stdin, which a script run through a driver cannot feed.
        "--inserts",
        *options,
        database,
    ]
    environment = {**os.environ, "PGPASSWORD": server.password}
    result = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"pg_dump of {database} failed: {result.stderr.strip()}")
    lines = [line for line in result.stdout.splitlines() if not line.startswith(SESSION_LINES)]
    return "\n".join(lines)


def migrate_from_templates(
    stores: TenantStores,
    sqlite: SqliteTemplates | None,
    postgres: PostgresScripts | None,
) -> MigrateStore:
    """Return a replacement for `stores.migrate_store` that copies the templates."""

    def migrate_store(tenant: TenantInfo) -> str | None:
        if tenant.isolation == SHARED:
            return None
        if tenant.isolation == DATABASE and stores.embedded:
            assert sqlite is not None, "a SQLite tenant file needs the SQLite templates"
            write_tenant_file(stores, tenant, sqlite)
            return migrations.head_revision("tenant")

        assert postgres is not None, "a PostgreSQL tenant store needs the dumped scripts"
        if tenant.isolation == SCHEMA:
            script = postgres.for_schema(tenant.placement)
        else:
            script = postgres.database
        with stores.engine_for(tenant).begin() as connection:
            connection.exec_driver_sql(script)
        return migrations.head_revision("tenant")

    return migrate_store


def write_tenant_file(stores: TenantStores, tenant: TenantInfo, sqlite: SqliteTemplates) -> None:
    # create_store has made the empty file with the product's mode, and no connection has
    # opened it yet, so writing the bytes in place keeps the mode and needs no lock.
    assert stores.data_dir is not None
    path = stores.data_dir / tenant.placement
    with path.open("r+b") as file:
        if file.read(1):
            raise RuntimeError(f"the new tenant file {path} is not empty")
        file.write(sqlite.tenant)


@contextmanager
def stores_from_templates(stores: TenantStores, migrate_store: MigrateStore) -> Iterator[None]:
    """Make `stores` migrate new tenant stores by copying the templates while the block runs."""
    stores.migrate_store = migrate_store  # type: ignore[method-assign]
    try:
        yield
    finally:
        del stores.migrate_store
