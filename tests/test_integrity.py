"""`strongroom check` below the command line: damaged blobs, full decryption and folder loops.

Damage is made by hand on purpose here: a blob file cut short, grown or
altered, and parent links turned into a loop, as a disk fault or a past race
could have left them.
"""

from __future__ import annotations

import base64
import os
import random
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from strongroom.base.config import Settings
from strongroom.base.errors import IntegrityError
from strongroom.drive import files, transfers
from strongroom.drive.content import blob_key, read_range
from strongroom.drive.files import Preconditions
from strongroom.drive.integrity import check_tenant, find_folder_loops
from strongroom.drive.models import NodeRow
from strongroom.drive.paths import split_path
from strongroom.runtime import Runtime, build_runtime
from strongroom.storage.crypto import HEADER_BYTES
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.lifecycle import provision_tenant
from tests.conftest import TEST_CHUNK_SIZE, drive_owner

# Files are written a moment before the check runs, so no grace period may hide them.
NO_GRACE = 0.0


@pytest.fixture
def acme(runtime: Runtime, isolation: str) -> TenantInfo:
    return provision_tenant(runtime.catalog, runtime.stores, "acme", "Acme", None, isolation)


def upload(runtime: Runtime, tenant: TenantInfo, path: str, body: bytes) -> uuid.UUID:
    """Store a file through the same functions as the API and return its blob id."""
    names = split_path(path)
    owner = drive_owner(runtime, tenant)
    pending = transfers.begin_upload(runtime, tenant, owner, names, Preconditions(), len(body))
    pending.feed(body)
    transfers.commit_upload(runtime, tenant, owner, names, pending, owner, Preconditions())
    with runtime.stores.session(tenant) as session:
        node = files.access_node(session, owner, names)
        _version, blob = files.current_content(session, node)
    return blob.id


def blob_file(runtime: Runtime, tenant: TenantInfo, blob_id: uuid.UUID) -> Path:
    return runtime.settings.resolved_blob_dir / blob_key(tenant.id, blob_id)


def grow(path: Path) -> None:
    with path.open("ab") as handle:
        handle.write(b"\0")


