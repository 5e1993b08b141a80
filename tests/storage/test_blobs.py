"""Tests for the local-folder blob store and for tenant-scoped keys."""

from __future__ import annotations

import os
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from strongroom.base.scoping import tenant_scoped_key
from strongroom.storage.blobs import (
    UPLOADS_FOLDER,
    BlobMissing,
    BlobWriter,
    LocalBlobStore,
    PartialBlobBusy,
)

TENANT = uuid.UUID("11111111-1111-4111-8111-111111111111")
KEY = tenant_scoped_key(TENANT, "blobs", "first")
OTHER_KEY = tenant_scoped_key(TENANT, "blobs", "second")
CONTENT = b"0123456789" * 100
STALE_SECONDS = 3600.0

INVALID_KEYS = [
    "",
    "..",
    ".",
    "/etc/passwd",
    "/tenants/blob",
    "tenants/../escape",
    "tenants//blob",
    "tenants/blob/",
    UPLOADS_FOLDER,
    f"{UPLOADS_FOLDER}/abc.part",
]


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


@pytest.fixture
def open_writer(store: LocalBlobStore) -> Iterator[BlobWriter]:
    """A writer for KEY with CONTENT written and not committed, aborted after the test."""
    writer = store.writer(KEY)
    writer.write(CONTENT)
    yield writer
    writer.abort()


def uploads(store: LocalBlobStore) -> list[str]:
    return sorted(os.listdir(store.root / UPLOADS_FOLDER))


def write_blob(store: LocalBlobStore, key: str, content: bytes = CONTENT) -> None:
    writer = store.writer(key)
    writer.write(content)
    writer.commit()


def abandon_upload(store: LocalBlobStore, name: str, age_seconds: float) -> Path:
    """Create an upload left behind as if by a process killed mid-write, with its
    modification time set `age_seconds` in the past."""
    path = store.root / UPLOADS_FOLDER / name
    path.write_bytes(CONTENT)
    modified = time.time() - age_seconds
    os.utime(path, (modified, modified))
    return path


# Writing and reading --------------------------------------------------------------------


def test_writer_commit_makes_blob_readable(store: LocalBlobStore) -> None:
    writer = store.writer(KEY)
    writer.write(CONTENT[:300])
    writer.write(memoryview(CONTENT)[300:])
    writer.commit()

    with store.reader(KEY) as reader:
        content = reader.read_at(0, len(CONTENT))

    assert content == CONTENT


def test_writer_commit_returns_stored_size(store: LocalBlobStore) -> None:
    writer = store.writer(KEY)
    writer.write(CONTENT)

    size = writer.commit()

    assert size == len(CONTENT)


def test_writer_commit_leaves_no_upload(store: LocalBlobStore) -> None:
    writer = store.writer(KEY)
    writer.write(CONTENT)

    writer.commit()

    assert uploads(store) == []


def test_reader_read_at_returns_range(store: LocalBlobStore) -> None:
    write_blob(store, KEY)

    with store.reader(KEY) as reader:
        content = reader.read_at(250, 40)

    assert content == CONTENT[250:290]


def test_reader_read_at_past_end_is_short(store: LocalBlobStore) -> None:
    write_blob(store, KEY)

    with store.reader(KEY) as reader:
        content = reader.read_at(len(CONTENT) - 5, 40)

    assert content == CONTENT[-5:]


def test_reader_size_is_blob_size(store: LocalBlobStore) -> None:
    write_blob(store, KEY)

    with store.reader(KEY) as reader:
        size = reader.size

    assert size == len(CONTENT)


def test_reader_missing_key_raises_blob_missing(store: LocalBlobStore) -> None:
    with pytest.raises(BlobMissing):
        store.reader(KEY)


def test_exists_committed_blob_is_true(store: LocalBlobStore) -> None:
    write_blob(store, KEY)

    found = store.exists(KEY)

    assert found


# Uncommitted, aborted and failed writes -------------------------------------------------


def test_writer_before_commit_key_missing(store: LocalBlobStore, open_writer: BlobWriter) -> None:
    found = store.exists(KEY)

    assert not found


def test_writer_before_commit_no_file_under_key(
    store: LocalBlobStore, open_writer: BlobWriter
) -> None:
    final_path = store.root / KEY

    keys = list(store.iter_keys())

    assert not final_path.exists()
    assert keys == []


