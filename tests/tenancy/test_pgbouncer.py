"""Schema tenants behind a real PgBouncer in transaction pooling mode.

PgBouncer hands one server connection to every client in turn, a transaction
at a time, so a search path or tenant setting that outlived its transaction
would reach the other tenant's next transaction. Its pool has one server
connection per database, so every transaction below runs on the same one.
"""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, make_url, select, text
from sqlalchemy.pool import NullPool

from strongroom.base.config import load_settings
from strongroom.drive.files import ensure_root
from strongroom.drive.models import NodeRow
from strongroom.identity.models import UserRow
from strongroom.runtime import Runtime, build_runtime
from strongroom.tenancy.isolation import TENANT_SETTING
from strongroom.tenancy.lifecycle import provision_tenant
from tests.conftest import TEST_CHUNK_SIZE, Cast, LiveServer, Member, add_member
from tests.services.pgbouncer import PgBouncer

SCOPED = {"tenant_scoped": True}
WORKERS = 6
ROUNDS = 8
FOLDER = "common"


@pytest.fixture
def bounced(tmp_path: Path, pgbouncer: PgBouncer, postgres_database: str) -> Iterator[Runtime]:
    """A runtime whose every connection goes through PgBouncer."""
    database = make_url(postgres_database).database
    settings = load_settings(
        data_dir=tmp_path / "data",
        database_url=pgbouncer.url(database),
        master_key=base64.b64encode(os.urandom(32)).decode(),
        prepared_statements=False,
        tenant_cache_seconds=0,
        chunk_size=TEST_CHUNK_SIZE,
        base_domain="strongroom.test",
    )
    runtime = build_runtime(settings, migrate=True)
    try:
        yield runtime
    finally:
        runtime.close()


@pytest.fixture
def bounced_cast(bounced: Runtime) -> Cast:
    acme = provision_tenant(bounced.catalog, bounced.stores, "acme", None, None, "schema")
    globex = provision_tenant(bounced.catalog, bounced.stores, "globex", None, None, "schema")
    return Cast(
        acme_admin=add_member(bounced, acme, "admin@acme.test", "admin"),
        acme_member=add_member(bounced, acme, "member@acme.test", "member"),
        globex_admin=add_member(bounced, globex, "admin@globex.test", "admin"),
        globex_member=add_member(bounced, globex, "member@globex.test", "member"),
    )


@pytest.fixture
def bounced_client(bounced: Runtime) -> Iterator[httpx.Client]:
    server = LiveServer(bounced)
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            yield client
    finally:
        server.stop()


def backend_pid(runtime: Runtime, cast: Cast, tenant_name: str) -> int:
    tenant = getattr(cast, tenant_name)
    with runtime.stores.session(tenant) as session:
        return session.scalar(text("SELECT pg_backend_pid()").execution_options(**SCOPED))


def test_pgbouncer_tenants_share_server_connection(bounced: Runtime, bounced_cast: Cast) -> None:
    pids = {backend_pid(bounced, bounced_cast, name) for name in ("acme", "globex", "acme")}

    assert len(pids) == 1


def test_pgbouncer_schema_tenants_list_own_users(bounced: Runtime, bounced_cast: Cast) -> None:
    seen = {}
    for tenant in (bounced_cast.acme, bounced_cast.globex, bounced_cast.acme):
        with bounced.stores.session(tenant) as session:
            seen[tenant.slug] = sorted(session.scalars(select(UserRow.email)))

    assert seen["acme"] == ["admin@acme.test", "member@acme.test"]
    assert seen["globex"] == ["admin@globex.test", "member@globex.test"]


def test_pgbouncer_core_count_sees_own_rows(bounced: Runtime, bounced_cast: Cast) -> None:
    # No tenant filter on purpose: the schema and row security alone must hold.
    everything = select(func.count()).select_from(UserRow.__table__)
    counts = {}
    for tenant in (bounced_cast.acme, bounced_cast.globex):
        with bounced.stores.connect(tenant) as connection:
            counts[tenant.slug] = connection.scalar(everything)

    assert counts == {"acme": 2, "globex": 2}


def test_pgbouncer_search_path_ends_with_transaction(
    bounced: Runtime, bounced_cast: Cast
) -> None:
    probe = text(
        f"SELECT current_setting('search_path'), current_setting('{TENANT_SETTING}', true), "
        "current_user = session_user, pg_backend_pid()"
    )
    inside_pid = backend_pid(bounced, bounced_cast, "acme")
    plain = create_engine(
        bounced.settings.resolved_database_url,
        poolclass=NullPool,
        connect_args={"prepare_threshold": None},
    )
    try:
        with plain.connect() as connection:
            path, setting, own_role, pid = connection.execute(probe).one()
    finally:
        plain.dispose()

    assert pid == inside_pid
    assert path == '"$user", public'
    assert setting in ("", None)
    assert own_role is True


def test_pgbouncer_node_ids_stay_apart(bounced: Runtime, bounced_cast: Cast) -> None:
    roots = {}
    for member in (bounced_cast.acme_member, bounced_cast.globex_member):
        with bounced.stores.session(member.tenant, write=True) as session:
            ensure_root(session, member.user_id)
    for tenant in (bounced_cast.acme, bounced_cast.globex):
        with bounced.stores.session(tenant) as session:
            roots[tenant.slug] = set(session.scalars(select(NodeRow.tenant_id)))

    assert roots == {"acme": {bounced_cast.acme.id}, "globex": {bounced_cast.globex.id}}


def exercise(client: httpx.Client, member: Member, worker: int) -> list[str]:
    """Write and read files in a folder both tenants have; return what the member should not see."""
    wrong = []
    slug = member.tenant.slug
    for round_number in range(ROUNDS):
        name = f"{slug}-w{worker}-r{round_number}.txt"
        url = member.url(f"files/{FOLDER}/{name}")
        body = f"{slug} wrote {name}".encode()
        put = client.put(url, content=body, headers=member.headers)
        if put.status_code != 201:
            wrong.append(f"PUT {name}: {put.status_code}")
        got = client.get(url, headers=member.headers)
        if got.content != body:
            wrong.append(f"GET {name}: {got.content[:60]!r}")
        listing = client.get(member.url(f"folders/{FOLDER}"), headers=member.headers)
        names = [item["name"] for item in listing.json()["items"]]
        wrong += [f"{slug} listed {other}" for other in names if not other.startswith(f"{slug}-")]
    return wrong


def test_pgbouncer_concurrent_requests_stay_apart(
    bounced_client: httpx.Client, bounced_cast: Cast
) -> None:
    members = [bounced_cast.acme_member, bounced_cast.globex_member] * (WORKERS // 2)
    start = threading.Barrier(WORKERS)

    def work(worker: int) -> list[str]:
        start.wait()
        return exercise(bounced_client, members[worker], worker)

    with ThreadPoolExecutor(WORKERS) as pool:
        wrong = [line for lines in pool.map(work, range(WORKERS)) for line in lines]
    listing = bounced_client.get(
        bounced_cast.acme_member.url(f"folders/{FOLDER}"), headers=bounced_cast.acme_member.headers
    )

    assert wrong == []
    assert len(listing.json()["items"]) == ROUNDS * WORKERS // 2
