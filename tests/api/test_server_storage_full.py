"""Writes when the server's own storage is full: 507 server-storage-full, and nothing stored.

The blob store's full disk is a stand-in (tests/full_disk.py), because a
real full disk needs a file system mounted by root. The `os` module of
strongroom.storage.blobs is replaced by one whose writes fail with ENOSPC
once a budget of bytes is used up. A full database is real on SQLite, where
`PRAGMA max_page_count` stops the tenant's database from growing and SQLite
reports SQLITE_FULL. On PostgreSQL, where that needs a full disk too, a
trigger raises the server's own disk_full error (SQLSTATE 53100) through the
real driver.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from structlog.testing import capture_logs

from strongroom.base import metrics
from strongroom.base.errors import SERVER_FAULT_HEADER
from strongroom.drive.integrity import check_all
from strongroom.runtime import Runtime
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.isolation import SCHEMA
from strongroom.tenancy.usage import get_usage
from tests.conftest import SHARED_LEVELS, TEST_CHUNK_SIZE, Cast, Level, Member
from tests.full_disk import fill_disk, uploads_folder_files

ON_SHARED_LEVELS = pytest.mark.parametrize("level", SHARED_LEVELS, indirect=True)
TUS = {"Tus-Resumable": "1.0.0"}
JSON = {"Accept": "application/json"}
PROBLEM_TYPE = "urn:strongroom:problem:server-storage-full"
BODY = bytes(range(256)) * (5 * TEST_CHUNK_SIZE // 256)
# Room for the blob header and about one chunk: every upload of BODY runs out of it.
ROOM = TEST_CHUNK_SIZE + 100


def usage_of(runtime: Runtime, tenant: TenantInfo) -> int:
    with runtime.stores.session(tenant) as session:
        return get_usage(session)


def assert_storage_full(response: httpx.Response) -> None:
    assert response.status_code == 507, response.text
    problem = response.json()
    assert problem["type"] == PROBLEM_TYPE
    assert problem["title"] == "Server storage full"
    assert "nothing of it was stored" in problem["detail"]
    assert "the operator must free space on the server's storage" in problem["detail"]
    assert SERVER_FAULT_HEADER.lower() not in response.headers


def assert_nothing_left(runtime: Runtime, tenant: TenantInfo, usage: int) -> None:
    """Check that no temporary file, orphan or missing blob is left, and the usage is unchanged."""
    assert uploads_folder_files(runtime.settings.resolved_blob_dir) == []
    report = check_all(runtime, repair=False, grace_seconds=0, verify=True)
    for tenant_report in report.tenants:
        assert tenant_report.orphan_blobs == []
        assert tenant_report.missing_blobs == []
        assert tenant_report.damaged_blobs == []
        assert tenant_report.unsettled_uploads == []
    assert report.clean
    assert usage_of(runtime, tenant) == usage


def full_store_events(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["event"] == "server_storage_full"]


def put(client: httpx.Client, member: Member, path: str, body: bytes) -> httpx.Response:
    return client.put(member.url(f"files/{path}"), content=body, headers=member.headers)


def server_errors(tenant: TenantInfo, status_class: str) -> float:
    labels = {"plan": tenant.plan, "isolation": tenant.isolation, "status_class": status_class}
    return metrics.registry.get_sample_value("strongroom_tenant_requests_total", labels) or 0.0


# REST API upload ---------------------------------------------------------------------------


def test_put_on_full_disk_is_507(
    client: httpx.Client, runtime: Runtime, cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = cast.acme_member
    disk = fill_disk(monkeypatch, room=ROOM)

    with capture_logs() as logs:
        response = put(client, alice, "reports/full.bin", BODY)

    assert_storage_full(response)
    assert disk.failures == 1
    events = full_store_events(logs)
    assert len(events) == 1
    assert events[0]["log_level"] == "error"
    assert events[0]["tenant_id"] == str(cast.acme.id)
    assert events[0]["key"].startswith(f"tenants/{cast.acme.id}/blobs/")
    assert not [entry for entry in logs if entry["event"] == "request_failed"]


@ON_SHARED_LEVELS
def test_put_on_full_disk_leaves_no_trace(
    client: httpx.Client, runtime: Runtime, cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = cast.acme_member
    usage = usage_of(runtime, cast.acme)
    fill_disk(monkeypatch, room=ROOM)

    response = put(client, alice, "reports/full.bin", BODY)

    assert_storage_full(response)
    assert client.get(alice.url("files/reports/full.bin"), headers=alice.headers).status_code == 404
    assert_nothing_left(runtime, cast.acme, usage)


@ON_SHARED_LEVELS
def test_put_after_room_returns_succeeds(
    client: httpx.Client, runtime: Runtime, cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = cast.acme_member
    disk = fill_disk(monkeypatch, room=ROOM)
    assert_storage_full(put(client, alice, "full.bin", BODY))

    disk.free()
    response = put(client, alice, "full.bin", BODY)

    assert response.status_code == 201, response.text
    assert response.json()["version"] == 1
    assert client.get(alice.url("files/full.bin"), headers=alice.headers).content == BODY
    assert_nothing_left(runtime, cast.acme, len(BODY))


@ON_SHARED_LEVELS
def test_put_replacing_file_on_full_disk_keeps_version(
    client: httpx.Client, runtime: Runtime, cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = cast.acme_member
    assert put(client, alice, "notes.txt", b"first").status_code == 201
    usage = usage_of(runtime, cast.acme)
    fill_disk(monkeypatch, room=ROOM)

    response = put(client, alice, "notes.txt", BODY)

    assert_storage_full(response)
    versions = client.get(alice.url("versions/notes.txt"), headers=alice.headers).json()["items"]
    assert [version["number"] for version in versions] == [1]
    assert client.get(alice.url("files/notes.txt"), headers=alice.headers).content == b"first"
    assert_nothing_left(runtime, cast.acme, usage)


@ON_SHARED_LEVELS
def test_put_on_full_disk_counts_as_server_error(
    client: httpx.Client, runtime: Runtime, cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = cast.acme_member
    server, client_caused = server_errors(cast.acme, "5xx"), server_errors(cast.acme, "5xx_client")
    fill_disk(monkeypatch, room=ROOM)

    assert_storage_full(put(client, alice, "full.bin", BODY))

    # The middleware counts the request once its response has gone out.
    deadline = time.monotonic() + 5
    while server_errors(cast.acme, "5xx") == server and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server_errors(cast.acme, "5xx") == server + 1
    assert server_errors(cast.acme, "5xx_client") == client_caused


# tus ---------------------------------------------------------------------------------------


def create_upload(client: httpx.Client, member: Member, path: str, length: int) -> str:
    response = client.post(
        member.url("uploads/"),
        headers={
            **member.headers,
            **TUS,
            "Upload-Length": str(length),
            "Upload-Metadata": f"filename {base64.b64encode(path.encode()).decode()}",
        },
    )
    assert response.status_code == 201, response.text
    return response.headers["location"]


def patch(
    client: httpx.Client, member: Member, url: str, offset: int, data: bytes
) -> httpx.Response:
    headers = {
        **member.headers,
        **TUS,
        "Upload-Offset": str(offset),
        "Content-Type": "application/offset+octet-stream",
    }
    return client.patch(url, content=data, headers=headers)


def offset_of(client: httpx.Client, member: Member, url: str) -> int:
    response = client.head(url, headers={**member.headers, **TUS})
    assert response.status_code == 200, response.text
    return int(response.headers["upload-offset"])


@ON_SHARED_LEVELS
def test_tus_patch_on_full_disk_keeps_offset(
    client: httpx.Client, runtime: Runtime, cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = cast.acme_member
    usage = usage_of(runtime, cast.acme)
    url = create_upload(client, alice, "big.bin", len(BODY))
    # Two and a half chunks first, so that the upload has a tail as well as chunks.
    first = 2 * TEST_CHUNK_SIZE + TEST_CHUNK_SIZE // 2
    assert patch(client, alice, url, 0, BODY[:first]).status_code == 204
    disk = fill_disk(monkeypatch, room=ROOM)

    response = patch(client, alice, url, first, BODY[first:])

    assert_storage_full(response)
    assert response.headers["tus-resumable"] == "1.0.0"
    assert offset_of(client, alice, url) == first
    assert_nothing_left(runtime, cast.acme, usage)

    disk.free()
    assert patch(client, alice, url, first, BODY[first:]).status_code == 204
    assert client.get(alice.url("files/big.bin"), headers=alice.headers).content == BODY
    assert_nothing_left(runtime, cast.acme, usage + len(BODY))


@ON_SHARED_LEVELS
def test_tus_completion_on_full_disk_keeps_offset(
    client: httpx.Client, runtime: Runtime, cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = cast.acme_member
    usage = usage_of(runtime, cast.acme)
    url = create_upload(client, alice, "big.bin", len(BODY))
    first = len(BODY) - 10
    assert patch(client, alice, url, 0, BODY[:first]).status_code == 204
    # The last chunk, sealed when the upload completes, no longer fits.
    disk = fill_disk(monkeypatch, room=0)

    response = patch(client, alice, url, first, BODY[first:])

    assert_storage_full(response)
    assert offset_of(client, alice, url) == first
    assert client.get(alice.url("files/big.bin"), headers=alice.headers).status_code == 404
    assert_nothing_left(runtime, cast.acme, usage)

    disk.free()
    assert patch(client, alice, url, first, BODY[first:]).status_code == 204
    assert client.get(alice.url("files/big.bin"), headers=alice.headers).content == BODY


# Upload requests -----------------------------------------------------------------------------


def make_upload_request(client: httpx.Client, member: Member, folder: str) -> str:
    client.post(member.url(f"folders/{folder}"), headers=member.headers)
    response = client.post(
        member.url("upload-requests"), headers=member.headers, json={"path": folder}
    )
    assert response.status_code == 201, response.text
    return response.json()["url"]


@ON_SHARED_LEVELS
def test_upload_request_on_full_disk_is_507(
    client: httpx.Client, runtime: Runtime, cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = cast.acme_member
    drop = make_upload_request(client, owner, "inbox")
    usage = usage_of(runtime, cast.acme)
    disk = fill_disk(monkeypatch, room=ROOM)

    with capture_logs() as logs:
        response = client.put(f"{drop}/files/scan.pdf", content=BODY, headers=JSON)
        page = client.put(f"{drop}/files/scan.pdf", content=BODY, headers={"Accept": "text/html"})

    assert_storage_full(response)
    assert page.status_code == 507
    assert "free space" in page.text
    assert len(full_store_events(logs)) == 2
    assert not [entry for entry in logs if entry["event"] == "public_request_failed"]
    listing = client.get(owner.url("folders/inbox"), headers=owner.headers).json()["items"]
    assert listing == []
    assert_nothing_left(runtime, cast.acme, usage)

    disk.free()
    assert client.put(f"{drop}/files/scan.pdf", content=BODY, headers=JSON).status_code == 201
    assert client.get(owner.url("files/inbox/scan.pdf"), headers=owner.headers).content == BODY


# Server-side copies ------------------------------------------------------------------------


@ON_SHARED_LEVELS
def test_version_restore_on_full_disk_is_507(
    client: httpx.Client, runtime: Runtime, cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = cast.acme_member
    assert put(client, alice, "plan.txt", BODY).status_code == 201
    assert put(client, alice, "plan.txt", b"second").status_code == 200
    usage = usage_of(runtime, cast.acme)
    disk = fill_disk(monkeypatch, room=ROOM)

    response = client.post(alice.url("versions/plan.txt"), headers=alice.headers, json={"number": 1})

    assert_storage_full(response)
    versions = client.get(alice.url("versions/plan.txt"), headers=alice.headers).json()["items"]
    assert [version["number"] for version in versions] == [1, 2]
    assert_nothing_left(runtime, cast.acme, usage)

    disk.free()
    restored = client.post(alice.url("versions/plan.txt"), headers=alice.headers, json={"number": 1})
    assert restored.status_code == 200, restored.text
    assert client.get(alice.url("files/plan.txt"), headers=alice.headers).content == BODY


# A full database ---------------------------------------------------------------------------


@contextmanager
def sqlite_full(engine: Engine) -> Iterator[None]:
    """Stop the SQLite database from growing past its size for the block, on every connection.

    `max_page_count` belongs to the connection and cannot go below the
    file's size, so every checkout from the pool sets it to the current page
    count. Afterwards the pool is emptied, so that no connection keeps the limit.
    """

    def limit_pages(connection: Any, _record: Any, _proxy: Any) -> None:
        cursor = connection.cursor()
        pages = cursor.execute("PRAGMA page_count").fetchone()[0]
        cursor.execute(f"PRAGMA max_page_count = {int(pages)}")
        cursor.close()

    event.listen(engine, "checkout", limit_pages)
    try:
        yield
    finally:
        event.remove(engine, "checkout", limit_pages)
        engine.dispose()


RAISE_DISK_FULL = """
CREATE FUNCTION {schema}strongroom_test_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full';
END $$
"""


@contextmanager
def postgres_full(engine: Engine, tenant: TenantInfo) -> Iterator[None]:
    """Make every new version row of the tenant's store fail with PostgreSQL's disk_full error."""
    schema = f'"{tenant.placement}".' if tenant.isolation == SCHEMA else ""
    with engine.begin() as connection:
        connection.execute(text(RAISE_DISK_FULL.format(schema=schema)))
        connection.execute(
            text(
                f"CREATE TRIGGER strongroom_test_disk_full BEFORE INSERT ON {schema}versions "
                f"FOR EACH ROW EXECUTE FUNCTION {schema}strongroom_test_disk_full()"
            )
        )
    try:
        yield
    finally:
        with engine.begin() as connection:
            connection.execute(text(f"DROP TRIGGER strongroom_test_disk_full ON {schema}versions"))
            connection.execute(text(f"DROP FUNCTION {schema}strongroom_test_disk_full()"))


@contextmanager
def database_full(runtime: Runtime, tenant: TenantInfo, level: Level) -> Iterator[None]:
    """Make the tenant's database full for the block; the room comes back after it."""
    engine = runtime.stores.engine_for(tenant)
    full = sqlite_full(engine) if level.backend == "sqlite" else postgres_full(engine, tenant)
    with full:
        yield