def test_writer_before_commit_reader_raises_blob_missing(
    store: LocalBlobStore, open_writer: BlobWriter
) -> None:
    with pytest.raises(BlobMissing):
        store.reader(KEY)


def test_writer_before_commit_data_in_one_upload(
    store: LocalBlobStore, open_writer: BlobWriter
) -> None:
    names = uploads(store)

    assert len(names) == 1
    assert names[0].endswith(".part")


def test_writer_abort_removes_temp_file(store: LocalBlobStore) -> None:
    writer = store.writer(KEY)
    writer.write(CONTENT)

    writer.abort()

    assert uploads(store) == []
    assert not store.exists(KEY)


def test_writer_abort_twice_is_safe(store: LocalBlobStore) -> None:
    writer = store.writer(KEY)
    writer.abort()

    writer.abort()

    assert uploads(store) == []


def test_writer_abort_after_commit_keeps_blob(store: LocalBlobStore) -> None:
    writer = store.writer(KEY)
    writer.write(CONTENT)
    writer.commit()

    writer.abort()

    assert store.exists(KEY)


def test_writer_context_exception_aborts(store: LocalBlobStore) -> None:
    with pytest.raises(RuntimeError, match="upload interrupted"):
        with store.writer(KEY) as writer:
            writer.write(CONTENT)
            raise RuntimeError("upload interrupted")

    assert uploads(store) == []
    assert not store.exists(KEY)


def test_writer_context_commit_keeps_blob(store: LocalBlobStore) -> None:
    with store.writer(KEY) as writer:
        writer.write(CONTENT)
        writer.commit()

    assert store.exists(KEY)


def test_writer_invalid_key_leaves_no_upload(store: LocalBlobStore) -> None:
    with pytest.raises(ValueError):
        store.writer("..")

    assert uploads(store) == []


# Deleting -------------------------------------------------------------------------------


def test_delete_removes_blob(store: LocalBlobStore) -> None:
    write_blob(store, KEY)

    store.delete(KEY)

    assert not store.exists(KEY)


def test_delete_missing_key_is_noop(store: LocalBlobStore) -> None:
    store.delete(KEY)

    assert not store.exists(KEY)


# Key validation -------------------------------------------------------------------------


@pytest.mark.parametrize("operation", ["writer", "reader", "exists", "delete"])
@pytest.mark.parametrize("key", INVALID_KEYS)
def test_store_rejects_invalid_key(store: LocalBlobStore, operation: str, key: str) -> None:
    method = getattr(store, operation)

    with pytest.raises(ValueError):
        method(key)


def test_iter_keys_rejects_uploads_prefix(store: LocalBlobStore) -> None:
    with pytest.raises(ValueError):
        list(store.iter_keys(UPLOADS_FOLDER))


# Listing --------------------------------------------------------------------------------


def test_iter_keys_lists_committed_blobs(store: LocalBlobStore) -> None:
    write_blob(store, KEY)
    write_blob(store, OTHER_KEY)

    keys = sorted(store.iter_keys())

    assert keys == sorted([KEY, OTHER_KEY])


def test_iter_keys_skips_uploads_folder(store: LocalBlobStore, open_writer: BlobWriter) -> None:
    write_blob(store, OTHER_KEY)
    abandon_upload(store, "abandoned.part", STALE_SECONDS * 2)

    keys = list(store.iter_keys())

    assert keys == [OTHER_KEY]


def test_iter_keys_prefix_limits_listing(store: LocalBlobStore) -> None:
    other_tenant = uuid.UUID("22222222-2222-4222-8222-222222222222")
    other_tenant_key = tenant_scoped_key(other_tenant, "blobs", "first")
    write_blob(store, KEY)
    write_blob(store, other_tenant_key)

    keys = list(store.iter_keys(f"tenants/{TENANT}/"))

    assert keys == [KEY]


# Stale uploads --------------------------------------------------------------------------


def test_iter_stale_uploads_finds_abandoned_upload(store: LocalBlobStore) -> None:
    abandon_upload(store, "abandoned.part", STALE_SECONDS * 2)

    stale = list(store.iter_stale_uploads(STALE_SECONDS))

    assert [upload.name for upload in stale] == ["abandoned.part"]
    assert stale[0].size == len(CONTENT)
    assert stale[0].age_seconds >= STALE_SECONDS * 2


