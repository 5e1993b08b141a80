"""What survives a crash and concurrent writers: never a partial, mixed or lost file."""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.conftest import Cast
from tests.services.strongroom import StrongroomProcess

MIB = 1024 * 1024

# Loaded into the server process through PYTHONPATH: kills it with SIGKILL at the step of
# a tus upload's completion that STRONGROOM_TEST_CRASH_AT names, as a crash there would.
CRASH_HOOK = """
import os, signal

point = os.environ.get("STRONGROOM_TEST_CRASH_AT")
if point:
    from strongroom.storage import blobs

    def crash():
        os.kill(os.getpid(), signal.SIGKILL)

    publish = blobs.LocalPartialBlob.publish
    delete = blobs.LocalBlobStore.delete

    def publish_then_crash(self, key):
        if point == "before-publish":
            crash()
        size = publish(self, key)
        if point == "after-publish":
            crash()
        return size

    def delete_or_crash(self, key):
        # The first part deleted after the version and the completion have committed.
        if point == "after-record" and key.endswith(".chunks"):
            crash()
        return delete(self, key)

    blobs.LocalPartialBlob.publish = publish_then_crash
    blobs.LocalBlobStore.delete = delete_or_crash
"""
CRASH_POINTS = ("before-publish", "after-publish", "after-record")


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


def test_tus_completion_survives_each_crash(
    strongroom_process: StrongroomProcess, tmp_path: Path
) -> None:
    server = strongroom_process
    token = server.make_member("acme", "alice@acme.test")
    hook = tmp_path / "crash_hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(CRASH_HOOK)
    headers = {"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0"}
    data = os.urandom(3 * MIB + 7)

    def patch(url: str, offset: int, body: bytes) -> httpx.Response:
        patch_headers = {
            **headers,
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
        }
        return httpx.patch(url, content=body, headers=patch_headers, timeout=60)

    for point in CRASH_POINTS:
        server.env["STRONGROOM_TEST_CRASH_AT"] = point
        server.env["PYTHONPATH"] = str(hook)
        server.start()
        name = base64.b64encode(f"crash/{point}.bin".encode()).decode()
        created = httpx.post(
            f"{server.url}/t/acme/api/v1/uploads/",
            headers={**headers, "Upload-Length": str(len(data)), "Upload-Metadata": f"filename {name}"},
        )
        url = f"{server.url}{created.headers['location']}"
        assert patch(url, 0, data[:-1]).status_code == 204
        try:
            patch(url, len(data) - 1, data[-1:])
            raise AssertionError(f"the server did not crash at {point}")
        except httpx.TransportError:
            pass
        assert server.process is not None
        server.process.wait(timeout=30)
        del server.env["STRONGROOM_TEST_CRASH_AT"], server.env["PYTHONPATH"]
        server.start()

        offset = int(httpx.head(url, headers=headers).headers["upload-offset"])
        resent = patch(url, len(data) - 1, data[-1:])
        stored = httpx.get(f"{server.url}/t/acme/api/v1/files/crash/{point}.bin", headers=headers)
        server.stop()

        if point == "after-record":
            # The version and the completion committed together before the crash.
            assert (offset, resent.status_code) == (len(data), 409), point
        else:
            assert (offset, resent.status_code) == (len(data) - 1, 204), (point, resent.text)
        assert stored.status_code == 200, point
        assert hashlib.sha256(stored.content).digest() == hashlib.sha256(data).digest(), point

    repaired = server.cli("check", "--repair", "--grace", "0")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    final = server.cli("check", "--grace", "0")
    assert final.returncode == 0, final.stdout
    server.start()
    for point in CRASH_POINTS:
        stored = httpx.get(f"{server.url}/t/acme/api/v1/files/crash/{point}.bin", headers=headers)
        assert stored.content == data, point
