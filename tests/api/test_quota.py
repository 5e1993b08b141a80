"""Storage usage and quotas: what counts, when an upload is rejected, and what it leaves behind."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
from sqlalchemy import func, select

from strongroom.drive.models import BlobRow, NodeRow, VersionRow
from strongroom.runtime import Runtime
from tests.conftest import TEST_CHUNK_SIZE, Cast, LiveServer, Member


def put_file(client: httpx.Client, member: Member, path: str, body: bytes) -> httpx.Response:
    return client.put(member.url(f"files/{path}"), content=body, headers=member.headers)


def usage(client: httpx.Client, member: Member) -> dict:
    response = client.get(member.url("usage"), headers=member.headers)
    assert response.status_code == 200
    return response.json()


def stored_files(runtime: Runtime) -> set[Path]:
    """Every file below the blob store, unfinished uploads included."""
    return {path for path in runtime.settings.resolved_blob_dir.rglob("*") if path.is_file()}


def row_counts(runtime: Runtime, member: Member) -> dict[str, int]:
    with runtime.stores.session(member.tenant) as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model))
            for model in (NodeRow, VersionRow, BlobRow)
        }


def pieces(total: int, size: int = 8 * 1024) -> Iterator[bytes]:
    """The body of a streamed upload: httpx sends a generator with chunked transfer encoding."""
    sent = 0
    while sent < total:
        piece = b"s" * min(size, total - sent)
        sent += len(piece)
        yield piece


# Usage ------------------------------------------------------------------------------------


def test_usage_starts_at_zero(client: httpx.Client, cast: Cast) -> None:
    assert usage(client, cast.acme_member) == {"used_bytes": 0, "quota_bytes": None}


def test_usage_counts_every_upload(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    put_file(client, alice, "a.bin", b"a" * 1000)
    put_file(client, alice, "docs/b.bin", b"b" * 2345)

    put_file(client, alice, "docs/c.bin", b"c" * (2 * TEST_CHUNK_SIZE + 1))

    assert usage(client, alice)["used_bytes"] == 1000 + 2345 + 2 * TEST_CHUNK_SIZE + 1


def test_usage_counts_old_versions(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    put_file(client, alice, "a.bin", b"a" * 1000)

    put_file(client, alice, "a.bin", b"a" * 777)

    assert usage(client, alice)["used_bytes"] == 1000 + 777


def test_usage_counts_trashed_files(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    put_file(client, alice, "a.bin", b"a" * 1000)
    put_file(client, alice, "a.bin", b"a" * 500)
    put_file(client, alice, "docs/b.bin", b"b" * 300)

    client.delete(alice.url("files/a.bin"), headers=alice.headers)
    client.delete(alice.url("folders/docs"), headers=alice.headers)

    assert usage(client, alice)["used_bytes"] == 1000 + 500 + 300


def test_usage_drops_after_purge(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    put_file(client, alice, "keep.bin", b"k" * 10)
    put_file(client, alice, "a.bin", b"a" * 1000)
    put_file(client, alice, "a.bin", b"a" * 500)
    client.delete(alice.url("files/a.bin"), headers=alice.headers)

    client.delete(alice.url("trash"), headers=alice.headers)

    assert usage(client, alice)["used_bytes"] == 10


def test_usage_reports_quota(client: httpx.Client, runtime: Runtime, cast: Cast) -> None:
    alice = cast.acme_member

    runtime.catalog.set_quota("acme", 123_456)

    assert usage(client, alice)["quota_bytes"] == 123_456


def test_usage_other_tenant_unaffected(client: httpx.Client, runtime: Runtime, cast: Cast) -> None:
    alice = cast.acme_member
    bob = cast.globex_member
    runtime.catalog.set_quota("acme", 10_000)
    put_file(client, bob, "theirs.bin", b"g" * 42)

    put_file(client, alice, "a.bin", b"a" * 5000)
    put_file(client, alice, "a.bin", b"a" * 4000)

    assert usage(client, bob) == {"used_bytes": 42, "quota_bytes": None}


def test_quota_other_tenant_not_limited(client: httpx.Client, runtime: Runtime, cast: Cast) -> None:
    bob = cast.globex_member
    runtime.catalog.set_quota("acme", 1000)

    response = put_file(client, bob, "big.bin", b"g" * 5000)

    assert response.status_code == 201


# Uploads with Content-Length --------------------------------------------------------------


def test_upload_filling_quota_exactly_succeeds(
    client: httpx.Client, runtime: Runtime, cast: Cast
) -> None:
    alice = cast.acme_member
    runtime.catalog.set_quota("acme", 10_000)
    put_file(client, alice, "a.bin", b"a" * 6000)

    response = put_file(client, alice, "b.bin", b"b" * 4000)

    assert response.status_code == 201
    assert usage(client, alice)["used_bytes"] == 10_000


def test_upload_over_quota_is_507(client: httpx.Client, runtime: Runtime, cast: Cast) -> None:
    alice = cast.acme_member
    runtime.catalog.set_quota("acme", 10_000)
    put_file(client, alice, "a.bin", b"a" * 6000)

    response = put_file(client, alice, "b.bin", b"b" * 4001)

    assert response.status_code == 507
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "urn:strongroom:problem:quota-exceeded"
    assert problem["used"] == 6000
    assert problem["limit"] == 10_000
    assert problem["requested"] == 4001


def test_upload_over_quota_detail_explains(
    client: httpx.Client, runtime: Runtime, cast: Cast
) -> None:
    alice = cast.acme_member
    runtime.catalog.set_quota("acme", 10_000)
    put_file(client, alice, "a.bin", b"a" * 6000)

    response = put_file(client, alice, "b.bin", b"b" * 4001)

    detail = response.json()["detail"]
    assert "storing 4001 more bytes" in detail
    assert "6000 of 10000 bytes are used" in detail
    assert "'acme'" in detail


def test_upload_over_quota_stores_nothing(
    client: httpx.Client, runtime: Runtime, cast: Cast
) -> None:
    alice = cast.acme_member
    runtime.catalog.set_quota("acme", 10_000)
    put_file(client, alice, "a.bin", b"a" * 6000)
    files_before = stored_files(runtime)
    rows_before = row_counts(runtime, alice)

    put_file(client, alice, "b.bin", b"b" * 50_000)

    assert stored_files(runtime) == files_before
    assert row_counts(runtime, alice) == rows_before
    assert usage(client, alice)["used_bytes"] == 6000
    assert client.get(alice.url("files/b.bin"), headers=alice.headers).status_code == 404


def test_new_version_over_quota_keeps_old(
    client: httpx.Client, runtime: Runtime, cast: Cast
) -> None:
    alice = cast.acme_member
    runtime.catalog.set_quota("acme", 10_000)
    put_file(client, alice, "a.bin", b"old" * 2000)

    response = put_file(client, alice, "a.bin", b"new" * 2000)

    assert response.status_code == 507
    assert client.get(alice.url("files/a.bin"), headers=alice.headers).content == b"old" * 2000
    versions = client.get(alice.url("versions/a.bin"), headers=alice.headers).json()["items"]
    assert [version["number"] for version in versions] == [1]


# Uploads without Content-Length -----------------------------------------------------------


def test_streamed_upload_within_quota_succeeds(
    client: httpx.Client, runtime: Runtime, cast: Cast
) -> None:
    alice = cast.acme_member
    runtime.catalog.set_quota("acme", 100_000)

    response = client.put(alice.url("files/s.bin"), content=pieces(60_000), headers=alice.headers)

    assert response.status_code == 201
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert usage(client, alice)["used_bytes"] == 60_000
    assert client.get(alice.url("files/s.bin"), headers=alice.headers).content == b"s" * 60_000


def test_streamed_upload_over_quota_is_507(
    client: httpx.Client, runtime: Runtime, cast: Cast
) -> None:
    alice = cast.acme_member
    runtime.catalog.set_quota("acme", 50_000)
    put_file(client, alice, "a.bin", b"a" * 10_000)

    response = client.put(alice.url("files/s.bin"), content=pieces(96_000), headers=alice.headers)

    assert response.request.headers["transfer-encoding"] == "chunked"
    assert response.status_code == 507
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["used"] == 10_000
    assert problem["limit"] == 50_000


def test_streamed_upload_over_quota_stores_nothing(
    client: httpx.Client, runtime: Runtime, cast: Cast
) -> None:
    alice = cast.acme_member
    runtime.catalog.set_quota("acme", 50_000)
    put_file(client, alice, "a.bin", b"a" * 10_000)
    files_before = stored_files(runtime)
    rows_before = row_counts(runtime, alice)

    client.put(alice.url("files/s.bin"), content=pieces(96_000), headers=alice.headers)

    assert stored_files(runtime) == files_before
    assert row_counts(runtime, alice) == rows_before
    assert usage(client, alice)["used_bytes"] == 10_000
    assert client.get(alice.url("files/s.bin"), headers=alice.headers).status_code == 404


def test_quota_error_reaches_paused_client(
    client: httpx.Client, live_server: LiveServer, runtime: Runtime, cast: Cast
) -> None:
    # The chunk that passes the quota is stored while the server waits for the next one.
    # Its 507 must not wait for more of the body, nor become the idle timeout's 408.
    alice = cast.acme_member
    runtime.catalog.set_quota("acme", 50_000)
    # A server that waited for the idle timeout would leave recv to time out below.
    runtime.settings.upload_idle_timeout = 600
    body = b"".join(
        b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces(4 * TEST_CHUNK_SIZE)
    )
    head = (
        f"PUT {alice.url('files/s.bin')} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {alice.token}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    files_before = stored_files(runtime)

    with socket.create_connection(("127.0.0.1", live_server.port)) as connection:
        # The body stops after the chunk that passes the quota, without its end.
        connection.sendall(head.encode() + body)
        connection.settimeout(30)
        reply = connection.recv(4096)

    assert reply.startswith(b"HTTP/1.1 507"), reply
    assert stored_files(runtime) == files_before


# Room freed by purging --------------------------------------------------------------------


def test_purge_frees_room_for_upload(client: httpx.Client, runtime: Runtime, cast: Cast) -> None:
    alice = cast.acme_member
    runtime.catalog.set_quota("acme", 10_000)
    old = put_file(client, alice, "old.bin", b"o" * 6000).json()
    client.delete(alice.url("files/old.bin"), headers=alice.headers)
    rejected = put_file(client, alice, "new.bin", b"n" * 6000)
    assert rejected.status_code == 507

    client.delete(alice.url(f"trash/{old['id']}"), headers=alice.headers)
    response = put_file(client, alice, "new.bin", b"n" * 6000)

    assert response.status_code == 201
    assert usage(client, alice)["used_bytes"] == 6000


def test_purge_frees_room_for_streamed_upload(
    client: httpx.Client, runtime: Runtime, cast: Cast
) -> None:
    alice = cast.acme_member
    runtime.catalog.set_quota("acme", 50_000)
    put_file(client, alice, "old.bin", b"o" * 30_000)
    client.delete(alice.url("files/old.bin"), headers=alice.headers)
    rejected = client.put(alice.url("files/s.bin"), content=pieces(40_000), headers=alice.headers)
    assert rejected.status_code == 507

    client.delete(alice.url("trash"), headers=alice.headers)
    response = client.put(alice.url("files/s.bin"), content=pieces(40_000), headers=alice.headers)

    assert response.status_code == 201
    assert usage(client, alice)["used_bytes"] == 40_000