def test_iter_stale_uploads_skips_recent_upload(
    store: LocalBlobStore, open_writer: BlobWriter
) -> None:
    abandon_upload(store, "recent.part", STALE_SECONDS / 2)

    stale = list(store.iter_stale_uploads(STALE_SECONDS))

    assert stale == []


def test_remove_stale_upload_deletes_file(store: LocalBlobStore) -> None:
    path = abandon_upload(store, "abandoned.part", STALE_SECONDS * 2)

    store.remove_stale_upload("abandoned.part")

    assert not path.exists()


@pytest.mark.parametrize(
    "name", ["nested/abandoned.part", "../abandoned.part", "abandoned.tmp", "abandoned"]
)
def test_remove_stale_upload_rejects_invalid_name(store: LocalBlobStore, name: str) -> None:
    path = abandon_upload(store, "abandoned.tmp", STALE_SECONDS * 2)

    with pytest.raises(ValueError):
        store.remove_stale_upload(name)

    assert path.exists()


def test_iter_stale_uploads_yields_removable_names(store: LocalBlobStore) -> None:
    # check_writable names its probe file like this. A process killed between
    # creating and unlinking it leaves the probe behind.
    abandon_upload(store, f"probe-{uuid.uuid4().hex}", STALE_SECONDS * 2)
    abandoned = abandon_upload(store, "abandoned.part", STALE_SECONDS * 2)
    stale = list(store.iter_stale_uploads(STALE_SECONDS))

    for upload in stale:
        store.remove_stale_upload(upload.name)

    assert not abandoned.exists()


# The failed scan also leaves its directory iterator open, which the next test
# covers, so its ResourceWarning is ignored here.
@pytest.mark.filterwarnings("ignore:unclosed scandir iterator:ResourceWarning")
def test_iter_stale_uploads_skips_upload_removed_during_scan(store: LocalBlobStore) -> None:
    abandon_upload(store, "first.part", STALE_SECONDS * 2)
    abandon_upload(store, "second.part", STALE_SECONDS * 2)
    scan = store.iter_stale_uploads(STALE_SECONDS)
    found = next(scan)
    other_name = "second.part" if found.name == "first.part" else "first.part"
    # Removing the file once the scan has read the directory is what a
    # concurrent commit (a rename) or abort does.
    (store.root / UPLOADS_FOLDER / other_name).unlink()

    rest = list(scan)

    assert rest == []


def test_iter_stale_uploads_closes_directory_when_stopped(store: LocalBlobStore) -> None:
    abandon_upload(store, "first.part", STALE_SECONDS * 2)
    abandon_upload(store, "second.part", STALE_SECONDS * 2)
    scan = store.iter_stale_uploads(STALE_SECONDS)
    next(scan)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scan.close()

    assert [str(warning.message) for warning in caught] == []


# Writability ----------------------------------------------------------------------------


def test_check_writable_leaves_no_file(store: LocalBlobStore) -> None:
    store.check_writable()

    assert uploads(store) == []


# Tenant-scoped keys ---------------------------------------------------------------------


def test_tenant_scoped_key_starts_with_tenant_id() -> None:
    key = tenant_scoped_key(TENANT, "blobs", "first")

    parts = key.split("/")

    assert parts[0] == "tenants"
    assert parts[1] == str(TENANT)


def test_tenant_scoped_key_joins_parts_in_order() -> None:
    key = tenant_scoped_key(TENANT, "blobs", "ab", "cd")

    assert key == f"tenants/{TENANT}/blobs/ab/cd"


@pytest.mark.parametrize(
    "tenant_id", [str(TENANT), TENANT.hex, TENANT.bytes, TENANT.int, None], ids=repr
)
def test_tenant_scoped_key_rejects_non_uuid_tenant(tenant_id: object) -> None:
    with pytest.raises(TypeError):
        tenant_scoped_key(tenant_id, "blobs", "first")  # type: ignore[arg-type]


@pytest.mark.parametrize("part", ["a/b", "/", "", ".", ".."])
def test_tenant_scoped_key_rejects_invalid_namespace(part: str) -> None:
    with pytest.raises(ValueError):
        tenant_scoped_key(TENANT, part, "first")


@pytest.mark.parametrize("part", ["a/b", "/", "", ".", ".."])
def test_tenant_scoped_key_rejects_invalid_part(part: str) -> None:
    with pytest.raises(ValueError):
        tenant_scoped_key(TENANT, "blobs", "first", part)


