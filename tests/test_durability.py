"""What survives a crash and concurrent writers: never a partial, mixed or lost file."""

from __future__ import annotations

import concurrent.futures
import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.conftest import Cast
from tests.services.strongroom import StrongroomProcess

MIB = 1024 * 1024


def _uploads_in_progress(data_dir: Path) -> list[Path]:
    return [path for path in (data_dir / "blobs" / ".uploads").glob("*.part") if path.stat().st_size]


def test_killed_upload_leaves_no_visible_file(strongroom_process: StrongroomProcess) -> None:
    server = strongroom_process
    token = server.make_member("acme", "alice@acme.test")
    server.start()
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{server.url}/t/acme/api/v1/files/big.bin"
    release = threading.Event()

    def body() -> Iterator[bytes]:
        for _ in range(8):
            yield b"x" * MIB
        release.wait(30)  # hold the request open until the server is dead
        yield b"never sent"

    def upload() -> None:
        try:
            httpx.put(url, content=body(), headers=headers, timeout=30)
        except httpx.TransportError:
            pass  # expected: the server dies mid-request

    uploader = threading.Thread(target=upload)
    uploader.start()
    deadline = time.monotonic() + 30
    while not _uploads_in_progress(server.data_dir) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _uploads_in_progress(server.data_dir), "the upload never reached the blob store"

    server.kill()
    release.set()
    uploader.join(10)
    server.start()

    listing = httpx.get(f"{server.url}/t/acme/api/v1/folders/", headers=headers).json()
    assert listing["items"] == []
    assert httpx.get(url, headers=headers).status_code == 404
    report = server.cli("check", "--grace", "0")
    assert report.returncode == 1
    assert "abandoned upload" in report.stdout
    repaired = server.cli("check", "--repair", "--grace", "0")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert _uploads_in_progress(server.data_dir) == []
    assert server.cli("check", "--grace", "0").returncode == 0


def test_concurrent_puts_end_as_versions(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    url = alice.url("files/shared.bin")
    bodies = [bytes([index]) * (50_000 + index) for index in range(8)]

    def put(body: bytes) -> httpx.Response:
        return httpx.put(client.base_url.join(url), content=body, headers=alice.headers, timeout=60)

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(put, bodies))

    statuses = sorted(response.status_code for response in responses)
    assert set(statuses) <= {200, 201, 409}
    stored = [r.json() for r in responses if r.status_code in (200, 201)]
    assert sorted(item["version"] for item in stored) == list(range(1, len(stored) + 1))
    versions = client.get(alice.url("versions/shared.bin"), headers=alice.headers).json()["items"]
    assert len(versions) == len(stored)
    expected = {hashlib.sha256(body).hexdigest() for body in bodies}
    assert {version["sha256"] for version in versions} <= expected
    final = client.get(url, headers=alice.headers).content
    assert final in bodies
