"""Schema migrations with Alembic, for the catalog and for tenant stores.

Each kind of store has its own script folder under `strongroom/migrations` and
its own version table, so the catalog and the tenant tables can share one
database (as they do on the shared level) and still upgrade independently.

`STRONGROOM_EXTRA_TENANT_MIGRATIONS` names a folder of further tenant
revisions that continue the chain of Strongroom's own. `bench/tenants.py`
adds a column through it. It is read from the environment here, where the
script folders are located, because every process that runs or compares
revisions needs it: the server, `strongroom migrate` and the worker
processes that `migrate --jobs` spawns, which inherit the environment.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from alembic import context
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, MetaData, text
from sqlalchemy.engine import Connection

from strongroom.base.errors import ConfigurationError, SchemaOutOfDate
from strongroom.base.logging import get_logger

log = get_logger(__name__)

SCRIPTS = Path(__file__).resolve().parent.parent / "migrations"
STORE_KINDS = {"catalog": "alembic_version_catalog", "tenant": "alembic_version_tenant"}
EXTRA_TENANT_MIGRATIONS = "STRONGROOM_EXTRA_TENANT_MIGRATIONS"


@dataclass(frozen=True)
class StoreRevision:
    kind: str
    current: str | None
    head: str

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def alembic_config(kind: str, connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", _config_value(SCRIPTS / kind))
    extra = extra_tenant_migrations() if kind == "tenant" else None
    if extra is not None:
        # Alembic then reads only the folders listed, so Strongroom's own come first.
        locations = os.pathsep.join([str(SCRIPTS / kind / "versions"), str(extra)])
        config.set_main_option("path_separator", "os")
        config.set_main_option("version_locations", _config_value(locations))
    config.attributes["connection"] = connection
    return config


def extra_tenant_migrations() -> Path | None:
    """Return the folder that STRONGROOM_EXTRA_TENANT_MIGRATIONS names, or None when it is unset.

    Raises ConfigurationError when the folder does not exist, because Alembic
    would skip it without a word and report the product's head as the newest.
    """
    value = os.environ.get(EXTRA_TENANT_MIGRATIONS, "").strip()
    if not value:
        return None
    folder = Path(value).resolve()
    if not folder.is_dir():
        raise ConfigurationError(
            f"{EXTRA_TENANT_MIGRATIONS}: {folder} is not a folder; point it at the folder of the "
            "extra tenant revisions, or unset it"
        )
    return folder


def _config_value(text: str | Path) -> str:
    # Alembic's Config is a ConfigParser, which reads % as the start of an interpolation.
    return str(text).replace("%", "%%")


def run_environment(metadata: MetaData, version_table: str) -> None:
    """Body of each script folder's env.py: run migrations on the connection we were given."""
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations with `strongroom migrate`, which passes a connection")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=version_table,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=lambda name, kind, _parent: kind != "table" or name in metadata.tables,
    )
    with context.begin_transaction():
        context.run_migrations()


def head_revision(kind: str) -> str:
    """Return the newest revision of the scripts for `kind` (catalog or tenant)."""
    return script_directory(kind).get_current_head() or ""


def script_directory(kind: str) -> ScriptDirectory:
    """Return the revision scripts of `kind`, read once per process for each state of the folders.

    Reading and importing the scripts took about 37 ms, which `strongroom
    migrate` paid once per tenant store before. A changed extra folder (a new
    or edited file) is read again.
    """
    extra = extra_tenant_migrations() if kind == "tenant" else None
    return _read_scripts(kind, extra, _folder_state(extra))


def _folder_state(folder: Path | None) -> tuple[tuple[str, int], ...]:
    if folder is None:
        return ()
    return tuple(sorted((path.name, path.stat().st_mtime_ns) for path in folder.glob("*.py")))


@lru_cache(maxsize=8)
def _read_scripts(
    kind: str, _extra: Path | None, _state: Sequence[tuple[str, int]]
) -> ScriptDirectory:
    scripts = ScriptDirectory.from_config(alembic_config(kind))
    # Build the revision map now, once, rather than in whichever migrate thread reads it first.
    scripts.get_current_head()
    return scripts


