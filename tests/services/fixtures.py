"""Pytest fixtures that start real services for the tests.

Load this module as a plugin, for example with `pytest_plugins = ["tests.services.fixtures"]`
in tests/conftest.py. A test that needs a service that is not installed is skipped, unless
STRONGROOM_REQUIRE_SERVICES=1 is set, as CI does, where it fails instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import NoReturn, TypeVar

import pytest

from . import MissingService
from .pgbouncer import PgBouncer, start_pgbouncer
from .postgres import PostgresServer, start_postgres
from .redis import RedisServer, start_redis

REQUIRE_SERVICES_VARIABLE = "STRONGROOM_REQUIRE_SERVICES"

ServiceT = TypeVar("ServiceT")


def require_service(exc: MissingService) -> NoReturn:
    """Skip the current test because a service is missing, or fail it if services are required.

    Services are required when the environment variable STRONGROOM_REQUIRE_SERVICES is "1",
    so that a machine that should have them cannot pass by skipping.
    """
    message = str(exc)
    if os.environ.get(REQUIRE_SERVICES_VARIABLE) == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def start_service(start: Callable[[], ServiceT]) -> ServiceT:
    """Call `start` and return the service it started, or skip or fail as require_service() does."""
    try:
        return start()
    except MissingService as exc:
        missing = exc
    # Outside the except block, so that the report does not show MissingService chained
    # to pytest's own skip or fail exception.
    require_service(missing)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """PostgreSQL server shared by the whole test session, on 127.0.0.1."""
    server = start_service(start_postgres)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_database(postgres_server: PostgresServer) -> Iterator[str]:
    """URL of an empty database of its own for one test, dropped after it."""
    name = f"test_{uuid.uuid4().hex}"
    url = postgres_server.create_database(name)
    try:
        yield url
    finally:
        postgres_server.drop_database(name)


@pytest.fixture(scope="session")
def pgbouncer(postgres_server: PostgresServer) -> Iterator[PgBouncer]:
    """PgBouncer in transaction pooling mode in front of the session's PostgreSQL, on 127.0.0.1."""
    bouncer = start_service(lambda: start_pgbouncer(postgres_server))
    try:
        yield bouncer
    finally:
        bouncer.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """Redis server shared by the whole test session, on 127.0.0.1 with a password."""
    server = start_service(start_redis)
    try:
        yield server
    finally:
        server.stop()
