"""Contents at rest: encrypted, bound to their tenant and blob, and re-keyed without rewriting.

Each damage to a stored blob must end in an error, never in wrong bytes.
Damage found before the first byte goes out gets a problem response, and damage
found in a later chunk cuts the body short. `read_range` raises IntegrityError.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import stat
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from strongroom.base.config import Settings, load_settings
from strongroom.base.errors import IntegrityError
from strongroom.drive import files, transfers
from strongroom.drive.content import blob_key, read_range
from strongroom.drive.keys import rewrap_blob_keys
from strongroom.drive.models import BlobRow
from strongroom.drive.paths import split_path
from strongroom.runtime import Runtime, build_runtime
from strongroom.storage.blobs import UPLOADS_FOLDER
from strongroom.storage.crypto import CHUNK_OVERHEAD, HEADER_BYTES, NONCE_BYTES, chunk_offset
from strongroom.tenancy.context import TenantInfo
from tests.conftest import TEST_CHUNK_SIZE, Cast, LiveServer, Member

# Three full chunks and a short last one.
BODY_SIZE = 3 * TEST_CHUNK_SIZE + 1000
FULL_CHUNK_BYTES = TEST_CHUNK_SIZE + CHUNK_OVERHEAD


def make_body(seed: int, size: int = BODY_SIZE) -> bytes:
    return random.Random(seed).randbytes(size)


@dataclass(frozen=True)
class Stored:
    """A file uploaded through the API, and where its encrypted blob lies on disk."""

    member: Member
    path: str
    body: bytes
    blob_id: uuid.UUID
    blob_file: Path

    @property
    def tenant(self) -> TenantInfo:
        return self.member.tenant

    @property
    def url(self) -> str:
        return self.member.url(f"files/{self.path}")


def store(client: httpx.Client, runtime: Runtime, member: Member, path: str, body: bytes) -> Stored:
    response = client.put(member.url(f"files/{path}"), content=body, headers=member.headers)
    assert response.status_code in (200, 201), response.text
    blob = blob_row(runtime, member, path)
    blob_file = runtime.settings.resolved_blob_dir / blob_key(member.tenant.id, blob.id)
    return Stored(member, path, body, blob.id, blob_file)


def blob_row(runtime: Runtime, member: Member, path: str) -> BlobRow:
    with runtime.stores.session(member.tenant) as session:
        node = files.access_node(session, member.user_id, split_path(path))
        _version, blob = files.current_content(session, node)
    return blob


def read_directly(runtime: Runtime, stored: Stored) -> bytes:
    """All plaintext of the file through `read_range`, below the API."""
    blob = blob_row(runtime, stored.member, stored.path)
    tenant_key = runtime.keyring.version(stored.tenant.id, blob.key_version)
    return b"".join(read_range(runtime.blobs, blob, tenant_key, 0, blob.size - 1))


@dataclass(frozen=True)
class Download:
    status: int
    content_type: str
    received: bytes
    cut_short: bool


def download(
    client: httpx.Client, stored: Stored, headers: dict[str, str] | None = None
) -> Download:
    """GET the file, keeping whatever bytes arrive before the connection ends."""
    received = bytearray()
    cut_short = False
    all_headers = {**stored.member.headers, **(headers or {})}
    with client.stream("GET", stored.url, headers=all_headers) as response:
        try:
            for piece in response.iter_raw():
                received += piece
        except httpx.RemoteProtocolError:
            cut_short = True
    content_type = response.headers["content-type"]
    return Download(response.status_code, content_type, bytes(received), cut_short)


# Damage done to a blob file -----------------------------------------------------------

Damage = Callable[[Path], None]


def flip_bit(offset: int) -> Damage:
    def damage(path: Path) -> None:
        data = bytearray(path.read_bytes())
        data[offset] ^= 0x01
        path.write_bytes(bytes(data))

    return damage


def flip_bit_in_chunk(index: int, within: int = NONCE_BYTES + 100) -> Damage:
    return flip_bit(chunk_offset(index, TEST_CHUNK_SIZE) + within)


def swap_chunks(first: int, second: int) -> Damage:
    """Swap two full chunks, so each sits at the other's index with its own valid tag."""

    def damage(path: Path) -> None:
        data = bytearray(path.read_bytes())
        a = chunk_offset(first, TEST_CHUNK_SIZE)
        b = chunk_offset(second, TEST_CHUNK_SIZE)
        chunk_a = data[a : a + FULL_CHUNK_BYTES]
        data[a : a + FULL_CHUNK_BYTES] = data[b : b + FULL_CHUNK_BYTES]
        data[b : b + FULL_CHUNK_BYTES] = chunk_a
        path.write_bytes(bytes(data))

    return damage


