"""Tests for the fixtures that start real services."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from tests.services import MissingService
from tests.services.fixtures import REQUIRE_SERVICES_VARIABLE, require_service, start_service
from tests.services.postgres import PostgresServer, start_postgres


@pytest.mark.postgres
def test_database_round_trip(postgres_database: str) -> None:
    with psycopg.connect(postgres_database) as connection:
        connection.execute("CREATE TABLE note (id integer PRIMARY KEY, body text NOT NULL)")
        connection.execute("INSERT INTO note (id, body) VALUES (%s, %s)", (1, "first note"))

    # A second connection reads the row only if the first one committed it.
    with psycopg.connect(postgres_database) as connection:
        rows = connection.execute("SELECT id, body FROM note").fetchall()

    assert rows == [(1, "first note")]


@pytest.mark.postgres
def test_server_listens_on_loopback(postgres_server: PostgresServer) -> None:
    url = urlsplit(postgres_server.admin_url)
    assert url.hostname == "127.0.0.1"
    assert url.port == postgres_server.port

    with psycopg.connect(postgres_server.admin_url) as connection:
        address, port = connection.execute(
            "SELECT host(inet_server_addr()), inet_server_port()"
        ).fetchone()
        (listen_addresses,) = connection.execute("SHOW listen_addresses").fetchone()

    assert address == "127.0.0.1"
    assert port == postgres_server.port
    assert listen_addresses == "127.0.0.1"


@pytest.mark.postgres
def test_server_rejects_wrong_password(postgres_server: PostgresServer) -> None:
    url = postgres_server.admin_url.replace(postgres_server.password, "wrong-password")
    assert url != postgres_server.admin_url

    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(url, connect_timeout=5)


@pytest.mark.postgres
def test_drop_database_removes_it(postgres_server: PostgresServer) -> None:
    postgres_server.create_database("strongroom_drop_check")
    postgres_server.drop_database("strongroom_drop_check")

    with psycopg.connect(postgres_server.admin_url) as connection:
        row = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = 'strongroom_drop_check'"
        ).fetchone()
    assert row is None


@pytest.mark.postgres
def test_create_database_rejects_long_name(postgres_server: PostgresServer) -> None:
    with pytest.raises(ValueError, match="64 bytes long"):
        postgres_server.create_database("x" * 64)


@pytest.mark.postgres
def test_stop_ends_server_and_deletes_folder() -> None:
    server = start_service(start_postgres)

    assert processes_working_in(server.base_dir) != []

    server.stop()
    server.stop()

    assert server.process.poll() is not None
    assert processes_working_in(server.base_dir) == []
    assert not server.base_dir.exists()


def processes_working_in(folder: Path) -> list[int]:
    """Return the ids of processes whose working directory is `folder` or inside it.

    Every PostgreSQL server process works in its data folder, so this also finds backends
    and helper processes, whose state the postmaster's exit status does not show.
    """
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            working_directory = Path(os.readlink(entry / "cwd"))
        except OSError:
            # The process has exited, or it belongs to another user and we are not root.
            continue
        if working_directory == folder or folder in working_directory.parents:
            found.append(int(entry.name))
    return found


def test_require_service_skips_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REQUIRE_SERVICES_VARIABLE, raising=False)

    with pytest.raises(pytest.skip.Exception) as raised:
        require_service(MissingService("PostgreSQL", "postgresql"))

    assert str(raised.value) == "PostgreSQL not found; install the Debian package postgresql"


def test_require_service_fails_when_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REQUIRE_SERVICES_VARIABLE, "1")

    with pytest.raises(pytest.fail.Exception) as raised:
        require_service(MissingService("PostgreSQL", "postgresql"))

    assert str(raised.value) == "PostgreSQL not found; install the Debian package postgresql"
