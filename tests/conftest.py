"""Shared fixtures: a runtime on each database backend, a cast of users in two tenants, a client.

Every test that takes `runtime` (or anything built on it) runs on SQLite and
on a real PostgreSQL server started for the test session. The `level`
fixture names the backend and the isolation level of the tenants a test
makes. Five levels make the full matrix: sqlite-shared, sqlite-database,
postgres-shared, postgres-schema and postgres-database.

Tenant-facing tests, those that take `isolation` (as `cast` does), run on the
full matrix when they are API tests (tests/api), the adversarial suite
(tests/security), isolation and tenancy tests (tests/tenancy), the
consistency check (tests/test_integrity.py), or marked `every_level` (key
rotation is). The rest, and every test that makes no tenant, run on the
shared level of each backend only: they exercise the drive, crypto and
command-line layers above `TenantStores`, which the full matrix already
covers, so five runs of them would add minutes and no coverage. With this
split the whole suite took about 12 minutes on a 2-core machine that other
jobs shared, against about 4.5 minutes before the levels. A test chooses its
levels by parametrising `level` itself (indirect=True).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import os
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from argon2 import PasswordHasher
from psycopg import sql
from starlette.types import ASGIApp

from strongroom.base.config import Settings, load_settings, normalise_database_url
from strongroom.base.logging import configure_logging
from strongroom.drive import models as drive_models  # noqa: F401 - registers tenant tables
from strongroom.drive.files import access_node
from strongroom.drive.paths import split_path
from strongroom.drive.properties import set_property
from strongroom.identity import logins, passwords, second_factors, web_sessions
from strongroom.identity import models as identity_models
from strongroom.identity.app_passwords import create_app_password
from strongroom.identity.tokens import TOKEN_PREFIX, create_token, hash_token
from strongroom.identity.users import access_user_by_email, create_user, get_user_by_email
from strongroom.interfaces.api.app import create_app
from strongroom.runtime import Runtime, build_runtime
from strongroom.storage.db import CatalogBase, TenantBase, TenantSession, make_engine
from strongroom.tenancy import events as event_models  # noqa: F401
from strongroom.tenancy import migrations
from strongroom.tenancy import models as catalog_models  # noqa: F401
from strongroom.tenancy import usage as usage_models  # noqa: F401
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.isolation import SHARED
from strongroom.tenancy.lifecycle import provision_tenant
from tests.services.postgres import PostgresServer
from tests.services.strongroom import StrongroomProcess
from tests.store_templates import (
    PostgresScripts,
    SqliteTemplates,
    copy_main_database,
    make_postgres_scripts,
    make_sqlite_templates,
    migrate_from_templates,
    stores_from_templates,
)

pytest_plugins = ["tests.services.fixtures"]

configure_logging("json", "warning", cache_loggers=False)

TEST_CHUNK_SIZE = 16 * 1024
PASSWORD = "a long test password"
DRIVE_OWNER_EMAIL = "drive.owner@example.test"


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashing() -> Iterator[None]:
    """Hash with argon2id at its minimum cost: the default costs about 50 ms a user, per test."""
    saved = passwords._hasher
    passwords._hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    try:
        yield
    finally:
        passwords._hasher = saved


@pytest.fixture(scope="session")
def postgres_shared_database(postgres_server: PostgresServer) -> str:
    """One migrated database for the whole session, emptied before each test that uses it.

    Emptying is much faster than creating a database per test. Tests that change
    the schema itself take `postgres_database` (from tests/services) instead.
    """
    url = postgres_server.create_database("strongroom_tests")
    engine = make_engine(normalise_database_url(url))
    try:
        migrations.upgrade(engine)
    finally:
        engine.dispose()
    return url


def empty_all_tables(url: str) -> None:
    """Delete every row of the catalog and tenant tables, in one round trip.

    TRUNCATE gave each of the 33 tables and their indexes new files, which
    cost about 0.1 s a test (cProfile of tests/api/test_isolation.py on the
    2-core test machine), while one test leaves a few rows. Foreign key
    triggers are off for the transaction, which the superuser may set, so the
    order of the deletes does not matter.
    """
    tables = [*CatalogBase.metadata.tables, *TenantBase.metadata.tables]
    deletes = [sql.SQL("DELETE FROM {}").format(sql.Identifier(table)) for table in tables]
    statements = [sql.SQL("SET LOCAL session_replication_role = replica"), *deletes]
    with psycopg.connect(url) as connection:
        connection.execute(sql.SQL("; ").join(statements))


def drop_tenant_stores(url: str) -> None:
    """Drop the schemas and databases that tests made for their schema and database tenants."""
    with psycopg.connect(url, autocommit=True) as connection:
        schemas = connection.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tenant\\_%'"
        ).fetchall()
        databases = connection.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'strongroom\\_tenant\\_%'"
        ).fetchall()
        for (schema,) in schemas:
            connection.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
        for (database,) in databases:
            connection.execute(
                sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(database))
            )


@pytest.fixture(scope="session")
def sqlite_templates(tmp_path_factory: pytest.TempPathFactory) -> SqliteTemplates:
    """A migrated main database and tenant file, copied by `runtime` and `cast`."""
    return make_sqlite_templates(tmp_path_factory.mktemp("sqlite-templates"))


@pytest.fixture(scope="session")
def postgres_scripts(
    postgres_server: PostgresServer, postgres_shared_database: str
) -> PostgresScripts:
    """The SQL of a migrated schema and database tenant store, run by `cast` for its tenants."""
    return make_postgres_scripts(postgres_server, postgres_shared_database)


@dataclass(frozen=True)
class Level:
    """A database backend and the isolation level of the tenants a test makes."""

    backend: str
    isolation: str

    def __str__(self) -> str:
        return f"{self.backend}-{self.isolation}"


LEVELS = {
    str(level): level
    for level in (
        Level("sqlite", "shared"),
        Level("sqlite", "database"),
        Level("postgres", "shared"),
        Level("postgres", "schema"),
        Level("postgres", "database"),
    )
}
SHARED_LEVELS = ["sqlite-shared", "postgres-shared"]
FULL_MATRIX_PATHS = ("tests/api/", "tests/security/", "tests/tenancy/", "tests/test_integrity.py")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run tenant-facing tests on every level and other runtime tests on each backend's shared level."""
    if "level" not in metafunc.fixturenames or parametrized(metafunc, "level"):
        return
    every_level = (
        "isolation" in metafunc.fixturenames
        and not parametrized(metafunc, "isolation")
        and (
            metafunc.definition.get_closest_marker("every_level") is not None
            or any(part in metafunc.definition.nodeid for part in FULL_MATRIX_PATHS)
        )
    )
    metafunc.parametrize("level", list(LEVELS) if every_level else SHARED_LEVELS, indirect=True)


