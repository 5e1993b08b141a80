"""Resumable uploads over tus 1.0: the real `tuspy` client, cut-off uploads, checksums,
termination, expiry, quotas, locks and other users' and tenants' uploads.

Tests of the upload's life and of who may reach it run on every level.
Tests of header parsing, of the stored parts and of the `tuspy` client run
on the shared level of each backend only: what they check is in the
protocol layer, the drive and the blob store, which every level shares.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import itertools
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update
from tusclient import client as tus_client
from tusclient.exceptions import TusCommunicationError
from tusclient.storage.filestorage import FileStorage

from strongroom.base.config import Settings
from strongroom.base.errors import Conflict
from strongroom.drive import resumable, transfers, upload_parts
from strongroom.drive.content import blob_key
from strongroom.drive.files import Preconditions
from strongroom.drive.integrity import check_all
from strongroom.drive.models import UploadRow
from strongroom.interfaces.api.app import create_app
from strongroom.runtime import Runtime, build_runtime
from strongroom.storage import crypto
from tests.conftest import SHARED_LEVELS, TEST_CHUNK_SIZE, AppSwitch, Cast, LiveServer, Member

ON_SHARED_LEVELS = pytest.mark.parametrize("level", SHARED_LEVELS, indirect=True)
TUS = {"Tus-Resumable": "1.0.0"}


def body_of(size: int, seed: int = 1) -> bytes:
    """Return `size` bytes that differ at every offset, so a byte out of place shows."""
    block = hashlib.sha256(seed.to_bytes(4, "big")).digest()
    whole = bytearray()
    counter = 0
    while len(whole) < size:
        whole += hashlib.sha256(block + counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(whole[:size])


def encoded(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def create(
    client: httpx.Client, member: Member, path: str, length: int, **headers: str
) -> httpx.Response:
    return client.post(
        member.url("uploads/"),
        headers={
            **member.headers,
            **TUS,
            "Upload-Length": str(length),
            "Upload-Metadata": f"filename {encoded(path)}",
            **headers,
        },
    )


def upload_url(client: httpx.Client, member: Member, path: str, length: int) -> str:
    response = create(client, member, path, length)
    assert response.status_code == 201, response.text
    return response.headers["location"]


def patch(
    client: httpx.Client, member: Member, url: str, offset: int, data: bytes, **headers: str
) -> httpx.Response:
    return client.patch(
        url,
        content=data,
        headers={
            **member.headers,
            **TUS,
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
            **headers,
        },
    )


def head(client: httpx.Client, member: Member, url: str) -> httpx.Response:
    return client.head(url, headers={**member.headers, **TUS})


def download(client: httpx.Client, member: Member, path: str) -> bytes:
    response = client.get(member.url(f"files/{path}"), headers=member.headers)
    assert response.status_code == 200, response.text
    return response.content


def sha1_header(data: bytes) -> str:
    return "sha1 " + base64.b64encode(hashlib.sha1(data).digest()).decode()


def upload_files(runtime: Runtime, member: Member) -> list[Path]:
    """The stored parts of the member's tenant's unfinished uploads."""
    folder = runtime.settings.resolved_blob_dir / upload_parts.uploads_prefix(member.tenant.id)
    return sorted(folder.glob("*")) if folder.exists() else []


class Source(io.BytesIO):
    """A file for tuspy, which closes the file it fingerprints and then reads it again.

    A path instead would make tuspy open the file for every chunk and never close it.
    """

    def __exit__(self, *args: object) -> None:
        return None


def tuspy(live_server: LiveServer, member: Member) -> tus_client.TusClient:
    return tus_client.TusClient(f"{live_server.url}{member.url('uploads/')}", headers=member.headers)


# Discovery and creation ----------------------------------------------------------------


def test_options_announce_protocol(client: httpx.Client, runtime: Runtime, cast: Cast) -> None:
    response = client.options(cast.acme_member.url("uploads/"))

    assert response.status_code == 204
    assert response.headers["tus-version"] == "1.0.0"
    assert response.headers["tus-resumable"] == "1.0.0"
    extensions = response.headers["tus-extension"].split(",")
    assert set(extensions) == {"creation", "termination", "checksum", "expiration"}
    assert response.headers["tus-max-size"] == str(runtime.settings.tus_max_size)
    assert {"sha1", "sha256", "md5"} <= set(response.headers["tus-checksum-algorithm"].split(","))


def test_create_returns_location_and_expiry(client: httpx.Client, cast: Cast) -> None:
    response = create(client, cast.acme_member, "docs/new.bin", 10)

    assert response.status_code == 201
    assert response.headers["location"].startswith("/t/acme/api/v1/uploads/")
    assert response.headers["tus-resumable"] == "1.0.0"
    assert response.headers["upload-expires"].endswith(" GMT")


def test_head_reports_offset_length_metadata(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    url = upload_url(client, alice, "a.txt", 10)

    response = head(client, alice, url)

    assert response.status_code == 200
    assert response.headers["upload-offset"] == "0"
    assert response.headers["upload-length"] == "10"
    assert response.headers["upload-metadata"] == f"filename {encoded('a.txt')}"
    assert response.headers["cache-control"] == "no-store"


@ON_SHARED_LEVELS
def test_create_without_filename_is_400(client: httpx.Client, cast: Cast) -> None:
    response = create(client, cast.acme_member, "x", 10, **{"Upload-Metadata": "name eA=="})

    assert response.status_code == 400
    assert "filename" in response.json()["detail"]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Upload-Length": "-1"}, 400),
        ({"Upload-Length": "ten"}, 400),
        ({"Upload-Metadata": "filename not*base64"}, 400),
        ({"Upload-Metadata": f"filename {encoded('../up.txt')}"}, 400),
        ({"Upload-Metadata": "filename"}, 400),
        ({"Upload-Metadata": "filename eA==,filename eQ=="}, 400),
        ({"Upload-Defer-Length": "1"}, 400),
        ({"Tus-Resumable": "0.2.2"}, 412),
    ],
)
@ON_SHARED_LEVELS
def test_create_rejects_bad_headers(
    client: httpx.Client, cast: Cast, headers: dict[str, str], expected: int
) -> None:
    response = create(client, cast.acme_member, "a.txt", 10, **headers)

    assert response.status_code == expected, response.text
    assert response.headers["content-type"] == "application/problem+json"
    if expected == 412:
        assert response.headers["tus-version"] == "1.0.0"


def test_create_at_folder_path_is_409(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    client.post(alice.url("folders/docs"), headers=alice.headers)

    response = create(client, alice, "docs", 10)

    assert response.status_code == 409
    assert "folder" in response.json()["detail"]


def test_empty_upload_is_complete_at_creation(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    url = upload_url(client, alice, "empty.txt", 0)

    assert head(client, alice, url).headers["upload-offset"] == "0"
    assert download(client, alice, "empty.txt") == b""


# Appending -----------------------------------------------------------------------------


def test_patches_make_the_file(client: httpx.Client, runtime: Runtime, cast: Cast) -> None:
    alice = cast.acme_member
    data = body_of(2 * TEST_CHUNK_SIZE + 555)
    url = upload_url(client, alice, "docs/report.bin", len(data))
    cuts = [0, 1000, TEST_CHUNK_SIZE, TEST_CHUNK_SIZE + 1, 2 * TEST_CHUNK_SIZE + 17, len(data)]

    for start, end in itertools.pairwise(cuts):
        response = patch(client, alice, url, start, data[start:end])
        assert response.status_code == 204, response.text
        assert response.headers["upload-offset"] == str(end)

    assert download(client, alice, "docs/report.bin") == data
    listing = client.get(alice.url("versions/docs/report.bin"), headers=alice.headers).json()
    assert [item["sha256"] for item in listing["items"]] == [hashlib.sha256(data).hexdigest()]
    assert head(client, alice, url).headers["upload-offset"] == str(len(data))
    assert upload_files(runtime, alice) == []


def test_upload_to_existing_file_adds_version(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    client.put(alice.url("files/a.txt"), content=b"first", headers=alice.headers)
    url = upload_url(client, alice, "a.txt", 6)

    patch(client, alice, url, 0, b"second")

    versions = client.get(alice.url("versions/a.txt"), headers=alice.headers).json()["items"]
    assert [item["number"] for item in versions] == [1, 2]
    assert download(client, alice, "a.txt") == b"second"


def test_patch_at_wrong_offset_is_409(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    url = upload_url(client, alice, "a.txt", 10)
    patch(client, alice, url, 0, b"01234")

    response = patch(client, alice, url, 3, b"34567")

    assert response.status_code == 409
    assert response.headers["tus-resumable"] == "1.0.0"
    assert head(client, alice, url).headers["upload-offset"] == "5"


def test_patch_past_length_is_413(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    url = upload_url(client, alice, "a.txt", 4)

    response = patch(client, alice, url, 0, b"too long")

    assert response.status_code == 413
    assert head(client, alice, url).headers["upload-offset"] == "0"


@ON_SHARED_LEVELS
def test_length_error_reaches_paused_client(
    client: httpx.Client, live_server: LiveServer, runtime: Runtime, cast: Cast
) -> None:
    # The chunk past the length is stored while the server waits for the next one. Its
    # 413 must not wait for the idle timeout of a client that pauses after it.
    alice = cast.acme_member
    # A server that waited for the idle timeout would leave recv to time out below.
    runtime.settings.upload_idle_timeout = 600
    url = upload_url(client, alice, "a.bin", 2 * TEST_CHUNK_SIZE)
    body = body_of(3 * TEST_CHUNK_SIZE, seed=6)
    pieces = [body[start : start + 4096] for start in range(0, len(body), 4096)]
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces)
    request = "\r\n".join(
        [
            f"PATCH {url} HTTP/1.1",
            "Host: 127.0.0.1",
            "Tus-Resumable: 1.0.0",
            f"Authorization: Bearer {alice.token}",
            "Upload-Offset: 0",
            "Content-Type: application/offset+octet-stream",
            "Transfer-Encoding: chunked",
            "",
            "",
        ]
    )

    with socket.create_connection(("127.0.0.1", live_server.port)) as connection:
        # The body stops after the chunk past the length, without its end.
        connection.sendall(request.encode() + chunked)
        connection.settimeout(30)
        reply = connection.recv(4096)

    assert reply.startswith(b"HTTP/1.1 413"), reply
    assert head(client, alice, url).headers["upload-offset"] == "0"


@ON_SHARED_LEVELS
def test_patch_needs_offset_media_type(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    url = upload_url(client, alice, "a.txt", 4)

    response = patch(client, alice, url, 0, b"abcd", **{"Content-Type": "application/json"})

    assert response.status_code == 415


@ON_SHARED_LEVELS
def test_patch_without_tus_resumable_is_412(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    url = upload_url(client, alice, "a.txt", 4)
    headers = {
        **alice.headers,
        "Upload-Offset": "0",
        "Content-Type": "application/offset+octet-stream",
    }

    response = client.patch(url, content=b"abcd", headers=headers)

    assert response.status_code == 412
    assert head(client, alice, url).headers["upload-offset"] == "0"


@ON_SHARED_LEVELS
def test_method_override_header_is_honoured(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    url = upload_url(client, alice, "a.txt", 4)
    headers = {
        **alice.headers,
        **TUS,
        "X-HTTP-Method-Override": "PATCH",
        "Upload-Offset": "0",
        "Content-Type": "application/offset+octet-stream",
    }

    response = client.post(url, content=b"abcd", headers=headers)

    assert response.status_code == 204
    assert download(client, alice, "a.txt") == b"abcd"


# Checksums -----------------------------------------------------------------------------


def test_wrong_checksum_is_460_and_discarded(
    client: httpx.Client, runtime: Runtime, cast: Cast
) -> None:
    alice = cast.acme_member
    data = body_of(TEST_CHUNK_SIZE + 100)
    url = upload_url(client, alice, "a.bin", len(data))
    patch(client, alice, url, 0, data[:50])

    response = patch(
        client, alice, url, 50, data[50:], **{"Upload-Checksum": sha1_header(b"other bytes")}
    )

    assert response.status_code == 460
    assert response.headers["content-type"] == "application/problem+json"
    assert head(client, alice, url).headers["upload-offset"] == "50"
    retried = patch(client, alice, url, 50, data[50:], **{"Upload-Checksum": sha1_header(data[50:])})
    assert retried.status_code == 204
    assert download(client, alice, "a.bin") == data


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "md5"])
@ON_SHARED_LEVELS
def test_matching_checksum_is_accepted(client: httpx.Client, cast: Cast, algorithm: str) -> None:
    alice = cast.acme_member
    data = b"checked bytes"
    url = upload_url(client, alice, "a.txt", len(data))
    digest = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()

    response = patch(client, alice, url, 0, data, **{"Upload-Checksum": f"{algorithm} {digest}"})

    assert response.status_code == 204
    assert download(client, alice, "a.txt") == data


@ON_SHARED_LEVELS
def test_unknown_checksum_algorithm_is_400(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    url = upload_url(client, alice, "a.txt", 4)

    response = patch(client, alice, url, 0, b"abcd", **{"Upload-Checksum": "crc32 AAAAAA=="})

    assert response.status_code == 400
    assert "sha1" in response.json()["detail"]
    assert head(client, alice, url).headers["upload-offset"] == "0"


@pytest.mark.parametrize("header", ["sha1", "sha256 AAAA"])
@ON_SHARED_LEVELS
def test_checksum_without_whole_digest_is_400(
    client: httpx.Client, cast: Cast, header: str
) -> None:
    alice = cast.acme_member
    url = upload_url(client, alice, "a.txt", 4)

    response = patch(client, alice, url, 0, b"abcd", **{"Upload-Checksum": header})

    assert response.status_code == 400
    assert "Upload-Checksum" in response.json()["detail"]
    assert head(client, alice, url).headers["upload-offset"] == "0"


# Termination and expiry ----------------------------------------------------------------


def test_delete_terminates_upload(client: httpx.Client, runtime: Runtime, cast: Cast) -> None:
    alice = cast.acme_member
    url = upload_url(client, alice, "a.bin", 3 * TEST_CHUNK_SIZE)
    patch(client, alice, url, 0, body_of(TEST_CHUNK_SIZE + 10))
    assert upload_files(runtime, alice) != []

    response = client.delete(url, headers={**alice.headers, **TUS})

    assert response.status_code == 204
    assert head(client, alice, url).status_code == 404
    assert patch(client, alice, url, TEST_CHUNK_SIZE + 10, b"more").status_code == 404
    assert upload_files(runtime, alice) == []
    assert client.get(alice.url("files/a.bin"), headers=alice.headers).status_code == 404


def expire(runtime: Runtime, member: Member, url: str) -> None:
    upload_id = uuid.UUID(url.rsplit("/", 1)[-1])
    with runtime.stores.session(member.tenant, write=True) as session:
        session.execute(
            update(UploadRow)
            .where(UploadRow.id == upload_id)
            .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )


def test_expired_upload_is_410_and_data_deleted(
    client: httpx.Client, runtime: Runtime, cast: Cast
) -> None:
    alice = cast.acme_member
    url = upload_url(client, alice, "a.bin", 3 * TEST_CHUNK_SIZE)
    patch(client, alice, url, 0, body_of(TEST_CHUNK_SIZE + 10))
    expire(runtime, alice, url)

    response = patch(client, alice, url, TEST_CHUNK_SIZE + 10, b"more")

    assert response.status_code == 410
    assert "POST /api/v1/uploads/" in response.json()["detail"]
    assert head(client, alice, url).status_code == 410
    assert upload_files(runtime, alice) == []


def test_check_repair_sweeps_expired_uploads(
    client: httpx.Client, runtime: Runtime, cast: Cast
) -> None:
    alice = cast.acme_member
    kept = upload_url(client, alice, "kept.bin", 3 * TEST_CHUNK_SIZE)
    gone = upload_url(client, alice, "gone.bin", 3 * TEST_CHUNK_SIZE)
    for url in (kept, gone):
        patch(client, alice, url, 0, body_of(TEST_CHUNK_SIZE + 10))
    expire(runtime, alice, gone)

    found = check_all(runtime, repair=False)
    report = check_all(runtime, repair=True)

    acme = next(tenant for tenant in found.tenants if tenant.slug == "acme")
    assert acme.expired_uploads == [uuid.UUID(gone.rsplit("/", 1)[-1])]
    assert report.tenants[0].repaired or report.tenants[1].repaired
    assert head(client, alice, gone).status_code == 404
    assert head(client, alice, kept).headers["upload-offset"] == str(TEST_CHUNK_SIZE + 10)
    assert check_all(runtime, repair=False).clean


def test_check_finds_parts_no_upload_names(
    client: httpx.Client, runtime: Runtime, cast: Cast
) -> None:
    alice = cast.acme_member
    url = upload_url(client, alice, "a.bin", 3 * TEST_CHUNK_SIZE)
    patch(client, alice, url, 0, body_of(TEST_CHUNK_SIZE + 10))
    stray = upload_files(runtime, alice)[0].with_name(f"{uuid.uuid4().hex}.tail-7")
    stray.write_bytes(b"left by a crash")

    report = check_all(runtime, repair=True, grace_seconds=0)

    acme = next(tenant for tenant in report.tenants if tenant.slug == "acme")
    assert [key.rsplit("/", 1)[-1] for key in acme.orphan_blobs] == [stray.name]
    assert not stray.exists()
    assert head(client, alice, url).headers["upload-offset"] == str(TEST_CHUNK_SIZE + 10)


# Owners ----------------------------------------------------------------------------------


def test_other_user_gets_404(client: httpx.Client, cast: Cast) -> None:
    alice, admin = cast.acme_member, cast.acme_admin
    url = upload_url(client, alice, "a.txt", 4)

    assert head(client, admin, url).status_code == 404
    assert patch(client, admin, url, 0, b"evil").status_code == 404
    assert client.delete(url, headers={**admin.headers, **TUS}).status_code == 404
    assert head(client, alice, url).headers["upload-offset"] == "0"


def test_other_tenant_cannot_reach_upload(client: httpx.Client, cast: Cast) -> None:
    alice, intruder = cast.acme_member, cast.globex_admin
    url = upload_url(client, alice, "a.txt", 4)
    same_id_at_globex = url.replace("/t/acme/", "/t/globex/")

    assert head(client, intruder, same_id_at_globex).status_code == 404
    assert patch(client, intruder, same_id_at_globex, 0, b"evil").status_code == 404
    delete = client.delete(same_id_at_globex, headers={**intruder.headers, **TUS})
    assert delete.status_code == 404
    # At acme's own URL a globex token is as unknown as a made-up one.
    assert head(client, intruder, url).status_code == 401
    refused = patch(client, intruder, url, 0, b"evil")
    assert refused.status_code == 401
    assert refused.headers["tus-resumable"] == "1.0.0"
    assert head(client, alice, url).headers["upload-offset"] == "0"


@ON_SHARED_LEVELS
def test_malformed_upload_id_is_404(client: httpx.Client, cast: Cast) -> None:
    response = head(client, cast.acme_member, cast.acme_member.url("uploads/not-an-id"))

    assert response.status_code == 404
    assert response.headers["tus-resumable"] == "1.0.0"


# Quotas and sizes --------------------------------------------------------------------------


def test_length_over_quota_is_413(client: httpx.Client, runtime: Runtime, cast: Cast) -> None:
    alice = cast.acme_member
    runtime.catalog.set_quota("acme", 10_000)
    client.put(alice.url("files/a.bin"), content=b"a" * 6000, headers=alice.headers)

    response = create(client, alice, "b.bin", 5000)

    assert response.status_code == 413
    problem = response.json()
    assert problem["used"] == 6000
    assert problem["limit"] == 10_000
    assert "quota" in problem["detail"]
    assert create(client, alice, "b.bin", 4000).status_code == 201


def test_quota_used_meanwhile_is_413_at_the_end(
    client: httpx.Client, runtime: Runtime, cast: Cast
) -> None:
    alice = cast.acme_member
    runtime.catalog.set_quota("acme", 10_000)
    url = upload_url(client, alice, "b.bin", 5000)
    patch(client, alice, url, 0, b"b" * 4000)
    client.put(alice.url("files/a.bin"), content=b"a" * 6000, headers=alice.headers)

    response = patch(client, alice, url, 4000, b"b" * 1000)

    assert response.status_code == 413
    assert head(client, alice, url).headers["upload-offset"] == "4000"
    client.delete(alice.url("files/a.bin"), headers=alice.headers)
    client.delete(alice.url("trash"), headers=alice.headers)
    assert patch(client, alice, url, 4000, b"b" * 1000).status_code == 204
    assert download(client, alice, "b.bin") == b"b" * 5000


@ON_SHARED_LEVELS
def test_length_over_max_size_is_413(client: httpx.Client, runtime: Runtime, cast: Cast) -> None:
    runtime.settings.tus_max_size = 1000

    response = create(client, cast.acme_member, "big.bin", 1001)

    assert response.status_code == 413
    assert "Tus-Max-Size" in response.json()["detail"]


# Storage -----------------------------------------------------------------------------------


@ON_SHARED_LEVELS
def test_partial_data_is_encrypted_in_tenant_prefix(
    client: httpx.Client, runtime: Runtime, cast: Cast
) -> None:
    alice = cast.acme_member
    marker = b"PLAINTEXT-MARKER-"
    data = marker * (3 * TEST_CHUNK_SIZE // len(marker))
    url = upload_url(client, alice, "secret.txt", len(data) + 100)
    patch(client, alice, url, 0, data[: 2 * TEST_CHUNK_SIZE + 300])

    parts = upload_files(runtime, alice)
    stored = [path for path in runtime.settings.resolved_blob_dir.rglob("*") if path.is_file()]

    assert {path.suffix.split("-")[0] for path in parts} == {".chunks", ".tail"}
    assert set(parts) == set(stored)
    for path in stored:
        assert marker[:8] not in path.read_bytes(), path


@ON_SHARED_LEVELS
def test_extra_stored_chunks_are_cut_off(
    client: httpx.Client, runtime: Runtime, cast: Cast
) -> None:
    # A request that stopped after appending chunks but before recording its offset.
    alice = cast.acme_member
    data = body_of(3 * TEST_CHUNK_SIZE + 5)
    url = upload_url(client, alice, "a.bin", len(data))
    patch(client, alice, url, 0, data[:TEST_CHUNK_SIZE + 5])
    chunks = next(path for path in upload_files(runtime, alice) if path.suffix == ".chunks")
    with chunks.open("ab") as stored:
        stored.write(os.urandom(TEST_CHUNK_SIZE + 28))

    patch(client, alice, url, TEST_CHUNK_SIZE + 5, data[TEST_CHUNK_SIZE + 5 :])

    assert download(client, alice, "a.bin") == data


# The tuspy client ---------------------------------------------------------------------------


@ON_SHARED_LEVELS
def test_tuspy_uploads_in_chunks(
    client: httpx.Client, live_server: LiveServer, cast: Cast
) -> None:
    alice = cast.acme_member
    data = body_of(5 * TEST_CHUNK_SIZE + 321)
    uploader = tuspy(live_server, alice).uploader(
        file_stream=Source(data),
        chunk_size=TEST_CHUNK_SIZE // 3,
        metadata={"filename": "inbox/source.bin"},
        upload_checksum=True,
    )

    uploader.upload()

    assert uploader.offset == len(data)
    assert download(client, alice, "inbox/source.bin") == data


@pytest.fixture
def urls(tmp_path: Path) -> Iterator[FileStorage]:
    """tuspy's store of upload URLs by file fingerprint, which a client keeps between runs."""
    storage = FileStorage(str(tmp_path / "urls.json"))
    try:
        yield storage
    finally:
        storage.close()


