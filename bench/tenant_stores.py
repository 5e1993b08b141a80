"""Tenant stores for `bench.tenants`: N tenants on one isolation level, and one of them served.

A store is a data directory and a catalog with its tenants, on one level:
sqlite-shared, sqlite-database, postgres-shared, postgres-schema or
postgres-database. On PostgreSQL each store's catalog is a database of its
own on the benchmark's server, so the stores of two levels share no tables.

Tenants are created in this process with `provision_tenant`, the function
that `strongroom tenant create` calls, one after another as the command
would. Starting the command line once per tenant would take over a second a
tenant, most of it Python start-up, which is not what is measured. The last
tenant created is the one whose folder is listed. It gets a user and an API
token through the functions that `strongroom user create` and `strongroom
token create` call.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from bench.harness import (
    Account,
    BenchmarkError,
    CheckFailed,
    ServerProcess,
    strongroom_server,
    without_strongroom_environment,
)
from strongroom.base.config import load_settings
from strongroom.base.logging import configure_logging
from strongroom.identity.tokens import create_token
from strongroom.identity.users import create_user
from strongroom.runtime import Runtime, build_runtime
from strongroom.tenancy.lifecycle import provision_tenant

if TYPE_CHECKING:
    from tests.services.postgres import PostgresServer

LEVELS = ("sqlite-shared", "sqlite-database", "postgres-shared", "postgres-schema", "postgres-database")
LISTED_SLUG = "bench-listed"
LISTED_EMAIL = "bench@example.org"
LISTING_FOLDER = "listing"
LISTING_FILES = 20
LISTING_FILE_BYTES = 1024
HTTP_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class Store:
    """A data directory and its catalog, on one level; `database_url` is None on SQLite."""

    level: str
    side: str
    data_dir: Path
    database_url: str | None = None

    @property
    def isolation(self) -> str:
        return self.level.partition("-")[2]

    @property
    def settings(self) -> dict[str, str]:
        """The STRONGROOM_* settings, by lowercase name, that point a process at this store."""
        return {"database_url": self.database_url} if self.database_url else {}


@dataclass(frozen=True)
class Creation:
    """The time each tenant of a store took to create, in the order they were created."""

    seconds: list[float]

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds)


def plan_store(level: str, side: str, work: Path, postgres: PostgresServer | None) -> Store:
    """Return where a store of `level` goes; on PostgreSQL, create its empty catalog database."""
    data_dir = work / f"{level}-{side}"
    if not level.startswith("postgres-"):
        return Store(level, side, data_dir)
    if postgres is None:
        raise BenchmarkError(f"level {level} needs the benchmark's PostgreSQL server")
    database = f"bench_{level.replace('-', '_')}_{side}"
    return Store(level, side, data_dir, postgres.create_database(database))


def write_master_key(data_dir: Path) -> None:
    """Write a new master key file for the store, as an operator would before a first start."""
    data_dir.mkdir(mode=0o700, parents=True)
    key_file = data_dir / "master.key"
    descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(base64.b64encode(secrets.token_bytes(32)).decode("ascii") + "\n")


def provision_store(store: Store, tenants: int) -> tuple[Creation, Account]:
    """Create `tenants` tenants in the store, timing each; return the times and the listed account.

    The listed tenant is created last, after every other one.
    """
    configure_logging("json", "error")
    write_master_key(store.data_dir)
    with without_strongroom_environment():
        settings = load_settings(data_dir=store.data_dir, **store.settings)
    runtime = build_runtime(settings, migrate=True)
    try:
        slugs = [f"filler-{number:04d}" for number in range(tenants - 1)] + [LISTED_SLUG]
        seconds = [_timed_tenant_create(runtime, slug, store.isolation) for slug in slugs]
        token = _add_member(runtime, LISTED_SLUG, LISTED_EMAIL)
    finally:
        runtime.close()
    return Creation(seconds), Account(slug=LISTED_SLUG, email=LISTED_EMAIL, token=token)


def _timed_tenant_create(runtime: Runtime, slug: str, isolation: str) -> float:
    """Create one tenant as `strongroom tenant create SLUG --isolation LEVEL` does; return seconds."""
    started = time.perf_counter()
    provision_tenant(
        runtime.catalog, runtime.stores, slug, None, runtime.settings.default_quota, isolation
    )
    return time.perf_counter() - started


def _add_member(runtime: Runtime, slug: str, email: str) -> str:
    """Create an admin and an API token in the tenant, as the user and token commands do."""
    tenant = runtime.catalog.get_tenant(slug)
    with runtime.stores.session(tenant, write=True) as session:
        user = create_user(session, email, secrets.token_urlsafe(24), role="admin")
        _row, secret = create_token(session, user, "bench")
    return secret


def store_server(store: Store, work: Path) -> ServerProcess:
    """Return (not yet started) `strongroom serve` on the store, logging every request as in production."""
    return strongroom_server(store.data_dir, work / f"{store.level}-{store.side}.log", **store.settings)


# --- the listed folder ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ListedFolder:
    """The listed folder of one store: what was stored, and the listing the server returned for it."""

    stored: dict[str, str]
    items: list[dict[str, object]]
    body: bytes


def fill_listed_folder(server_url: str, account: Account) -> ListedFolder:
    """Store LISTING_FILES random files in the folder, then list it and check every item.

    Raises BenchmarkError when an upload fails, and CheckFailed when the
    listing differs from the files stored, by name, type, size or SHA-256.
    """
    stored = {}
    with httpx.Client(base_url=server_url, timeout=HTTP_TIMEOUT_SECONDS) as client:
        for number in range(LISTING_FILES):
            name = f"file-{number:02d}.txt"
            content = os.urandom(LISTING_FILE_BYTES)
            response = client.put(
                account.url("files", f"{LISTING_FOLDER}/{name}"),
                content=content,
                headers=account.headers,
            )
            if response.status_code != 201:
                raise BenchmarkError(
                    f"PUT {LISTING_FOLDER}/{name} returned {response.status_code}: "
                    f"{response.text[:300]}"
                )
            stored[name] = hashlib.sha256(content).hexdigest()
        listing = client.get(account.url("folders", LISTING_FOLDER), headers=account.headers)
    if listing.status_code != 200:
        raise BenchmarkError(f"GET folders/{LISTING_FOLDER} returned {listing.status_code}")
    items = listing.json()["items"]
    check_listing(items, stored)
    return ListedFolder(stored, items, listing.content)


def check_listing(items: Sequence[dict[str, object]], stored: dict[str, str]) -> None:
    """Raise CheckFailed unless `items` are exactly the stored files, with their sizes and digests."""
    listed = {
        str(item["name"]): (item["type"], item["size"], item["sha256"]) for item in items
    }
    expected = {name: ("file", LISTING_FILE_BYTES, digest) for name, digest in stored.items()}
    if len(items) != len(listed) or listed != expected:
        wrong = sorted(set(listed.items()) ^ set(expected.items()))
        raise CheckFailed(
            f"the listing of {LISTING_FOLDER}/ differs from the {len(stored)} files stored: "
            f"{wrong[:4]}"
        )