def parametrized(metafunc: pytest.Metafunc, name: str) -> bool:
    """Return True when the test's own parametrize marks name `name`."""
    for marker in metafunc.definition.iter_markers("parametrize"):
        names = marker.args[0]
        if name in ([n.strip() for n in names.split(",")] if isinstance(names, str) else names):
            return True
    return False


@pytest.fixture
def level(request: pytest.FixtureRequest) -> Level:
    return LEVELS[request.param]


@pytest.fixture
def isolation(level: Level) -> str:
    """The isolation level to create the test's tenants on."""
    return level.isolation


@pytest.fixture
def database_url(request: pytest.FixtureRequest, level: Level, tmp_path: Path) -> str:
    if level.backend == "sqlite":
        return f"sqlite:///{tmp_path / 'strongroom.db'}"
    url = request.getfixturevalue("postgres_shared_database")
    empty_all_tables(url)
    drop_tenant_stores(url)
    return url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return load_settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        master_key=base64.b64encode(os.urandom(32)).decode(),
        tenant_cache_seconds=0,
        chunk_size=TEST_CHUNK_SIZE,
        base_domain="strongroom.test",
    )


@pytest.fixture
def runtime(request: pytest.FixtureRequest, settings: Settings) -> Iterator[Runtime]:
    if settings.resolved_database_url.startswith("sqlite"):
        # A copy of a database migrated once per session. build_runtime still runs the
        # migrations, which find every store at the head revision.
        templates = request.getfixturevalue("sqlite_templates")
        copy_main_database(settings.resolved_database_url, templates)
    runtime = build_runtime(settings, migrate=True)
    try:
        yield runtime
    finally:
        runtime.close()


