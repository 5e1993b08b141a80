"""Schema migrations: a fresh database reaches head, and an outdated one is rejected until
migrated. The migrations build exactly the tables the models describe."""

from __future__ import annotations

import base64
import datetime as dt
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, MetaData, inspect, text
from sqlalchemy.engine import Connection

from strongroom.base.config import Settings, load_settings, normalise_database_url
from strongroom.base.errors import SchemaOutOfDate
from strongroom.drive import models as drive_models  # noqa: F401 - registers the drive tables
from strongroom.identity import models as identity_models  # noqa: F401 - registers identity tables
from strongroom.runtime import Runtime, build_runtime
from strongroom.storage.db import CatalogBase, TenantBase, make_engine
from strongroom.tenancy import (
    migrations,
    usage,  # noqa: F401 - registers the usage table
)
from strongroom.tenancy import models as catalog_models  # noqa: F401 - registers catalog tables
from strongroom.tenancy.catalog import Catalog
from tests.services.strongroom import StrongroomProcess

VERSION_TABLES = set(migrations.STORE_KINDS.values())


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database, never migrated, on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    return request.getfixturevalue("postgres_database")


@pytest.fixture
def engine(empty_database_url: str) -> Iterator[Engine]:
    engine = make_engine(normalise_database_url(empty_database_url))
    try:
        yield engine
    finally:
        engine.dispose()


def settings_for(url: str, data_dir: Path) -> Settings:
    return load_settings(
        data_dir=data_dir,
        database_url=url,
        master_key=base64.b64encode(os.urandom(32)).decode(),
        base_domain="strongroom.test",
    )


def downgrade_tenant_store(engine: Engine) -> None:
    """Take the tenant tables back to before their first revision, as an older release left them."""
    with engine.begin() as connection:
        command.downgrade(migrations.alembic_config("tenant", connection), "base")


def delete_tenant_version_row(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM alembic_version_tenant"))


def stamp_unknown_tenant_revision(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version_tenant SET version_num = '0000'"))


# Upgrading ----------------------------------------------------------------------------


def test_store_revisions_fresh_database_are_empty(engine: Engine) -> None:
    revisions = migrations.store_revisions(engine)

    assert [(r.kind, r.current) for r in revisions] == [("catalog", None), ("tenant", None)]


def test_upgrade_fresh_database_reaches_head(engine: Engine) -> None:
    migrations.upgrade(engine)

    revisions = migrations.store_revisions(engine)
    assert [r.kind for r in revisions] == ["catalog", "tenant"]
    assert all(r.up_to_date for r in revisions)


def test_upgrade_twice_changes_nothing(engine: Engine) -> None:
    first = migrations.upgrade(engine)

    second = migrations.upgrade(engine)

    assert second == first


# Outdated schema ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "make_outdated",
    [downgrade_tenant_store, delete_tenant_version_row, stamp_unknown_tenant_revision],
    ids=["downgraded", "version-row-deleted", "unknown-revision"],
)
def test_build_runtime_outdated_schema_rejected(
    engine: Engine,
    empty_database_url: str,
    tmp_path: Path,
    make_outdated: Callable[[Engine], None],
) -> None:
    migrations.upgrade(engine)
    make_outdated(engine)

    with pytest.raises(SchemaOutOfDate) as raised:
        build_runtime(settings_for(empty_database_url, tmp_path / "data"), migrate=False)

    assert "tenant at" in raised.value.detail
    assert "run `strongroom migrate`" in raised.value.detail


def test_readyz_current_schema_is_ready(client: httpx.Client) -> None:
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json()["checks"]["database"] == "ok"


def test_readyz_outdated_schema_is_not_ready(client: httpx.Client, runtime: Runtime) -> None:
    downgrade_tenant_store(runtime.engine)
    try:
        response = client.get("/readyz")
    finally:
        # The PostgreSQL database is shared by the whole session; later tests need the tables.
        migrations.upgrade(runtime.engine)

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert "run `strongroom migrate`" in response.json()["checks"]["database"]


def test_migrate_command_brings_schema_to_head(
    engine: Engine, empty_database_url: str, tmp_path: Path
) -> None:
    migrations.upgrade(engine)
    downgrade_tenant_store(engine)
    process = StrongroomProcess(
        tmp_path / "data", extra_env={"STRONGROOM_DATABASE_URL": empty_database_url}
    )

    result = process.cli("migrate")

    assert result.returncode == 0, result.stderr
    assert "tenant: at revision" in result.stdout
    assert all(r.up_to_date for r in migrations.store_revisions(engine))


# Models and migrations agree ----------------------------------------------------------


def differences(engine: Engine, metadata: MetaData) -> list[object]:
    """What Alembic's autogenerate would write to bring the database to `metadata`."""

    def own_tables(name: str | None, kind: str, _parent: object) -> bool:
        # Catalog and tenant tables share one database, so each metadata is compared with its own.
        return kind != "table" or name in metadata.tables

    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={"compare_type": True, "include_name": own_tables, "target_metadata": metadata},
        )
        return compare_metadata(context, metadata)