def truncate_at(offset: int) -> Damage:
    def damage(path: Path) -> None:
        path.write_bytes(path.read_bytes()[:offset])

    return damage


def append(extra: bytes) -> Damage:
    def damage(path: Path) -> None:
        path.write_bytes(path.read_bytes() + extra)

    return damage


def replace_header(header: bytes) -> Damage:
    def damage(path: Path) -> None:
        path.write_bytes(header + path.read_bytes()[HEADER_BYTES:])

    return damage


def drop_last_chunk_keeping_size(path: Path) -> None:
    """Cut the blob after chunk 2, then pad it back to its stored size with chunk 1 again,
    so that the size check alone cannot catch it."""
    data = path.read_bytes()
    end_of_chunk_2 = chunk_offset(3, TEST_CHUNK_SIZE)
    chunk_1 = data[chunk_offset(1, TEST_CHUNK_SIZE) : chunk_offset(2, TEST_CHUNK_SIZE)]
    padded = data[:end_of_chunk_2] + chunk_1
    path.write_bytes(padded[: len(data)])


# Found before the first byte of the body goes out: in the header, the size or chunk 0.
DAMAGE_FOUND_FIRST = {
    "bit-in-chunk-0": flip_bit_in_chunk(0),
    "bit-in-chunk-0-nonce": flip_bit_in_chunk(0, within=0),
    "bit-in-chunk-0-tag": flip_bit_in_chunk(0, within=FULL_CHUNK_BYTES - 1),
    "chunks-0-and-1-swapped": swap_chunks(0, 1),
    "truncated-at-chunk-boundary": truncate_at(chunk_offset(2, TEST_CHUNK_SIZE)),
    "truncated-mid-chunk": truncate_at(chunk_offset(2, TEST_CHUNK_SIZE) + 500),
    "truncated-to-header": truncate_at(HEADER_BYTES),
    "bytes-appended": append(b"\x00" * 16),
    "chunk-appended": append(b"\x00" * FULL_CHUNK_BYTES),
    "header-magic-changed": replace_header(b"SRB\x02" + (TEST_CHUNK_SIZE).to_bytes(4, "big")),
    "header-chunk-size-changed": replace_header(
        b"SRB\x01" + (2 * TEST_CHUNK_SIZE).to_bytes(4, "big")
    ),
}

# Found only when the damaged chunk is reached, after earlier chunks were sent.
DAMAGE_FOUND_LATER = {
    "bit-in-chunk-2": flip_bit_in_chunk(2),
    "bit-in-last-chunk": flip_bit_in_chunk(3),
    "chunks-1-and-2-swapped": swap_chunks(1, 2),
    "last-chunk-replaced": drop_last_chunk_keeping_size,
}

ALL_DAMAGE = {**DAMAGE_FOUND_FIRST, **DAMAGE_FOUND_LATER}


@pytest.fixture
def stored(client: httpx.Client, runtime: Runtime, cast: Cast) -> Stored:
    return store(client, runtime, cast.acme_member, "reports/q1.bin", make_body(1))


# Damaged blobs ------------------------------------------------------------------------


def test_undamaged_blob_reads_back(client: httpx.Client, runtime: Runtime, stored: Stored) -> None:
    fetched = download(client, stored)

    assert fetched.status == 200
    assert fetched.received == stored.body
    assert read_directly(runtime, stored) == stored.body


@pytest.mark.parametrize("damage", ALL_DAMAGE.values(), ids=ALL_DAMAGE.keys())
def test_damaged_blob_read_range_raises(runtime: Runtime, stored: Stored, damage: Damage) -> None:
    damage(stored.blob_file)

    with pytest.raises(IntegrityError) as raised:
        read_directly(runtime, stored)

    assert str(stored.blob_id) in raised.value.detail


@pytest.mark.parametrize("damage", DAMAGE_FOUND_FIRST.values(), ids=DAMAGE_FOUND_FIRST.keys())
def test_damaged_blob_download_is_problem(
    client: httpx.Client, stored: Stored, damage: Damage
) -> None:
    damage(stored.blob_file)

    fetched = download(client, stored)

    assert fetched.status == 500
    assert fetched.content_type == "application/problem+json"
    assert stored.body[:64] not in fetched.received