@dataclass(frozen=True)
class Member:
    tenant: TenantInfo
    email: str
    role: str
    user_id: object
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def url(self, path: str) -> str:
        """The tenant's API URL for `path`, in the /t/{slug} form."""
        return f"/t/{self.tenant.slug}/api/v1/{path}"


@dataclass(frozen=True)
class Cast:
    """An admin and a member in each of two tenants, acme and globex."""

    acme_admin: Member
    acme_member: Member
    globex_admin: Member
    globex_member: Member

    @property
    def acme(self) -> TenantInfo:
        return self.acme_admin.tenant

    @property
    def globex(self) -> TenantInfo:
        return self.globex_admin.tenant


def add_member(runtime: Runtime, tenant: TenantInfo, email: str, role: str) -> Member:
    with runtime.stores.session(tenant, write=True) as session:
        user = create_user(session, email, PASSWORD, role=role)
        _row, secret = create_token(session, user, "test")
    return Member(tenant, email, role, user.id, secret)


def legacy_guest_token(session: TenantSession, guest: identity_models.UserRow) -> str:
    """Store an API token for a guest, as `strongroom token create` did before it rejected guests.

    Such tokens may still exist, so the tests of what a guest's token reaches keep using one.
    """
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = identity_models.TokenRow(
        id=uuid.uuid4(),
        user_id=guest.id,
        name="guest",
        token_hash=hash_token(secret),
        prefix=secret[:10],
    )
    session.add(row)
    session.flush()
    return secret


def drive_owner(runtime: Runtime, tenant: TenantInfo) -> uuid.UUID:
    """Return the user whose drive tests fill through the drive's functions, created on first use."""
    with runtime.stores.session(tenant, write=True) as session:
        user = get_user_by_email(session, DRIVE_OWNER_EMAIL)
        if user is None:
            user = create_user(session, DRIVE_OWNER_EMAIL, PASSWORD)
        return user.id


def add_webdav_rows(runtime: Runtime, member: Member, path: str) -> None:
    """Give the member an app password, and the node at `path` of the tests' drive a dead property.

    Fixtures that need rows in every tenant table call it, since no file upload
    writes these two tables.
    """
    owner = drive_owner(runtime, member.tenant)
    with runtime.stores.session(member.tenant, write=True) as session:
        user = access_user_by_email(session, member.email)
        create_app_password(session, user, "device")
        node = access_node(session, owner, split_path(path))
        set_property(session, node.id, "{urn:test}label", f"<label>{member.tenant.slug}</label>")


@pytest.fixture
def cast(request: pytest.FixtureRequest, runtime: Runtime, isolation: str) -> Cast:
    with tenant_stores_for(request, runtime, isolation):
        acme = provision_tenant(runtime.catalog, runtime.stores, "acme", "Acme", None, isolation)
        globex = provision_tenant(
            runtime.catalog, runtime.stores, "globex", "Globex", None, isolation
        )
    return Cast(
        acme_admin=add_member(runtime, acme, "admin@acme.test", "admin"),
        acme_member=add_member(runtime, acme, "member@acme.test", "member"),
        # The same address in another tenant is another user.
        globex_admin=add_member(runtime, globex, "admin@acme.test", "admin"),
        globex_member=add_member(runtime, globex, "member@globex.test", "member"),
    )