@pytest.mark.parametrize(
    "metadata", [CatalogBase.metadata, TenantBase.metadata], ids=["catalog", "tenant"]
)
def test_migrations_match_model_metadata(engine: Engine, metadata: MetaData) -> None:
    migrations.upgrade(engine)

    found = differences(engine, metadata)

    assert found == []


def test_migrations_create_only_model_tables(engine: Engine) -> None:
    migrations.upgrade(engine)

    tables = set(inspect(engine).get_table_names()) - VERSION_TABLES

    assert tables == set(CatalogBase.metadata.tables) | set(TenantBase.metadata.tables)


# Upgrading a store that has rows -------------------------------------------------------

USERS = sa.table(
    "users",
    sa.column("tenant_id", sa.Uuid()),
    sa.column("id", sa.Uuid()),
    sa.column("email", sa.String()),
    sa.column("display_name", sa.String()),
    sa.column("role", sa.String()),
    sa.column("status", sa.String()),
    sa.column("created_at", sa.DateTime(timezone=True)),
)
NODES = sa.table(
    "nodes",
    sa.column("tenant_id", sa.Uuid()),
    sa.column("id", sa.Uuid()),
    sa.column("parent_id", sa.Uuid()),
    sa.column("name", sa.String()),
    sa.column("kind", sa.String()),
    sa.column("current_version_id", sa.Uuid()),
    sa.column("version", sa.Integer()),
    sa.column("size", sa.BigInteger()),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("modified_at", sa.DateTime(timezone=True)),
)
BLOBS = sa.table(
    "blobs",
    sa.column("tenant_id", sa.Uuid()),
    sa.column("id", sa.Uuid()),
    sa.column("size", sa.BigInteger()),
    sa.column("stored_size", sa.BigInteger()),
    sa.column("chunk_size", sa.Integer()),
    sa.column("key_version", sa.Integer()),
    sa.column("wrapped_key", sa.LargeBinary()),
    sa.column("created_at", sa.DateTime(timezone=True)),
)
VERSIONS = sa.table(
    "versions",
    sa.column("tenant_id", sa.Uuid()),
    sa.column("id", sa.Uuid()),
    sa.column("node_id", sa.Uuid()),
    sa.column("number", sa.Integer()),
    sa.column("blob_id", sa.Uuid()),
    sa.column("size", sa.BigInteger()),
    sa.column("sha256", sa.String()),
    sa.column("created_at", sa.DateTime(timezone=True)),
)
OWNER_COLUMN = sa.column("owner_id", sa.Uuid())
# The roots of drives, as the revision that gave each user a drive stores them.
DRIVE_ROOTS = sa.table(
    "nodes",
    sa.column("tenant_id", sa.Uuid()),
    sa.column("id", sa.Uuid()),
    sa.column("owner_id", sa.Uuid()),
    sa.column("name", sa.String()),
    sa.column("kind", sa.String()),
    sa.column("version", sa.Integer()),
    sa.column("size", sa.BigInteger()),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("modified_at", sa.DateTime(timezone=True)),
)
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def migrate_to(engine: Engine, tenant_revision: str) -> None:
    with migrations.migration_transaction(engine) as connection:
        command.upgrade(migrations.alembic_config("catalog", connection), "head")
        command.upgrade(migrations.alembic_config("tenant", connection), tenant_revision)