def flip_byte(path: Path, offset: int) -> None:
    """Alter one byte in place, so the blob keeps its size and only decryption can tell."""
    with path.open("r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0x01]))


def read_file(runtime: Runtime, tenant: TenantInfo, path: str) -> bytes:
    download = transfers.open_download(
        runtime, tenant, drive_owner(runtime, tenant), split_path(path)
    )
    size = download.blob.size
    return b"".join(read_range(runtime.blobs, download.blob, download.tenant_key, 0, size - 1))


def make_loop(runtime: Runtime, tenant: TenantInfo) -> tuple[uuid.UUID, uuid.UUID]:
    """Make folders a/b, then hang a below b, as a race between two moves once could."""
    owner = drive_owner(runtime, tenant)
    with runtime.stores.session(tenant, write=True) as session:
        outer = files.make_folder(session, owner, split_path("a"), owner)
        inner = files.make_folder(session, owner, split_path("a/b"), owner)
        outer.parent_id = inner.id
    return outer.id, inner.id


# Stored size ---------------------------------------------------------------------------


def test_check_tenant_grown_blob_is_damaged(runtime: Runtime, acme: TenantInfo) -> None:
    blob_id = upload(runtime, acme, "report.txt", b"quarterly figures")
    grow(blob_file(runtime, acme, blob_id))

    report = check_tenant(runtime, acme, repair=False, grace_seconds=NO_GRACE)

    assert report.damaged_blobs == [blob_id]
    assert not report.clean


def test_check_tenant_truncated_blob_is_damaged(runtime: Runtime, acme: TenantInfo) -> None:
    blob_id = upload(runtime, acme, "report.txt", b"quarterly figures")
    os.truncate(blob_file(runtime, acme, blob_id), HEADER_BYTES)

    report = check_tenant(runtime, acme, repair=False, grace_seconds=NO_GRACE)

    assert report.damaged_blobs == [blob_id]


def test_check_tenant_damaged_blob_not_missing(runtime: Runtime, acme: TenantInfo) -> None:
    blob_id = upload(runtime, acme, "report.txt", b"quarterly figures")
    grow(blob_file(runtime, acme, blob_id))

    report = check_tenant(runtime, acme, repair=False, grace_seconds=NO_GRACE)

    assert report.missing_blobs == []
    assert report.orphan_blobs == []


def test_check_tenant_sound_blobs_are_clean(runtime: Runtime, acme: TenantInfo) -> None:
    upload(runtime, acme, "report.txt", b"quarterly figures")
    upload(runtime, acme, "empty.txt", b"")

    report = check_tenant(runtime, acme, repair=False, grace_seconds=NO_GRACE)

    assert report.clean


def test_check_default_misses_altered_byte(runtime: Runtime, acme: TenantInfo) -> None:
    blob_id = upload(runtime, acme, "report.txt", b"quarterly figures")
    flip_byte(blob_file(runtime, acme, blob_id), HEADER_BYTES + 20)

    report = check_tenant(runtime, acme, repair=False, grace_seconds=NO_GRACE)

    assert report.damaged_blobs == []


# Repair of damaged blobs ---------------------------------------------------------------


def test_check_repair_restores_older_version(runtime: Runtime, acme: TenantInfo) -> None:
    upload(runtime, acme, "report.txt", b"first draft")
    damaged = upload(runtime, acme, "report.txt", b"second draft")
    grow(blob_file(runtime, acme, damaged))

    check_tenant(runtime, acme, repair=True, grace_seconds=NO_GRACE)

    assert read_file(runtime, acme, "report.txt") == b"first draft"
    with runtime.stores.session(acme) as session:
        node = files.access_node(session, drive_owner(runtime, acme), split_path("report.txt"))
        assert node.size == len(b"first draft")
        assert [version.number for version in files.list_versions(session, node)] == [1]


def test_check_repair_deletes_damaged_blob_file(runtime: Runtime, acme: TenantInfo) -> None:
    blob_id = upload(runtime, acme, "report.txt", b"quarterly figures")
    grow(blob_file(runtime, acme, blob_id))

    check_tenant(runtime, acme, repair=True, grace_seconds=NO_GRACE)

    assert not blob_file(runtime, acme, blob_id).exists()


def test_check_repair_removes_unreadable_file(runtime: Runtime, acme: TenantInfo) -> None:
    blob_id = upload(runtime, acme, "report.txt", b"quarterly figures")
    grow(blob_file(runtime, acme, blob_id))

    check_tenant(runtime, acme, repair=True, grace_seconds=NO_GRACE)

    owner = drive_owner(runtime, acme)
    with runtime.stores.session(acme) as session:
        assert files.get_node(session, owner, split_path("report.txt")) is None


def test_check_repair_leaves_clean_store(runtime: Runtime, acme: TenantInfo) -> None:
    upload(runtime, acme, "kept.txt", b"kept")
    blob_id = upload(runtime, acme, "report.txt", b"quarterly figures")
    grow(blob_file(runtime, acme, blob_id))
    check_tenant(runtime, acme, repair=True, grace_seconds=NO_GRACE)

    report = check_tenant(runtime, acme, repair=False, grace_seconds=NO_GRACE)

    assert report.clean


# Full decryption -----------------------------------------------------------------------


def test_check_verify_finds_altered_byte(runtime: Runtime, acme: TenantInfo) -> None:
    blob_id = upload(runtime, acme, "report.txt", b"quarterly figures")
    flip_byte(blob_file(runtime, acme, blob_id), HEADER_BYTES + 20)

    report = check_tenant(runtime, acme, repair=False, grace_seconds=NO_GRACE, verify=True)

    assert report.damaged_blobs == [blob_id]


def test_check_verify_finds_last_chunk_damage(runtime: Runtime, acme: TenantInfo) -> None:
    body = random.Random(7).randbytes(3 * TEST_CHUNK_SIZE + 100)
    blob_id = upload(runtime, acme, "big.bin", body)
    path = blob_file(runtime, acme, blob_id)
    flip_byte(path, path.stat().st_size - 1)

    report = check_tenant(runtime, acme, repair=False, grace_seconds=NO_GRACE, verify=True)

    assert report.damaged_blobs == [blob_id]


def test_check_verify_passes_sound_blobs(runtime: Runtime, acme: TenantInfo) -> None:
    upload(runtime, acme, "big.bin", random.Random(7).randbytes(3 * TEST_CHUNK_SIZE + 100))
    upload(runtime, acme, "empty.txt", b"")

    report = check_tenant(runtime, acme, repair=False, grace_seconds=NO_GRACE, verify=True)

    assert report.clean


def test_check_verify_repair_deletes_altered_blob(runtime: Runtime, acme: TenantInfo) -> None:
    blob_id = upload(runtime, acme, "report.txt", b"quarterly figures")
    flip_byte(blob_file(runtime, acme, blob_id), HEADER_BYTES + 20)

    check_tenant(runtime, acme, repair=True, grace_seconds=NO_GRACE, verify=True)

    assert not blob_file(runtime, acme, blob_id).exists()


def test_check_verify_holds_no_whole_blob(runtime: Runtime, acme: TenantInfo) -> None:
    size = 64 * TEST_CHUNK_SIZE
    upload(runtime, acme, "big.bin", random.Random(7).randbytes(size))
    # A first run fills SQLAlchemy's statement caches, which would count as peak memory.
    check_tenant(runtime, acme, repair=False, grace_seconds=NO_GRACE, verify=True)
    tracemalloc.start()

    try:
        check_tenant(runtime, acme, repair=False, grace_seconds=NO_GRACE, verify=True)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < size // 4


@pytest.fixture
def other_master_key(settings: Settings) -> Iterator[Runtime]:
    """The same database and blobs opened with another master key, as a misconfigured host would."""
    wrong = settings.model_copy(update={"master_key": base64.b64encode(os.urandom(32)).decode()})
    runtime = build_runtime(wrong, migrate=False)
    try:
        yield runtime
    finally:
        runtime.close()


def test_check_verify_wrong_key_deletes_nothing(
    runtime: Runtime, acme: TenantInfo, other_master_key: Runtime
) -> None:
    blob_id = upload(runtime, acme, "report.txt", b"quarterly figures")

    with pytest.raises(IntegrityError, match="master key"):
        check_tenant(other_master_key, acme, repair=True, grace_seconds=NO_GRACE, verify=True)

    assert blob_file(runtime, acme, blob_id).exists()
    assert read_file(runtime, acme, "report.txt") == b"quarterly figures"


# Folder loops --------------------------------------------------------------------------


def test_check_tenant_reports_folder_loop(runtime: Runtime, acme: TenantInfo) -> None:
    outer, inner = make_loop(runtime, acme)

    report = check_tenant(runtime, acme, repair=False, grace_seconds=NO_GRACE)

    assert len(report.folder_loops) == 1
    assert sorted(report.folder_loops[0]) == sorted([outer, inner])
    assert report.needs_manual_repair


def test_check_repair_leaves_folder_loop_reported(runtime: Runtime, acme: TenantInfo) -> None:
    outer, inner = make_loop(runtime, acme)

    report = check_tenant(runtime, acme, repair=True, grace_seconds=NO_GRACE)

    assert sorted(report.folder_loops[0]) == sorted([outer, inner])
    with runtime.stores.session(acme) as session:
        parent = session.scalar(select(NodeRow.parent_id).where(NodeRow.id == outer))
    assert parent == inner


def test_check_tenant_tree_has_no_loop(runtime: Runtime, acme: TenantInfo) -> None:
    owner = drive_owner(runtime, acme)
    with runtime.stores.session(acme, write=True) as session:
        files.make_folder(session, owner, split_path("a/b/c"), owner)
        files.make_folder(session, owner, split_path("a/d"), owner)

    report = check_tenant(runtime, acme, repair=False, grace_seconds=NO_GRACE)

    assert report.folder_loops == []


def test_find_folder_loops_self_parent() -> None:
    root, node = uuid.uuid4(), uuid.uuid4()

    loops = find_folder_loops({root: None, node: node})

    assert loops == [[node]]


def test_find_folder_loops_skips_branches() -> None:
    first, second, branch = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    parents = {branch: first, first: second, second: first}

    loops = find_folder_loops(parents)

    assert loops == [[first, second]]


def test_find_folder_loops_separate_loops() -> None:
    a, b, c, d = (uuid.uuid4() for _ in range(4))
    parents = {a: b, b: a, c: d, d: c}

    loops = find_folder_loops(parents)

    assert sorted(map(sorted, loops)) == sorted([sorted([a, b]), sorted([c, d])])