def upgrade_to_head(kind: str, connection: Connection) -> None:
    """Run the revisions of `kind` that the connection's store lacks, as `alembic upgrade head`.

    This does what Alembic's `command.upgrade` does through the folder's
    env.py, without executing env.py again for every store: that took about
    12 ms a store, to import the model modules and build a target metadata
    that only autogenerate reads. env.py stays for Alembic's own command
    line. `_upgrade_revs` is the step that `command.upgrade` runs too.
    """
    scripts = script_directory(kind)

    def steps(revision: str, _context: object) -> object:
        return scripts._upgrade_revs("head", revision)

    config = alembic_config(kind, connection)
    with EnvironmentContext(config, scripts, fn=steps, destination_rev="head") as environment:
        environment.configure(connection=connection, version_table=STORE_KINDS[kind])
        with environment.begin_transaction():
            environment.run_migrations()


def store_revisions(engine: Engine) -> list[StoreRevision]:
    revisions = []
    with engine.connect() as connection:
        for kind, version_table in STORE_KINDS.items():
            migration = MigrationContext.configure(
                connection, opts={"version_table": version_table}
            )
            head = script_directory(kind).get_current_head()
            revisions.append(StoreRevision(kind, migration.get_current_revision(), head or ""))
    return revisions


def upgrade(engine: Engine) -> list[StoreRevision]:
    """Bring the catalog and the shared tenant store to the newest revision."""
    for kind in STORE_KINDS:
        with migration_transaction(engine) as connection:
            upgrade_to_head(kind, connection)
    revisions = store_revisions(engine)
    log.info("migrated", stores={r.kind: r.current for r in revisions})
    return revisions


def upgrade_tenant_store(engine: Engine, schema: str | None = None) -> str | None:
    """Bring one tenant store to the newest tenant revision; return the revision it reached.

    With `schema`, the tables and their version table go into that PostgreSQL
    schema: the search path points at it for this one transaction only, so the
    pooled connection goes back unchanged.
    """
    with migration_transaction(engine) as connection:
        if schema is not None:
            connection.execute(_SET_SEARCH_PATH, {"path": quote_schema(schema)})
        upgrade_to_head("tenant", connection)
    # The upgrade ran to the head or raised, so reading the version table again would only
    # tell the same at the cost of a round trip.
    return head_revision("tenant")


@contextmanager
def migration_transaction(engine: Engine) -> Iterator[Connection]:
    """Open the transaction that a migration runs in, and commit it when the block ends.

    SQLite changes a column by copying its table into a new one, and while it
    enforces foreign keys, dropping the old table fails as soon as another
    table refers to its rows. So on SQLite enforcement is off for the
    transaction, which must be set before it begins, and `PRAGMA
    foreign_key_check` runs before the commit instead. That is the procedure
    of SQLite's own ALTER TABLE documentation.
    """
    with engine.connect() as connection:
        if connection.dialect.name != "sqlite":
            with connection.begin():
                yield connection
            return
        driver_connection = connection.connection.driver_connection
        driver_connection.execute("PRAGMA foreign_keys=OFF")
        try:
            with connection.begin():
                yield connection
                _check_foreign_keys(connection)
        finally:
            driver_connection.execute("PRAGMA foreign_keys=ON")


def _check_foreign_keys(connection: Connection) -> None:
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        tables = sorted({row[0] for row in broken})
        raise RuntimeError(
            f"the migration left {len(broken)} rows of {', '.join(tables)} pointing at rows "
            "that do not exist, so it was rolled back; report this as a bug of the migration"
        )


_SET_SEARCH_PATH = text("SELECT set_config('search_path', :path, true)")


def quote_schema(schema: str) -> str:
    """Quote a schema name for the search path; the names Strongroom makes need no escaping."""
    if not schema.replace("_", "").isalnum() or not schema.isascii():
        raise ValueError(f"schema name {schema!r} has characters other than letters, digits and _")
    return f'"{schema}"'


def check_up_to_date(engine: Engine) -> None:
    """Raise SchemaOutOfDate naming each store behind the code, and the command that fixes it."""
    behind = [r for r in store_revisions(engine) if not r.up_to_date]
    if behind:
        details = ", ".join(
            f"{r.kind} at {r.current or 'empty'} (code expects {r.head})" for r in behind
        )
        raise SchemaOutOfDate(
            f"the database schema is out of date: {details}; run `strongroom migrate`"
        )