@pytest.mark.parametrize("damage", DAMAGE_FOUND_LATER.values(), ids=DAMAGE_FOUND_LATER.keys())
def test_damaged_later_chunk_cuts_body_short(
    client: httpx.Client, stored: Stored, damage: Damage
) -> None:
    damage(stored.blob_file)

    fetched = download(client, stored)

    assert fetched.status == 200
    assert fetched.cut_short
    assert len(fetched.received) < len(stored.body)
    assert stored.body.startswith(fetched.received)


def test_range_into_damaged_chunk_is_problem(client: httpx.Client, stored: Stored) -> None:
    flip_bit_in_chunk(2)(stored.blob_file)
    start = 2 * TEST_CHUNK_SIZE + 10

    fetched = download(client, stored, headers={"Range": f"bytes={start}-{start + 99}"})

    assert fetched.status == 500
    assert fetched.content_type == "application/problem+json"


def test_range_before_damaged_chunk_still_reads(client: httpx.Client, stored: Stored) -> None:
    flip_bit_in_chunk(2)(stored.blob_file)

    fetched = download(client, stored, headers={"Range": "bytes=0-99"})

    assert fetched.status == 206
    assert fetched.received == stored.body[:100]


def test_missing_blob_file_is_problem(client: httpx.Client, stored: Stored) -> None:
    stored.blob_file.unlink()

    fetched = download(client, stored)

    assert fetched.status == 500
    assert fetched.content_type == "application/problem+json"


def shorten_to_two_chunks(runtime: Runtime, stored: Stored) -> None:
    """Cut the blob after chunk 1 and make its row agree, so that only the last-chunk flag in
    the associated data can tell: chunk 1 was sealed as a middle chunk."""
    stored_size = chunk_offset(2, TEST_CHUNK_SIZE)
    truncate_at(stored_size)(stored.blob_file)
    with runtime.stores.session(stored.tenant, write=True) as session:
        row = session.scalars(select(BlobRow).where(BlobRow.id == stored.blob_id)).one()
        row.size = 2 * TEST_CHUNK_SIZE
        row.stored_size = stored_size


def test_truncation_matching_row_raises(runtime: Runtime, stored: Stored) -> None:
    shorten_to_two_chunks(runtime, stored)

    with pytest.raises(IntegrityError) as raised:
        read_directly(runtime, stored)

    assert "chunk 1" in raised.value.detail


def test_truncation_matching_row_cuts_body_short(
    client: httpx.Client, runtime: Runtime, stored: Stored
) -> None:
    shorten_to_two_chunks(runtime, stored)

    fetched = download(client, stored)

    assert fetched.cut_short
    assert len(fetched.received) < 2 * TEST_CHUNK_SIZE
    assert stored.body.startswith(fetched.received)


# Moved between tenants ----------------------------------------------------------------


@pytest.fixture
def pair(client: httpx.Client, runtime: Runtime, cast: Cast) -> tuple[Stored, Stored]:
    """Files of the same size in acme and globex, so that a copied blob also has the right size."""
    acme = store(client, runtime, cast.acme_member, "same.bin", make_body(2))
    globex = store(client, runtime, cast.globex_member, "same.bin", make_body(3))
    return acme, globex


def copy_wrapped_key(runtime: Runtime, source: Stored, target: Stored) -> None:
    """Write the source blob row's wrapped key into the target's row, by hand: this is damage."""
    wrapped = blob_row(runtime, source.member, source.path).wrapped_key
    with runtime.stores.session(target.tenant, write=True) as session:
        row = session.scalars(select(BlobRow).where(BlobRow.id == target.blob_id)).one()
        row.wrapped_key = wrapped


def test_foreign_blob_file_download_is_problem(
    client: httpx.Client, pair: tuple[Stored, Stored]
) -> None:
    acme, globex = pair
    acme.blob_file.write_bytes(globex.blob_file.read_bytes())

    fetched = download(client, acme)

    assert fetched.status == 500
    assert fetched.content_type == "application/problem+json"
    assert globex.body[:64] not in fetched.received


def test_foreign_blob_file_read_raises(
    runtime: Runtime, pair: tuple[Stored, Stored]
) -> None:
    acme, globex = pair
    acme.blob_file.write_bytes(globex.blob_file.read_bytes())

    with pytest.raises(IntegrityError):
        read_directly(runtime, acme)