@contextmanager
def tenant_stores_for(
    request: pytest.FixtureRequest, runtime: Runtime, isolation: str
) -> Iterator[None]:
    """Make new schema and database stores copies of the templates in tests/store_templates.py.

    Tests marked `real_migrations` get stores made by the migration chain, as
    the product makes them.
    """
    if isolation == SHARED or request.node.get_closest_marker("real_migrations") is not None:
        yield
        return
    embedded = runtime.stores.embedded
    sqlite = request.getfixturevalue("sqlite_templates") if embedded else None
    postgres = None if embedded else request.getfixturevalue("postgres_scripts")
    migrate = migrate_from_templates(runtime.stores, sqlite, postgres)
    with stores_from_templates(runtime.stores, migrate):
        yield


class AppSwitch:
    """An ASGI application that passes each request to the application of the running test."""

    def __init__(self) -> None:
        self.app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.app is None:
            raise RuntimeError("a request reached the shared test server between two tests")
        await self.app(scope, receive, send)


class LiveServer:
    """The real application served by uvicorn on a loopback port, in a thread of the test process."""

    def __init__(self, runtime: Runtime | None = None, app: ASGIApp | None = None) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app or create_app(runtime), access_log=False, log_config=None, lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the test server did not start within 10 seconds")
            time.sleep(0.01)

    def wait_until_idle(self, timeout: float = 10) -> None:
        """Wait until the server has finished every request and every connection is closed.

        A connection that waits for its client's next request is closed at once, as
        uvicorn's keep-alive timeout would close it after 5 s: clients that keep
        connections open (httpx, tuspy's `requests`, browsers) made each wait last
        those 5 s.
        """
        loop = self._server.servers[0].get_loop()
        deadline = time.monotonic() + timeout
        while self._server.server_state.connections or self._server.server_state.tasks:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"the test server still had requests after {timeout} seconds")
            # Waited for, so that no close stays queued on a busy loop past this wait and
            # cuts the idle connection of the next test's client between two requests.
            asyncio.run_coroutine_threadsafe(self._close_idle_connections(), loop).result(left)
            time.sleep(0.005)

    async def _close_idle_connections(self) -> None:
        """Fire the keep-alive timeout of every connection that waits for a next request.

        Runs on the server's event loop. uvicorn arms that timeout only once a
        response is complete and disarms it when a byte of the next request
        arrives, so a request that is being sent or served is never cut.
        """
        for connection in list(self._server.server_state.connections):
            keep_alive = connection.timeout_keep_alive_task
            if keep_alive is not None:
                keep_alive.cancel()
                connection.timeout_keep_alive_handler()

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()


@pytest.fixture(scope="session")
def shared_server() -> Iterator[tuple[LiveServer, AppSwitch]]:
    """One server for the session: starting and stopping uvicorn costs about 0.2 s a test."""
    switch = AppSwitch()
    server = LiveServer(app=switch)
    server.start()
    try:
        yield server, switch
    finally:
        server.stop()


@pytest.fixture
def live_server(runtime: Runtime, shared_server: tuple[LiveServer, AppSwitch]) -> Iterator[LiveServer]:
    """The session's server, serving the application built on this test's runtime."""
    server, switch = shared_server
    switch.app = create_app(runtime)
    try:
        yield server
    finally:
        # Before the runtime closes, so that no request of this test still uses it.
        server.wait_until_idle()
        switch.app = None


@pytest.fixture
def client(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, timeout=30) as http_client:
        yield http_client


@pytest.fixture
def strongroom_process(tmp_path: Path) -> Iterator[StrongroomProcess]:
    """A `strongroom serve` process on the embedded default, started by the test when it is ready."""
    server = StrongroomProcess(tmp_path / "data")
    try:
        yield server
    finally:
        server.stop()


def sign_in_to_web(runtime: Runtime, tenant: TenantInfo, user_id: uuid.UUID) -> None:
    """Give the web UI's tables a row of the user: a session, a failed login and a second factor."""
    with runtime.stores.session(tenant, write=True) as session:
        web_sessions.open_session(session, user_id, dt.timedelta(hours=1))
        logins.record_failure(session, user_id)
        second_factors.begin_enrolment(session, runtime.keyring, user_id)
        second_factors.replace_recovery_codes(session, user_id)
