"""The template copies that `cast` uses match the stores that the migration chain makes."""

from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import make_url

from strongroom.base.config import normalise_database_url
from strongroom.storage.db import make_engine
from strongroom.tenancy import migrations
from strongroom.tenancy.isolation import database_name, schema_name
from tests.services.postgres import PostgresServer
from tests.store_templates import PostgresScripts, dump

pytestmark = pytest.mark.postgres


def comparable(script: str, name: str) -> str:
    """Return the dump with the store's own name and the bodies of CHECK constraints left out.

    PostgreSQL 15 prints a CHECK that was created as `permission IN ('read',
    'write')` in one form, and the same CHECK read back from that printout in
    another (the casts move), so the bodies differ in text but not in meaning.
    """
    # NOTE: so the CHECK bodies of a copy are not compared; their names and tables are.
    script = re.sub(r"CHECK \(.*\)(,?)$", r"CHECK (...)\1", script, flags=re.MULTILINE)
    return script.replace(name, "STORE")


def test_copied_schema_matches_migrated_schema(
    postgres_server: PostgresServer,
    postgres_shared_database: str,
    postgres_scripts: PostgresScripts,
) -> None:
    migrated = schema_name(uuid.uuid4())
    copied = schema_name(uuid.uuid4())
    database = make_url(postgres_shared_database).database or ""
    engine = make_engine(normalise_database_url(postgres_shared_database))
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(f"CREATE SCHEMA {migrated}")
            connection.exec_driver_sql(f"CREATE SCHEMA {copied}")
        migrations.upgrade_tenant_store(engine, schema=migrated)
        with engine.begin() as connection:
            connection.exec_driver_sql(postgres_scripts.for_schema(copied))

        migrated_dump = dump(postgres_server, database, f"--schema={migrated}")
        copied_dump = dump(postgres_server, database, f"--schema={copied}")
    finally:
        with engine.begin() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA IF EXISTS {migrated} CASCADE")
            connection.exec_driver_sql(f"DROP SCHEMA IF EXISTS {copied} CASCADE")
        engine.dispose()

    assert "CREATE POLICY" in migrated_dump
    assert comparable(copied_dump, copied) == comparable(migrated_dump, migrated)


def test_copied_database_matches_migrated_database(
    postgres_server: PostgresServer, postgres_scripts: PostgresScripts
) -> None:
    migrated = database_name(uuid.uuid4())
    copied = database_name(uuid.uuid4())
    try:
        engine = make_engine(normalise_database_url(postgres_server.create_database(migrated)))
        try:
            migrations.upgrade_tenant_store(engine)
        finally:
            engine.dispose()
        engine = make_engine(normalise_database_url(postgres_server.create_database(copied)))
        try:
            with engine.begin() as connection:
                connection.exec_driver_sql(postgres_scripts.database)
        finally:
            engine.dispose()

        migrated_dump = dump(postgres_server, migrated)
        copied_dump = dump(postgres_server, copied)
    finally:
        postgres_server.drop_database(migrated)
        postgres_server.drop_database(copied)

    assert "CREATE POLICY" in migrated_dump
    assert comparable(copied_dump, copied) == comparable(migrated_dump, migrated)
