"""The server's storage running out of room: recognising it and translating it into ServerStorageFull.

A full disk shows as OSError ENOSPC, a full user or group quota of the
file system as EDQUOT, a full SQLite database as SQLITE_FULL (also what
SQLite reports for ENOSPC), and a full PostgreSQL disk as SQLSTATE 53100
(disk_full). The blob store and the tenant sessions translate these where
they call the file system or the database, log one error line for the
operator, and raise ServerStorageFull in their place.
"""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DBAPIError

from strongroom.base.errors import ServerStorageFull
from strongroom.base.logging import get_logger

log = get_logger(__name__)

OUT_OF_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
POSTGRES_DISK_FULL = "53100"

BLOB_STORE_FULL = (
    "the server has no room left to store the upload, so nothing of it was stored; the "
    "operator must free space on the server's storage, then the upload can be retried"
)
DATABASE_FULL = (
    "the server's database has no room left to store the change, so nothing of it was "
    "stored; the operator must free space on the server's storage, then the request can be "
    "retried"
)


def is_out_of_space(error: BaseException) -> bool:
    """Tell whether a file system call failed because the disk or the user's disk quota is full."""
    return isinstance(error, OSError) and error.errno in OUT_OF_SPACE_ERRNOS


def is_database_full(error: BaseException) -> bool:
    """Tell whether a database call failed because the database or its disk is full.

    Takes the driver's exception, or SQLAlchemy's wrapper of it.
    """
    cause = error.orig if isinstance(error, DBAPIError) else error
    if isinstance(cause, sqlite3.Error):
        # The low byte is the primary result code, because extended codes add bits above it.
        code = getattr(cause, "sqlite_errorcode", None)
        return code is not None and code & 0xFF == sqlite3.SQLITE_FULL
    return getattr(cause, "sqlstate", None) == POSTGRES_DISK_FULL


def blob_store_full(error: OSError, key: str, operation: str) -> ServerStorageFull:
    """Log the full blob store for the operator and return the error to raise in its place."""
    log.error(
        "server_storage_full",
        store="blobs",
        operation=operation,
        tenant_id=tenant_of_key(key),
        key=key,
        error=errno.errorcode.get(error.errno or 0, str(error.errno)),
    )
    return ServerStorageFull(BLOB_STORE_FULL)


def database_full(error: BaseException, tenant: str | None) -> ServerStorageFull:
    """Log the full database for the operator and return the error to raise in its place.

    `tenant` is the slug of the tenant whose transaction failed. Without it
    the line carries the tenant of the request's log context, if any.
    """
    cause = error.orig if isinstance(error, DBAPIError) else error
    fields = {"tenant": tenant} if tenant is not None else {}
    message = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
    log.error("server_storage_full", store="database", error=message, **fields)
    return ServerStorageFull(DATABASE_FULL)


@contextmanager
def database_full_as_error(tenant: str | None) -> Iterator[None]:
    """Raise ServerStorageFull in place of a database error of the block that reports a full database.

    Put it around the whole transaction, so that the transaction has rolled
    back before the error leaves it, and a failed commit is caught too.
    """
    try:
        yield
    except DBAPIError as error:
        if not is_database_full(error):
            raise
        raise database_full(error, tenant) from error


@contextmanager
def blob_store_full_as_error(
    key: str, operation: str, clean_up: Callable[[], None] | None = None
) -> Iterator[None]:
    """Raise ServerStorageFull in place of an out-of-space OSError of the block, after `clean_up`.

    `clean_up` removes what the failed operation left, so that a full store
    keeps no partial file. Other errors pass unchanged.
    """
    try:
        yield
    except OSError as error:
        if not is_out_of_space(error):
            raise
        if clean_up is not None:
            clean_up()
        raise blob_store_full(error, key, operation) from error


def tenant_of_key(key: str) -> str | None:
    """Return the tenant id of a key that `tenant_scoped_key` built, or None for another key."""
    parts = key.split("/")
    return parts[1] if len(parts) > 1 and parts[0] == "tenants" else None