def test_tenant_scoped_key_is_valid_blob_key(store: LocalBlobStore) -> None:
    key = tenant_scoped_key(TENANT, "blobs", uuid.uuid4().hex)
    write_blob(store, key)

    with store.reader(key) as reader:
        content = reader.read_at(0, len(CONTENT))

    assert content == CONTENT


# Partial blobs -----------------------------------------------------------------------------

PARTIAL_KEY = tenant_scoped_key(TENANT, "uploads", "first.chunks")


def test_partial_blob_appends_and_reads(store: LocalBlobStore) -> None:
    with store.open_partial(PARTIAL_KEY) as partial:
        partial.append(b"abc")
        partial.append(memoryview(b"defg"))

        assert partial.size == 7
        assert partial.read_at(2, 3) == b"cde"


def test_partial_blob_keeps_bytes_across_opens(store: LocalBlobStore) -> None:
    with store.open_partial(PARTIAL_KEY) as partial:
        partial.append(CONTENT)
        partial.sync()

    with store.open_partial(PARTIAL_KEY) as reopened:
        assert reopened.size == len(CONTENT)


def test_partial_blob_second_writer_is_busy(store: LocalBlobStore) -> None:
    with store.open_partial(PARTIAL_KEY), pytest.raises(PartialBlobBusy):
        store.open_partial(PARTIAL_KEY)


def test_partial_blob_lock_ends_with_close(store: LocalBlobStore) -> None:
    store.open_partial(PARTIAL_KEY).close()

    with store.open_partial(PARTIAL_KEY) as partial:
        assert partial.size == 0


def test_partial_blob_truncate_cuts_off_end(store: LocalBlobStore) -> None:
    with store.open_partial(PARTIAL_KEY) as partial:
        partial.append(CONTENT)
        partial.truncate(10)
        partial.append(b"!")

        assert partial.read_at(0, 100) == CONTENT[:10] + b"!"


def test_partial_blob_publish_adds_blob_name(store: LocalBlobStore) -> None:
    with store.open_partial(PARTIAL_KEY) as partial:
        partial.append(CONTENT)

        size = partial.publish(KEY)

    assert size == len(CONTENT)
    with store.reader(KEY) as reader:
        assert reader.read_at(0, size) == CONTENT
    # The partial blob keeps its name until the caller has recorded the blob and deletes it.
    assert store.exists(PARTIAL_KEY)
    store.delete(PARTIAL_KEY)
    with store.reader(KEY) as reader:
        assert reader.read_at(0, size) == CONTENT


def test_partial_blob_unpublish_moves_bytes_back(store: LocalBlobStore) -> None:
    with store.open_partial(PARTIAL_KEY) as partial:
        partial.append(CONTENT)
        partial.publish(KEY)

        partial.unpublish(KEY)
        partial.truncate(5)

    assert not store.exists(KEY)
    with store.reader(PARTIAL_KEY) as reader:
        assert reader.read_at(0, 100) == CONTENT[:5]


def test_partial_blob_deleted_like_a_blob(store: LocalBlobStore) -> None:
    with store.open_partial(PARTIAL_KEY) as partial:
        partial.append(CONTENT)

    store.delete(PARTIAL_KEY)

    assert not store.exists(PARTIAL_KEY)


def mode_of(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_store_files_and_folders_are_private(tmp_path: Path) -> None:
    # The umask most systems start with would give 0755 folders and 0644 files.
    previous = os.umask(0o022)
    try:
        store = LocalBlobStore(tmp_path / "outside" / "blobs")
        writer = store.writer(KEY)
        writer.write(CONTENT)
        part = store.root / UPLOADS_FOLDER / uploads(store)[0]
        part_mode = mode_of(part)
        writer.commit()
        with store.open_partial(OTHER_KEY) as partial:
            partial.append(CONTENT)
    finally:
        os.umask(previous)

    folders = [store.root.parent, store.root, store.root / UPLOADS_FOLDER]
    folders += [folder for folder in store.root.rglob("*") if folder.is_dir()]
    files = [path for path in store.root.rglob("*") if path.is_file()]
    assert part_mode == 0o600
    assert len(files) == 2
    assert {str(folder): mode_of(folder) for folder in folders} == {
        str(folder): 0o700 for folder in folders
    }
    assert {str(path): mode_of(path) for path in files} == {str(path): 0o600 for path in files}