def test_foreign_wrapped_key_download_is_problem(
    client: httpx.Client, runtime: Runtime, pair: tuple[Stored, Stored]
) -> None:
    acme, globex = pair
    copy_wrapped_key(runtime, globex, acme)

    fetched = download(client, acme)

    assert fetched.status == 500
    assert fetched.content_type == "application/problem+json"


def test_foreign_wrapped_key_read_raises(
    runtime: Runtime, pair: tuple[Stored, Stored]
) -> None:
    acme, globex = pair
    copy_wrapped_key(runtime, globex, acme)

    with pytest.raises(IntegrityError) as raised:
        read_directly(runtime, acme)

    assert "does not unwrap" in raised.value.detail


def test_foreign_key_and_blob_read_raises(
    runtime: Runtime, pair: tuple[Stored, Stored]
) -> None:
    acme, globex = pair
    copy_wrapped_key(runtime, globex, acme)
    acme.blob_file.write_bytes(globex.blob_file.read_bytes())

    with pytest.raises(IntegrityError):
        read_directly(runtime, acme)


# Nothing in plaintext on disk ---------------------------------------------------------


@pytest.mark.parametrize("level", ["sqlite-shared", "sqlite-database"], indirect=True)
def test_uploaded_marker_absent_from_every_file(
    client: httpx.Client, runtime: Runtime, cast: Cast, tmp_path: Path
) -> None:
    marker = f"plaintext-marker-{uuid.uuid4().hex}".encode()
    alice = cast.acme_member
    store(client, runtime, alice, "small.txt", marker)
    store(client, runtime, alice, "large.txt", (marker + b"\n") * (BODY_SIZE // len(marker)))
    # A second version, so that the old one is kept beside it.
    store(client, runtime, alice, "small.txt", marker + b" again")

    on_disk = [path for path in tmp_path.rglob("*") if path.is_file()]

    # The test database lies beside the data directory, so both are searched.
    names = {path.name for path in on_disk}
    assert "strongroom.db" in names
    assert any(runtime.settings.resolved_blob_dir in path.parents for path in on_disk)
    assert [path for path in on_disk if marker in path.read_bytes()] == []


def test_master_key_file_created_private(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("STRONGROOM_MASTER_KEY", raising=False)
    monkeypatch.delenv("STRONGROOM_MASTER_KEY_FILE", raising=False)
    settings = load_settings(
        data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'strongroom.db'}"
    )

    runtime = build_runtime(settings)
    runtime.close()

    key_file = settings.resolved_master_key_file
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


# Key rotation -------------------------------------------------------------------------


def blob_file_hashes(runtime: Runtime) -> dict[str, str]:
    root = runtime.settings.resolved_blob_dir
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in root.rglob("*")
        if path.is_file() and UPLOADS_FOLDER not in path.relative_to(root).parts
    }


def key_versions(runtime: Runtime, tenant: TenantInfo) -> list[int]:
    with runtime.stores.session(tenant) as session:
        return list(session.scalars(select(BlobRow.key_version)))


def rotate(runtime: Runtime, tenant: TenantInfo) -> tuple[int, int]:
    """Rotate the tenant's key as `strongroom tenant rotate-key` does.

    Returns the new key version and the number of blob rows re-wrapped.
    """
    version = runtime.catalog.add_key_version(tenant.id)
    return version, rewrap_blob_keys(runtime.stores, runtime.keyring, tenant, version)


@dataclass(frozen=True)
class Rotation:
    old_files: list[Stored]
    other_tenant_file: Stored
    hashes_before: dict[str, str]
    version: int
    rewrapped: int


@pytest.fixture
def rotation(client: httpx.Client, runtime: Runtime, cast: Cast) -> Rotation:
    old_files = [
        store(client, runtime, cast.acme_member, "old/a.bin", make_body(4)),
        store(client, runtime, cast.acme_admin, "old/b.bin", make_body(5, size=100)),
    ]
    # A replaced file keeps its first version, whose blob key must be re-wrapped as well.
    old_files.append(store(client, runtime, cast.acme_member, "old/a.bin", make_body(6)))
    other = store(client, runtime, cast.globex_member, "old/c.bin", make_body(7))
    hashes_before = blob_file_hashes(runtime)

    version, rewrapped = rotate(runtime, cast.acme)

    return Rotation(old_files[1:], other, hashes_before, version, rewrapped)


@pytest.mark.every_level
def test_rotation_rewraps_every_blob_row(runtime: Runtime, cast: Cast, rotation: Rotation) -> None:
    versions = key_versions(runtime, cast.acme)

    assert rotation.version == 2
    assert rotation.rewrapped == 3
    assert versions == [2, 2, 2]


@pytest.mark.every_level
def test_rotation_leaves_blob_files_identical(runtime: Runtime, rotation: Rotation) -> None:
    hashes_after = blob_file_hashes(runtime)

    assert hashes_after == rotation.hashes_before


@pytest.mark.every_level
def test_rotation_keeps_old_files_readable(client: httpx.Client, rotation: Rotation) -> None:
    fetched = [download(client, stored) for stored in rotation.old_files]

    assert [f.status for f in fetched] == [200, 200]
    assert [f.received for f in fetched] == [stored.body for stored in rotation.old_files]


@pytest.mark.every_level
def test_rotation_keeps_replaced_version_readable(
    runtime: Runtime, cast: Cast, rotation: Rotation
) -> None:
    with runtime.stores.session(cast.acme) as session:
        node = files.access_node(session, cast.acme_member.user_id, split_path("old/a.bin"))
        first = files.list_versions(session, node)[0]
        blob = session.scalars(select(BlobRow).where(BlobRow.id == first.blob_id)).one()
    tenant_key = runtime.keyring.version(cast.acme.id, blob.key_version)

    content = b"".join(read_range(runtime.blobs, blob, tenant_key, 0, blob.size - 1))

    assert blob.key_version == rotation.version
    assert content == make_body(4)


@pytest.mark.every_level
def test_upload_after_rotation_uses_new_version(
    client: httpx.Client, runtime: Runtime, cast: Cast, rotation: Rotation
) -> None:
    new = store(client, runtime, cast.acme_member, "new.bin", make_body(8))

    fetched = download(client, new)

    assert blob_row(runtime, cast.acme_member, "new.bin").key_version == rotation.version
    assert fetched.received == new.body


@pytest.mark.every_level
def test_rotation_leaves_other_tenant_alone(
    client: httpx.Client, runtime: Runtime, cast: Cast, rotation: Rotation
) -> None:
    fetched = download(client, rotation.other_tenant_file)

    assert key_versions(runtime, cast.globex) == [1]
    assert fetched.received == rotation.other_tenant_file.body


@pytest.mark.every_level
def test_second_rotation_keeps_files_readable(
    client: httpx.Client, runtime: Runtime, cast: Cast, rotation: Rotation
) -> None:
    version, rewrapped = rotate(runtime, cast.acme)

    fetched = [download(client, stored).received for stored in rotation.old_files]

    assert (version, rewrapped) == (3, 3)
    assert fetched == [stored.body for stored in rotation.old_files]


@pytest.mark.every_level
def test_rotation_rerun_rewraps_nothing(runtime: Runtime, cast: Cast, rotation: Rotation) -> None:
    again = rewrap_blob_keys(runtime.stores, runtime.keyring, cast.acme, rotation.version)

    assert again == 0


# The wrong master key -----------------------------------------------------------------


@pytest.fixture
def wrong_key_runtime(settings: Settings) -> Iterator[Runtime]:
    """The same database and blob store, opened with another master key."""
    other = settings.model_copy(update={"master_key": base64.b64encode(os.urandom(32)).decode()})
    runtime = build_runtime(other, migrate=False)
    try:
        yield runtime
    finally:
        runtime.close()


def test_wrong_master_key_read_names_key(
    runtime: Runtime, stored: Stored, wrong_key_runtime: Runtime
) -> None:
    with pytest.raises(IntegrityError) as raised:
        transfers.open_download(
            wrong_key_runtime, stored.tenant, stored.member.user_id, split_path(stored.path)
        )

    assert "master key" in raised.value.detail
    assert "STRONGROOM_MASTER_KEY" in raised.value.detail


def test_wrong_master_key_download_is_problem(
    stored: Stored, wrong_key_runtime: Runtime
) -> None:
    server = LiveServer(wrong_key_runtime)
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as wrong_client:
            fetched = download(wrong_client, stored)
    finally:
        server.stop()

    assert fetched.status == 500
    assert fetched.content_type == "application/problem+json"
    assert b"master key" in fetched.received