def fill_path(number: int) -> str:
    # Long names fill the pages of the nodes table and its index sooner.
    return f"fill/{number:03}-{'x' * 120}.txt"


def test_full_database_is_507_and_rolls_back(
    client: httpx.Client, runtime: Runtime, cast: Cast, level: Level
) -> None:
    alice = cast.acme_member
    stored = 0
    with database_full(runtime, cast.acme, level), capture_logs() as logs:
        # SQLite fails once a page fills up, after the uploads whose rows still fit.
        for number in range(200):
            body = f"file {number}".encode() * 20
            response = put(client, alice, fill_path(number), body)
            if response.status_code != 201:
                break
            stored += len(body)
        failed = fill_path(number)

        assert_storage_full(response)
        assert "database has no room left" in response.json()["detail"]
        events = full_store_events(logs)
        assert len(events) == 1
        assert events[0]["store"] == "database"
        assert events[0]["tenant"] == cast.acme.slug
        assert client.get(alice.url(f"files/{failed}"), headers=alice.headers).status_code == 404

    assert_nothing_left(runtime, cast.acme, stored)
    response = put(client, alice, failed, b"after room returned")
    assert response.status_code == 201, response.text
    assert response.json()["sha256"] == hashlib.sha256(b"after room returned").hexdigest()
    assert client.get(alice.url(f"files/{failed}"), headers=alice.headers).content == (
        b"after room returned"
    )
