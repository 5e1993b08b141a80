"""The file content API: upload, download, versions, HEAD and trash of files."""

from __future__ import annotations

import hashlib
import socket
import time
from typing import Any

import httpx

from strongroom.runtime import Runtime
from tests.conftest import TEST_CHUNK_SIZE, Cast, LiveServer, Member


def test_put_creates_file_and_parents(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    body = b"hello, strongroom"

    response = client.put(alice.url("files/reports/2026/q1.txt"), content=body, headers=alice.headers)

    assert response.status_code == 201
    created = response.json()
    assert created["path"] == "reports/2026/q1.txt"
    assert created["size"] == len(body)
    assert created["sha256"] == hashlib.sha256(body).hexdigest()
    assert created["version"] == 1
    assert response.headers["etag"] == created["etag"]


def test_get_returns_bytes_and_etag(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    body = bytes(range(256)) * (3 * TEST_CHUNK_SIZE // 256 + 7)
    etag = client.put(alice.url("files/a.bin"), content=body, headers=alice.headers).json()["etag"]

    response = client.get(alice.url("files/a.bin"), headers=alice.headers)

    assert response.status_code == 200
    assert response.content == body
    assert response.headers["etag"] == etag
    assert response.headers["content-length"] == str(len(body))


def test_put_again_makes_new_version(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    client.put(alice.url("files/notes.txt"), content=b"one", headers=alice.headers)

    response = client.put(alice.url("files/notes.txt"), content=b"two!", headers=alice.headers)

    assert response.status_code == 200
    assert response.json()["version"] == 2
    assert client.get(alice.url("files/notes.txt"), headers=alice.headers).content == b"two!"
    versions = client.get(alice.url("versions/notes.txt"), headers=alice.headers).json()["items"]
    assert [v["number"] for v in versions] == [1, 2]
    assert [v["size"] for v in versions] == [3, 4]


def test_empty_file_round_trip(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    client.put(alice.url("files/empty"), content=b"", headers=alice.headers)

    response = client.get(alice.url("files/empty"), headers=alice.headers)

    assert response.status_code == 200
    assert response.content == b""


def test_head_sends_headers_without_body(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    put = client.put(alice.url("files/h.txt"), content=b"12345", headers=alice.headers).json()

    response = client.head(alice.url("files/h.txt"), headers=alice.headers)

    assert response.status_code == 200
    assert response.headers["content-length"] == "5"
    assert response.headers["etag"] == put["etag"]
    assert response.content == b""


def test_get_missing_file_is_404_problem(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member

    response = client.get(alice.url("files/nope.txt"), headers=alice.headers)

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert "nope.txt" in response.json()["detail"]


def test_put_onto_folder_is_conflict(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    client.post(alice.url("folders/docs"), headers=alice.headers)

    response = client.put(alice.url("files/docs"), content=b"x", headers=alice.headers)

    assert response.status_code == 409
    assert "folder" in response.json()["detail"]


def test_put_below_file_is_conflict(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    client.put(alice.url("files/plain"), content=b"x", headers=alice.headers)

    response = client.put(alice.url("files/plain/inner.txt"), content=b"y", headers=alice.headers)

    assert response.status_code == 409
    assert "'plain' is a file" in response.json()["detail"]


def test_delete_moves_file_to_trash(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    client.put(alice.url("files/old.txt"), content=b"old", headers=alice.headers)

    response = client.delete(alice.url("files/old.txt"), headers=alice.headers)

    assert response.status_code == 200
    assert client.get(alice.url("files/old.txt"), headers=alice.headers).status_code == 404
    trash = client.get(alice.url("trash"), headers=alice.headers).json()["items"]
    assert [(item["name"], item["original_path"]) for item in trash] == [("old.txt", "old.txt")]


def _raw_request(port: int, head: str, body: bytes) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", port), timeout=10)
    connection.sendall(head.encode("latin-1") + b"\r\n" + body)
    return connection


def test_silent_upload_times_out_with_408(
    client: httpx.Client, cast: Cast, runtime: Runtime, live_server: LiveServer
) -> None:
    alice = cast.acme_member
    runtime.settings.upload_idle_timeout = 0.5
    head = (
        f"PUT {alice.url('files/slow.bin')} HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {alice.token}\r\nContent-Length: 1000\r\n"
    )

    with _raw_request(live_server.port, head, b"only ten b") as connection:
        reply = connection.recv(65536).decode("latin-1")

    assert reply.startswith("HTTP/1.1 408")
    assert "no part of the upload arrived" in reply
    assert client.get(alice.url("files/slow.bin"), headers=alice.headers).status_code == 404


def test_aborted_upload_is_not_a_server_error(
    client: httpx.Client, cast: Cast, live_server: LiveServer
) -> None:
    alice = cast.acme_member
    head = (
        f"PUT {alice.url('files/cut.bin')} HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {alice.token}\r\nContent-Length: 100000\r\n"
    )

    # The counters belong to the test process, so other tests' requests are counted too.
    before = client.get("/metrics").text

    _raw_request(live_server.port, head, b"x" * 5000).close()
    time.sleep(0.5)  # let the server notice the closed connection

    after = client.get("/metrics").text
    assert put_requests(after, 500) == put_requests(before, 500)
    assert put_requests(after, 499) == put_requests(before, 499) + 1


def put_requests(metrics: str, status: int) -> float:
    """Return the count of file PUTs that returned `status` in a /metrics text, 0 when absent."""
    series = (
        'strongroom_http_requests_total{method="PUT",route="/api/v1/files/{path:path}",'
        f'status="{status}"}} '
    )
    for line in metrics.splitlines():
        if line.startswith(series):
            return float(line[len(series) :])
    return 0.0


# The hash in every reply that describes a file ------------------------------------------------


def put_file(client: httpx.Client, member: Member, path: str, body: bytes) -> dict[str, Any]:
    response = client.put(member.url(f"files/{path}"), content=body, headers=member.headers)
    assert response.status_code in (200, 201), response.text
    return response.json()


def test_delete_returns_sha256(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    put_file(client, alice, "gone.txt", b"gone")

    response = client.delete(alice.url("files/gone.txt"), headers=alice.headers)

    assert response.status_code == 200, response.text
    assert response.json()["sha256"] == hashlib.sha256(b"gone").hexdigest()


def test_restore_returns_sha256(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    created = put_file(client, alice, "back.txt", b"back")
    client.delete(alice.url("files/back.txt"), headers=alice.headers)

    response = client.post(alice.url(f"trash/{created['id']}/restore"), headers=alice.headers)

    assert response.status_code == 200, response.text
    assert response.json()["sha256"] == hashlib.sha256(b"back").hexdigest()


def test_move_and_lookup_return_sha256(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    created = put_file(client, alice, "old.txt", b"moved")

    moved = client.post(
        alice.url("move"), headers=alice.headers, json={"from": "old.txt", "to": "new.txt"}
    )
    found = client.get(alice.url(f"nodes/{created['id']}"), headers=alice.headers)

    assert moved.status_code == 200, moved.text
    assert moved.json()["sha256"] == created["sha256"]
    assert found.json()["sha256"] == created["sha256"]


def test_uppercase_path_slug_reaches_tenant(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    put_file(client, alice, "case.txt", b"case")

    response = client.get("/t/ACME/api/v1/files/case.txt", headers=alice.headers)

    assert response.status_code == 200, response.text
    assert response.content == b"case"
