"""Registered database servers, and tenants placed on them.

The second server is the test PostgreSQL cluster itself, reached through
another database, which is all a server is to Strongroom: a URL. Tenants on
it work from a SQLite catalog as well as from a PostgreSQL one.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest
from sqlalchemy import make_url, text

from strongroom.base.errors import AlreadyExists, Conflict, InvalidInput, NotFound
from strongroom.base.logging import configure_logging
from strongroom.identity.users import create_user, list_users
from strongroom.runtime import Runtime
from strongroom.tenancy import servers
from strongroom.tenancy.lifecycle import provision_tenant
from tests.conftest import PASSWORD
from tests.services.postgres import PostgresServer

SERVER = "second"


@pytest.fixture
def second_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A database of its own on the test cluster, standing for another server."""
    name = "second_server"
    postgres_server.drop_database(name)
    url = postgres_server.create_database(name)
    try:
        yield url
    finally:
        postgres_server.drop_database(name)


@pytest.fixture
def second(runtime: Runtime, second_url: str) -> servers.DatabaseServer:
    return servers.add_server(runtime.catalog, SERVER, second_url)


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"postgresql://strongroom:hunter2-secret@127.0.0.1:{port}/strongroom"


# Registering --------------------------------------------------------------------------


def test_server_add_lists_server(runtime: Runtime, second: servers.DatabaseServer) -> None:
    listed = servers.list_servers(runtime.catalog)

    assert [(server.name, count) for server, count in listed] == [(SERVER, 0)]


def test_server_masked_url_hides_password(second: servers.DatabaseServer, second_url: str) -> None:
    password = make_url(second_url).password

    assert password not in second.masked_url
    assert password not in repr(second)
    assert "***" in second.masked_url


def test_server_add_unreachable_is_rejected(runtime: Runtime) -> None:
    with pytest.raises(InvalidInput, match="cannot connect to server 'far'") as failure:
        servers.add_server(runtime.catalog, "far", closed_port_url())

    assert "hunter2-secret" not in failure.value.detail


def test_server_add_sqlite_url_is_rejected(runtime: Runtime) -> None:
    with pytest.raises(InvalidInput, match="is not a PostgreSQL server URL"):
        servers.add_server(runtime.catalog, "local", "sqlite:///elsewhere.db")


def test_server_add_name_default_is_rejected(runtime: Runtime, second_url: str) -> None:
    with pytest.raises(InvalidInput, match="server name 'default' is not allowed"):
        servers.add_server(runtime.catalog, "default", second_url)


def test_server_add_twice_is_rejected(
    runtime: Runtime, second: servers.DatabaseServer, second_url: str
) -> None:
    with pytest.raises(AlreadyExists, match="server 'second' is already registered"):
        servers.add_server(runtime.catalog, SERVER, second_url)


def test_server_remove_empty_server(runtime: Runtime, second: servers.DatabaseServer) -> None:
    servers.remove_server(runtime.catalog, SERVER)

    assert servers.list_servers(runtime.catalog) == []


def test_server_remove_unknown_is_rejected(runtime: Runtime) -> None:
    with pytest.raises(NotFound, match="no database server is named 'gone'"):
        servers.remove_server(runtime.catalog, "gone")


@pytest.fixture
def info_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Log lines down to info, as a server logs them, captured."""
    configure_logging("json", "info")
    caplog.set_level(logging.INFO, logger="strongroom")
    try:
        yield caplog
    finally:
        configure_logging("json", "warning")


def test_server_logs_carry_no_password(
    runtime: Runtime, second_url: str, info_logs: pytest.LogCaptureFixture
) -> None:
    password = str(make_url(second_url).password)

    servers.add_server(runtime.catalog, SERVER, second_url)
    provision_tenant(runtime.catalog, runtime.stores, "acme", isolation="database", server=SERVER)

    assert "server_added" in info_logs.text
    assert "tenant_created" in info_logs.text
    assert password not in info_logs.text


# Tenants on a registered server -------------------------------------------------------


@pytest.mark.parametrize("isolation", ["schema", "database"])
def test_tenant_on_server_records_server(
    runtime: Runtime, second: servers.DatabaseServer, isolation: str
) -> None:
    tenant = provision_tenant(
        runtime.catalog, runtime.stores, "acme", isolation=isolation, server=SERVER
    )

    assert (tenant.isolation, tenant.server) == (isolation, SERVER)


@pytest.mark.parametrize("isolation", ["schema", "database"])
def test_tenant_on_server_keeps_rows_there(
    runtime: Runtime, second: servers.DatabaseServer, isolation: str
) -> None:
    tenant = provision_tenant(
        runtime.catalog, runtime.stores, "acme", isolation=isolation, server=SERVER
    )
    with runtime.stores.session(tenant, write=True) as session:
        create_user(session, "ada@acme.test", PASSWORD)

    with runtime.stores.session(tenant) as session:
        emails = [user.email for user in list_users(session)]
        database = session.scalar(text("SELECT current_database()").execution_options(tenant_scoped=True))

    assert emails == ["ada@acme.test"]
    assert database == (tenant.placement if isolation == "database" else "second_server")


def test_server_remove_with_tenants_names_them(
    runtime: Runtime, second: servers.DatabaseServer
) -> None:
    for slug in ("acme", "globex"):
        provision_tenant(runtime.catalog, runtime.stores, slug, isolation="database", server=SERVER)

    with pytest.raises(Conflict, match="server 'second' still holds tenants acme, globex"):
        servers.remove_server(runtime.catalog, SERVER)


def test_server_list_counts_tenants(runtime: Runtime, second: servers.DatabaseServer) -> None:
    provision_tenant(runtime.catalog, runtime.stores, "acme", isolation="schema", server=SERVER)

    listed = servers.list_servers(runtime.catalog)

    assert [(server.name, count) for server, count in listed] == [(SERVER, 1)]