@ON_SHARED_LEVELS
def test_tuspy_resumes_stopped_upload(
    client: httpx.Client, live_server: LiveServer, cast: Cast, urls: FileStorage
) -> None:
    alice = cast.acme_member
    data = body_of(4 * TEST_CHUNK_SIZE + 99, seed=2)
    stop = 2 * TEST_CHUNK_SIZE + 1234
    options = {"chunk_size": stop // 3, "metadata": {"filename": "big.bin"}}
    first = tuspy(live_server, alice).uploader(
        file_stream=Source(data), store_url=True, url_storage=urls, **options
    )
    first.upload(stop_at=stop)

    second = tuspy(live_server, alice).uploader(
        file_stream=Source(data), store_url=True, url_storage=urls, **options
    )
    resumed_at = second.offset
    second.upload()

    assert second.url == first.url
    assert resumed_at == stop
    assert download(client, alice, "big.bin") == data


def send_cut_patch(
    live_server: LiveServer, member: Member, url: str, data: bytes, total: int, *headers: str
) -> bytes:
    """Send a PATCH that announces `total` bytes, send `data` only, and fall silent.

    A connection that stops sending is what a dropped network looks like to
    the server, which gives up after its idle timeout. Return its reply.
    """
    with socket.create_connection(("127.0.0.1", live_server.port)) as connection:
        request = "\r\n".join(
            [
                f"PATCH {url} HTTP/1.1",
                "Host: 127.0.0.1",
                "Tus-Resumable: 1.0.0",
                f"Authorization: Bearer {member.token}",
                "Upload-Offset: 0",
                "Content-Type: application/offset+octet-stream",
                f"Content-Length: {total}",
                *headers,
                "",
                "",
            ]
        )
        connection.sendall(request.encode() + data)
        return connection.recv(4096)


@ON_SHARED_LEVELS
def test_cut_patch_keeps_bytes_and_tuspy_resumes(
    client: httpx.Client, live_server: LiveServer, runtime: Runtime, cast: Cast
) -> None:
    alice = cast.acme_member
    runtime.settings.upload_idle_timeout = 0.5
    data = body_of(3 * TEST_CHUNK_SIZE + 700, seed=3)
    url = upload_url(client, alice, "cut.bin", len(data))
    received = TEST_CHUNK_SIZE + 4321

    reply = send_cut_patch(live_server, alice, url, data[:received], len(data))
    offset = head(client, alice, url).headers["upload-offset"]
    resumer = tuspy(live_server, alice).uploader(
        file_stream=Source(data), url=f"{live_server.url}{url}", chunk_size=TEST_CHUNK_SIZE
    )
    resumed_at = resumer.offset
    resumer.upload()

    assert reply.startswith(b"HTTP/1.1 408")
    assert offset == str(received)
    assert resumed_at == received
    assert download(client, alice, "cut.bin") == data


@ON_SHARED_LEVELS
def test_patch_cut_during_feed_keeps_offset(
    client: httpx.Client,
    live_server: LiveServer,
    cast: Cast,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each chunk is stored while the next one arrives. Cut off meanwhile, the upload must
    # store every byte it received, and exactly as many as its offset reports.
    alice = cast.acme_member
    data = body_of(4 * TEST_CHUNK_SIZE + 300, seed=7)
    url = upload_url(client, alice, "cut.bin", len(data))
    sent = 2 * TEST_CHUNK_SIZE + 1234
    feeding = threading.Event()
    real_feed = resumable.UploadAppend.feed

    def slow_feed(append: resumable.UploadAppend, piece: bytes) -> None:
        feeding.set()
        time.sleep(0.2)
        real_feed(append, piece)

    monkeypatch.setattr(resumable.UploadAppend, "feed", slow_feed)
    request = "\r\n".join(
        [
            f"PATCH {url} HTTP/1.1",
            "Host: 127.0.0.1",
            "Tus-Resumable: 1.0.0",
            f"Authorization: Bearer {alice.token}",
            "Upload-Offset: 0",
            "Content-Type: application/offset+octet-stream",
            f"Content-Length: {len(data)}",
            "",
            "",
        ]
    )
    with socket.create_connection(("127.0.0.1", live_server.port)) as connection:
        connection.sendall(request.encode() + data[:sent])
        assert feeding.wait(10), "no chunk was fed"
    live_server.wait_until_idle()
    monkeypatch.setattr(resumable.UploadAppend, "feed", real_feed)

    offset = head(client, alice, url).headers["upload-offset"]
    resumed = patch(client, alice, url, sent, data[sent:])

    assert offset == str(sent)
    assert resumed.status_code == 204
    assert hashlib.sha256(download(client, alice, "cut.bin")).digest() == hashlib.sha256(data).digest()


def test_cut_patch_with_checksum_keeps_nothing(
    client: httpx.Client, live_server: LiveServer, runtime: Runtime, cast: Cast
) -> None:
    alice = cast.acme_member
    runtime.settings.upload_idle_timeout = 0.5
    data = body_of(2 * TEST_CHUNK_SIZE, seed=4)
    url = upload_url(client, alice, "cut.bin", len(data))
    checksum = f"Upload-Checksum: {sha1_header(data)}"

    reply = send_cut_patch(live_server, alice, url, data[: TEST_CHUNK_SIZE + 10], len(data), checksum)

    assert reply.startswith(b"HTTP/1.1 408")
    assert head(client, alice, url).headers["upload-offset"] == "0"
    assert patch(client, alice, url, 0, data).status_code == 204
    assert download(client, alice, "cut.bin") == data


def test_concurrent_requests_get_409(
    client: httpx.Client, live_server: LiveServer, cast: Cast
) -> None:
    alice = cast.acme_member
    url = upload_url(client, alice, "a.bin", 200)
    with socket.create_connection(("127.0.0.1", live_server.port)) as first:
        first.sendall(
            (
                f"PATCH {url} HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\n"
                f"Authorization: Bearer {alice.token}\r\nUpload-Offset: 0\r\n"
                "Content-Type: application/offset+octet-stream\r\nContent-Length: 100\r\n"
                "Expect: 100-continue\r\n\r\n"
            ).encode()
        )
        # Uvicorn sends 100 Continue when the app first reads the body, which it does
        # only after the first PATCH has locked the upload.
        assert first.recv(100).startswith(b"HTTP/1.1 100 Continue")

        second = patch(client, alice, url, 0, b"s" * 100)
        terminated = client.delete(url, headers={**alice.headers, **TUS})

        first.sendall(b"f" * 100)
        first_reply = first.recv(4096)

    assert second.status_code == 409
    assert "another request is writing" in second.json()["detail"]
    assert terminated.status_code == 409
    assert first_reply.startswith(b"HTTP/1.1 204")
    assert head(client, alice, url).headers["upload-offset"] == "100"


@ON_SHARED_LEVELS
def test_upload_resumes_after_restart(
    client: httpx.Client,
    runtime: Runtime,
    settings: Settings,
    shared_server: tuple[LiveServer, AppSwitch],
    live_server: LiveServer,
    cast: Cast,
) -> None:
    alice = cast.acme_member
    data = body_of(2 * TEST_CHUNK_SIZE + 77, seed=5)
    url = upload_url(client, alice, "restart.bin", len(data))
    patch(client, alice, url, 0, data[: TEST_CHUNK_SIZE + 3])
    _server, switch = shared_server
    restarted = build_runtime(settings, migrate=False)
    switch.app = create_app(restarted)

    try:
        offset = head(client, alice, url).headers["upload-offset"]
        response = patch(client, alice, url, int(offset), data[int(offset) :])
        stored = download(client, alice, "restart.bin")
    finally:
        live_server.wait_until_idle()
        switch.app = create_app(runtime)
        restarted.close()

    assert offset == str(TEST_CHUNK_SIZE + 3)
    assert response.status_code == 204
    assert stored == data


def test_tuspy_reports_missing_upload(live_server: LiveServer, cast: Cast) -> None:
    missing = f"{live_server.url}{cast.acme_member.url('uploads/')}{uuid.uuid4().hex}"

    with pytest.raises(TusCommunicationError) as raised:
        tuspy(live_server, cast.acme_member).uploader(file_stream=Source(b"data"), url=missing)

    assert raised.value.status_code == 404


# Crashes while an upload completes ------------------------------------------------------


def upload_row(runtime: Runtime, member: Member, url: str) -> UploadRow:
    upload_id = uuid.UUID(url.rsplit("/", 1)[-1])
    with runtime.stores.session(member.tenant) as session:
        return session.scalars(select(UploadRow).where(UploadRow.id == upload_id)).one()


def chunks_file(runtime: Runtime, member: Member) -> Path:
    return next(path for path in upload_files(runtime, member) if path.suffix == ".chunks")


def move_completed_blob_as_before(
    runtime: Runtime, member: Member, url: str, last_piece: bytes
) -> Path:
    """Leave what a crash of a release before 0013's amendment left: the bytes moved, no row.

    That release sealed the last chunk and renamed the chunks file to the
    blob's key. It died before it recorded the version, and the next request
    made a new, empty chunks file. Returns the blob's file.
    """
    upload = upload_row(runtime, member, url)
    tail = upload_parts.read_tail(runtime, upload)
    assert tail is not None
    encryptor = crypto.ChunkEncryptor(
        upload_parts.blob_key_of(runtime, upload), upload.tenant_id, upload.blob_id,
        upload.chunk_size, upload.upload_offset // upload.chunk_size,
    )
    chunks = chunks_file(runtime, member)
    with chunks.open("ab") as stored:
        stored.write(encryptor.encrypt(tail + last_piece, last=True))
    blob = runtime.settings.resolved_blob_dir / blob_key(upload.tenant_id, upload.blob_id)
    blob.parent.mkdir(parents=True, exist_ok=True)
    chunks.rename(blob)
    chunks.write_bytes(b"")
    return blob


@pytest.mark.parametrize("repair_first", [False, True], ids=["resend", "repair"])
@ON_SHARED_LEVELS
def test_blob_moved_by_a_crash_is_adopted(
    client: httpx.Client, runtime: Runtime, cast: Cast, repair_first: bool
) -> None:
    alice = cast.acme_member
    data = body_of(3 * TEST_CHUNK_SIZE + 21, seed=7)
    url = upload_url(client, alice, "crash.bin", len(data))
    assert patch(client, alice, url, 0, data[:-1]).status_code == 204
    blob = move_completed_blob_as_before(runtime, alice, url, data[-1:])
    old = time.time() - 3600
    os.utime(blob, (old, old))  # older than any grace, as after a night

    found = check_all(runtime, repair=repair_first, grace_seconds=0)
    resent = patch(client, alice, url, len(data) - 1, data[-1:])

    acme = next(tenant for tenant in found.tenants if tenant.slug == "acme")
    assert acme.orphan_blobs == []
    [(upload_id, problem)] = acme.unsettled_uploads
    assert upload_id.hex in url
    assert "adopt" in problem
    assert resent.status_code == 204, resent.text
    assert resent.headers["upload-offset"] == str(len(data))
    assert download(client, alice, "crash.bin") == data
    assert check_all(runtime, repair=False, grace_seconds=0).clean


@ON_SHARED_LEVELS
def test_version_recorded_before_a_crash_completes_the_upload(
    client: httpx.Client, runtime: Runtime, cast: Cast
) -> None:
    # A release before 0013's amendment recorded the version, then died before it
    # marked the upload complete.
    alice = cast.acme_member
    data = body_of(2 * TEST_CHUNK_SIZE + 9, seed=8)
    url = upload_url(client, alice, "recorded.bin", len(data))
    patch(client, alice, url, 0, data[:-1])
    move_completed_blob_as_before(runtime, alice, url, data[-1:])
    upload = upload_row(runtime, alice, url)
    blob = upload_parts.blob_row(upload, stored_size=crypto.encrypted_size(len(data), upload.chunk_size))
    transfers.record_version(
        runtime, alice.tenant, alice.user_id, ["recorded.bin"], blob,
        hashlib.sha256(data).hexdigest(), alice.user_id, Preconditions(),
    )

    resent = patch(client, alice, url, len(data) - 1, data[-1:])

    assert resent.status_code == 409
    assert head(client, alice, url).headers["upload-offset"] == str(len(data))
    assert download(client, alice, "recorded.bin") == data
    versions = client.get(alice.url("versions/recorded.bin"), headers=alice.headers).json()
    assert len(versions["items"]) == 1


@ON_SHARED_LEVELS
def test_lost_chunks_move_the_offset_back_with_409(
    client: httpx.Client, runtime: Runtime, cast: Cast
) -> None:
    alice = cast.acme_member
    data = body_of(3 * TEST_CHUNK_SIZE + 5, seed=9)
    url = upload_url(client, alice, "lost.bin", len(data))
    patch(client, alice, url, 0, data[: 2 * TEST_CHUNK_SIZE + 3])
    with chunks_file(runtime, alice).open("r+b") as stored:
        stored.truncate(crypto.chunk_offset(1, TEST_CHUNK_SIZE))  # the second chunk is lost

    response = patch(client, alice, url, 2 * TEST_CHUNK_SIZE + 3, data[2 * TEST_CHUNK_SIZE + 3 :])

    assert response.status_code == 409
    assert response.json()["offset"] == TEST_CHUNK_SIZE
    assert f"from offset {TEST_CHUNK_SIZE}" in response.json()["detail"]
    assert head(client, alice, url).headers["upload-offset"] == str(TEST_CHUNK_SIZE)
    assert patch(client, alice, url, TEST_CHUNK_SIZE, data[TEST_CHUNK_SIZE:]).status_code == 204
    assert download(client, alice, "lost.bin") == data


@ON_SHARED_LEVELS
def test_lost_tail_moves_the_offset_to_its_chunk(
    client: httpx.Client, runtime: Runtime, cast: Cast
) -> None:
    alice = cast.acme_member
    data = body_of(2 * TEST_CHUNK_SIZE, seed=10)
    url = upload_url(client, alice, "tail.bin", len(data))
    patch(client, alice, url, 0, data[: TEST_CHUNK_SIZE + 40])
    next(path for path in upload_files(runtime, alice) if ".tail-" in path.name).unlink()

    response = patch(client, alice, url, TEST_CHUNK_SIZE + 40, data[TEST_CHUNK_SIZE + 40 :])

    assert response.status_code == 409
    assert head(client, alice, url).headers["upload-offset"] == str(TEST_CHUNK_SIZE)
    assert patch(client, alice, url, TEST_CHUNK_SIZE, data[TEST_CHUNK_SIZE:]).status_code == 204
    assert download(client, alice, "tail.bin") == data


@ON_SHARED_LEVELS
def test_check_reports_and_repairs_fewer_stored_bytes_than_offset(
    client: httpx.Client, runtime: Runtime, cast: Cast
) -> None:
    # The state the breaker's repair left: the blob deleted, the row still at its offset.
    alice = cast.acme_member
    data = body_of(2 * TEST_CHUNK_SIZE + 5, seed=11)
    url = upload_url(client, alice, "short.bin", len(data))
    patch(client, alice, url, 0, data[:-1])
    move_completed_blob_as_before(runtime, alice, url, data[-1:]).unlink()

    found = check_all(runtime, repair=False, grace_seconds=0)
    repaired = check_all(runtime, repair=True, grace_seconds=0)

    acme = next(tenant for tenant in found.tenants if tenant.slug == "acme")
    [(_upload_id, problem)] = acme.unsettled_uploads
    assert "stored bytes where its offset" in problem
    assert any(tenant.repaired for tenant in repaired.tenants)
    assert check_all(runtime, repair=False, grace_seconds=0).clean
    assert head(client, alice, url).headers["upload-offset"] == "0"
    assert patch(client, alice, url, 0, data).status_code == 204
    assert download(client, alice, "short.bin") == data


@ON_SHARED_LEVELS
def test_failed_completion_keeps_the_chunks_for_a_resend(
    client: httpx.Client, runtime: Runtime, cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A failure after the blob is published, as a crash there would leave it, but undone.
    alice = cast.acme_member
    data = body_of(2 * TEST_CHUNK_SIZE + 30, seed=12)
    url = upload_url(client, alice, "failed.bin", len(data))
    patch(client, alice, url, 0, data[:-1])
    record_version = transfers.record_version

    def fail(*args: object, **kwargs: object) -> None:
        upload = upload_row(runtime, alice, url)
        blob = runtime.settings.resolved_blob_dir / blob_key(upload.tenant_id, upload.blob_id)
        assert blob.samefile(chunks_file(runtime, alice))  # published, still the upload's
        raise Conflict("another request recorded a version meanwhile")

    monkeypatch.setattr(transfers, "record_version", fail)
    failed = patch(client, alice, url, len(data) - 1, data[-1:])
    monkeypatch.setattr(transfers, "record_version", record_version)

    assert failed.status_code == 409
    assert head(client, alice, url).headers["upload-offset"] == str(len(data) - 1)
    assert patch(client, alice, url, len(data) - 1, data[-1:]).status_code == 204
    assert download(client, alice, "failed.bin") == data
    assert upload_files(runtime, alice) == []
