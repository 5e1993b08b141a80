"""Database servers: where schema and database tenants can be placed besides the default.

The `default` server is the one `STRONGROOM_DATABASE_URL` names and is never a
row. Other servers are catalog rows added with `strongroom server add NAME
URL`. Their URLs may carry a password, so only `masked_url` ever reaches a log
line or a screen.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from strongroom.base.config import normalise_database_url
from strongroom.base.errors import AlreadyExists, Conflict, InvalidInput, NotFound
from strongroom.base.logging import get_logger
from strongroom.tenancy.catalog import Catalog
from strongroom.tenancy.models import DatabaseServerRow, TenantRow

log = get_logger(__name__)

DEFAULT_SERVER = "default"
SERVER_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
CONNECT_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class DatabaseServer:
    name: str
    url: str

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)

    def __repr__(self) -> str:
        # The URL may hold a password, and a repr ends up in tracebacks and logs.
        return f"DatabaseServer({self.name!r}, {self.masked_url!r})"


def mask_url(url: str) -> str:
    """Return the URL with its password, if any, replaced by ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(a URL that cannot be parsed)"


def check_server_url(url: str) -> str:
    """Return the URL in the form Strongroom connects with, or raise InvalidInput."""
    normalised = normalise_database_url(url.strip())
    try:
        parsed = make_url(normalised)
    except ArgumentError:
        raise InvalidInput(
            f"{mask_url(url)} is not a database URL; use postgresql://USER:PASSWORD@HOST:PORT/DB"
        ) from None
    if parsed.get_backend_name() != "postgresql" or not parsed.host:
        raise InvalidInput(
            f"{mask_url(url)} is not a PostgreSQL server URL; tenants on other servers live in "
            "PostgreSQL, so use postgresql://USER:PASSWORD@HOST:PORT/DB"
        )
    return normalised


def add_server(catalog: Catalog, name: str, url: str) -> DatabaseServer:
    """Register a server after checking that it answers; the URL's database holds schema tenants."""
    if not SERVER_NAME.fullmatch(name) or name == DEFAULT_SERVER:
        raise InvalidInput(
            f"server name {name!r} is not allowed; use 1 to 63 lowercase letters, digits and "
            f"hyphens, other than {DEFAULT_SERVER!r}"
        )
    server = DatabaseServer(name, check_server_url(url))
    check_reachable(server)

    with catalog.session(write=True) as session:
        if session.get(DatabaseServerRow, name) is not None:
            raise AlreadyExists(
                f"server {name!r} is already registered; remove it first to change its URL"
            )
        session.add(DatabaseServerRow(name=name, url=server.url))
    log.info("server_added", server=name, url=server.masked_url)
    return server


def check_reachable(server: DatabaseServer) -> None:
    engine = create_engine(
        server.url, poolclass=NullPool, connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS}
    )
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        # The driver's message names the host and the reason, never the password.
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        raise InvalidInput(
            f"cannot connect to server {server.name!r} at {server.masked_url}: {reason}; check "
            "the URL and that the server accepts connections from here"
        ) from None
    finally:
        engine.dispose()


def get_server(catalog: Catalog, name: str) -> DatabaseServer:
    with catalog.session() as session:
        row = session.get(DatabaseServerRow, name)
        if row is None:
            raise NotFound(
                f"no database server is named {name!r}; see `strongroom server list`, or add it "
                "with `strongroom server add NAME URL`"
            )
        return DatabaseServer(row.name, row.url)


def list_servers(catalog: Catalog) -> list[tuple[DatabaseServer, int]]:
    """Return each registered server with the number of tenants placed on it."""
    with catalog.session() as session:
        counts = dict(
            session.execute(select(TenantRow.server, func.count()).group_by(TenantRow.server)).all()
        )
        rows = session.scalars(select(DatabaseServerRow).order_by(DatabaseServerRow.name))
        return [(DatabaseServer(row.name, row.url), counts.get(row.name, 0)) for row in rows]


def remove_server(catalog: Catalog, name: str) -> None:
    """Unregister a server, refused while any tenant is placed on it."""
    with catalog.session(write=True) as session:
        row = session.get(DatabaseServerRow, name)
        if row is None:
            raise NotFound(f"no database server is named {name!r}; see `strongroom server list`")
        slugs = list(
            session.scalars(
                select(TenantRow.slug).where(TenantRow.server == name).order_by(TenantRow.slug)
            )
        )
        if slugs:
            raise Conflict(
                f"server {name!r} still holds tenants {', '.join(slugs)}; move or delete them first"
            )
        session.delete(row)
    log.info("server_removed", server=name)