def add_user(connection: Connection, tenant: uuid.UUID, role: str, minutes: int) -> uuid.UUID:
    user_id = uuid.uuid4()
    connection.execute(
        USERS.insert().values(
            tenant_id=tenant,
            id=user_id,
            email=f"{role}-{minutes}@example.test",
            display_name="",
            role=role,
            status="active",
            created_at=START + dt.timedelta(minutes=minutes),
        )
    )
    return user_id


def add_node(
    connection: Connection, tenant: uuid.UUID, parent: uuid.UUID | None, name: str, kind: str
) -> uuid.UUID:
    node_id = uuid.uuid4()
    connection.execute(
        NODES.insert().values(
            tenant_id=tenant,
            id=node_id,
            parent_id=parent,
            name=name,
            kind=kind,
            current_version_id=None,
            version=0,
            size=0,
            created_at=START,
            modified_at=START,
        )
    )
    return node_id


def add_file(connection: Connection, tenant: uuid.UUID, parent: uuid.UUID, name: str) -> uuid.UUID:
    """Add a file with one version and its blob row, so that versions refer to the node."""
    node_id = add_node(connection, tenant, parent, name, "file")
    blob_id, version_id = uuid.uuid4(), uuid.uuid4()
    connection.execute(
        BLOBS.insert().values(
            tenant_id=tenant,
            id=blob_id,
            size=4,
            stored_size=60,
            chunk_size=1024,
            key_version=1,
            wrapped_key=b"k" * 40,
            created_at=START,
        )
    )
    connection.execute(
        VERSIONS.insert().values(
            tenant_id=tenant,
            id=version_id,
            node_id=node_id,
            number=1,
            blob_id=blob_id,
            size=4,
            sha256="0" * 64,
            created_at=START,
        )
    )
    connection.execute(
        NODES.update()
        .where(NODES.c.tenant_id == tenant, NODES.c.id == node_id)
        .values(current_version_id=version_id, version=1, size=4)
    )
    return node_id


def owners(engine: Engine) -> dict[uuid.UUID, uuid.UUID]:
    with engine.connect() as connection:
        query = sa.select(NODES.c.id, OWNER_COLUMN).select_from(NODES)
        return dict(connection.execute(query).all())


def test_upgrade_gives_nodes_to_oldest_admin(engine: Engine) -> None:
    migrate_to(engine, "0002")
    tenant = uuid.uuid4()
    with engine.begin() as connection:
        add_user(connection, tenant, "member", minutes=0)
        oldest_admin = add_user(connection, tenant, "admin", minutes=1)
        add_user(connection, tenant, "admin", minutes=2)
        root = add_node(connection, tenant, None, "", "folder")
        docs = add_node(connection, tenant, root, "docs", "folder")
        plan = add_file(connection, tenant, docs, "plan.txt")

    migrations.upgrade(engine)

    assert owners(engine) == {root: oldest_admin, docs: oldest_admin, plan: oldest_admin}
    with engine.connect() as connection:
        assert connection.scalar(sa.select(sa.func.count()).select_from(VERSIONS)) == 1


def test_upgrade_without_admin_picks_oldest_user(engine: Engine) -> None:
    migrate_to(engine, "0002")
    tenant = uuid.uuid4()
    with engine.begin() as connection:
        add_user(connection, tenant, "member", minutes=5)
        oldest = add_user(connection, tenant, "member", minutes=3)
        root = add_node(connection, tenant, None, "", "folder")

    migrations.upgrade(engine)

    assert owners(engine) == {root: oldest}


def test_upgrade_keeps_tenants_apart(engine: Engine) -> None:
    migrate_to(engine, "0002")
    first, second = uuid.uuid4(), uuid.uuid4()
    with engine.begin() as connection:
        # The other tenant's admin is older, and must not own this tenant's files.
        second_admin = add_user(connection, second, "admin", minutes=0)
        first_admin = add_user(connection, first, "admin", minutes=1)
        first_root = add_node(connection, first, None, "", "folder")
        second_root = add_node(connection, second, None, "", "folder")

    migrations.upgrade(engine)

    assert owners(engine) == {first_root: first_admin, second_root: second_admin}


def test_upgrade_deletes_empty_root_without_users(engine: Engine) -> None:
    migrate_to(engine, "0002")
    with engine.begin() as connection:
        add_node(connection, uuid.uuid4(), None, "", "folder")

    migrations.upgrade(engine)

    assert owners(engine) == {}


def test_upgrade_files_without_users_fails(engine: Engine) -> None:
    migrate_to(engine, "0002")
    tenant = uuid.uuid4()
    with engine.begin() as connection:
        root = add_node(connection, tenant, None, "", "folder")
        add_file(connection, tenant, root, "plan.txt")

    with pytest.raises(RuntimeError) as raised:
        migrations.upgrade(engine)

    assert str(tenant) in str(raised.value)
    assert "strongroom user create" in str(raised.value)
    assert migrations.store_revisions(engine)[1].current == "0002"


def downgrade_to(engine: Engine, tenant_revision: str) -> None:
    with migrations.migration_transaction(engine) as connection:
        command.downgrade(migrations.alembic_config("tenant", connection), tenant_revision)


def test_downgrade_keeps_the_one_drive(engine: Engine) -> None:
    migrate_to(engine, "0002")
    tenant = uuid.uuid4()
    with engine.begin() as connection:
        add_user(connection, tenant, "admin", minutes=0)
        root = add_node(connection, tenant, None, "", "folder")
        plan = add_file(connection, tenant, root, "plan.txt")
    migrations.upgrade(engine)

    downgrade_to(engine, "0002")

    with engine.connect() as connection:
        nodes = set(connection.scalars(sa.select(NODES.c.id)))
        assert connection.scalar(sa.select(sa.func.count()).select_from(VERSIONS)) == 1
    assert nodes == {root, plan}
    assert migrations.store_revisions(engine)[1].current == "0002"


def test_downgrade_two_drives_fails(engine: Engine) -> None:
    migrations.upgrade(engine)
    tenant = uuid.uuid4()
    with engine.begin() as connection:
        for minutes in (0, 1):
            owner = add_user(connection, tenant, "member", minutes)
            connection.execute(
                DRIVE_ROOTS.insert().values(
                    tenant_id=tenant,
                    id=uuid.uuid4(),
                    owner_id=owner,
                    name="",
                    kind="folder",
                    version=0,
                    size=0,
                    created_at=START,
                    modified_at=START,
                )
            )

    with pytest.raises(RuntimeError) as raised:
        downgrade_to(engine, "0002")

    assert "more than one drive" in str(raised.value)
    assert str(tenant) in str(raised.value)
# Catalog data -------------------------------------------------------------------------


def test_catalog_0003_moves_quota_into_overrides(engine: Engine) -> None:
    with engine.begin() as connection:
        command.upgrade(migrations.alembic_config("catalog", connection), "0002")
        for slug, quota in (("capped", 5000), ("open", None)):
            connection.execute(
                text(
                    "INSERT INTO tenants (id, slug, name, status, isolation, server, placement, "
                    "plan, quota_bytes, settings, created_at, updated_at) VALUES (:id, :slug, "
                    ":slug, 'active', 'shared', 'default', 'shared', 'default', :quota, '{}', "
                    "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                ),
                # SQLAlchemy's Uuid type stores 32 hex digits on SQLite.
                {"id": uuid.uuid4().hex, "slug": slug, "quota": quota},
            )

    with engine.begin() as connection:
        command.upgrade(migrations.alembic_config("catalog", connection), "0003")
    catalog = Catalog(engine, keyring=None, cache_seconds=0)

    assert catalog.get_tenant("capped").quota_bytes == 5000
    assert catalog.get_tenant("open").quota_bytes is None
    assert catalog.get_tenant("capped").plan == "default"
    assert len(catalog.get_tenant("open").modules) == 6

    with engine.begin() as connection:
        command.downgrade(migrations.alembic_config("catalog", connection), "0002")
        restored = dict(connection.execute(text("SELECT slug, quota_bytes FROM tenants")).all())

    assert restored == {"capped": 5000, "open": None}
