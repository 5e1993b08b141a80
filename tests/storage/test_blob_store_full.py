"""The local blob store on a full disk: ServerStorageFull, and nothing left behind.

The full disk is a stand-in (tests/full_disk.py), because a real full disk
needs a file system mounted by root. The `os` module of the blob store is
replaced by one whose writes fail with ENOSPC or EDQUOT once a budget of
bytes is used up.
"""

from __future__ import annotations

import errno
import uuid
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from strongroom.base.errors import ServerStorageFull
from strongroom.base.scoping import tenant_scoped_key
from strongroom.storage.blobs import LocalBlobStore
from strongroom.storage.space import BLOB_STORE_FULL
from tests.full_disk import fill_disk, uploads_folder_files

TENANT = uuid.UUID("22222222-2222-4222-8222-222222222222")
KEY = tenant_scoped_key(TENANT, "blobs", "full")
PARTIAL_KEY = tenant_scoped_key(TENANT, "uploads", "full.chunks")
CONTENT = b"0123456789" * 1000


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


def full_store_events(logs: list[dict[str, object]]) -> list[dict[str, object]]:
    return [entry for entry in logs if entry["event"] == "server_storage_full"]


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EDQUOT])
def test_writer_write_on_full_disk_removes_upload(
    store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch, error: int
) -> None:
    disk = fill_disk(monkeypatch, room=len(CONTENT) // 2, error=error)
    writer = store.writer(KEY)

    with capture_logs() as logs, pytest.raises(ServerStorageFull) as raised:
        writer.write(CONTENT)

    assert raised.value.status == 507
    assert raised.value.code == "server-storage-full"
    assert raised.value.detail == BLOB_STORE_FULL
    assert isinstance(raised.value.__cause__, OSError)
    assert raised.value.__cause__.errno == error
    assert disk.failures == 1
    assert uploads_folder_files(store.root) == []
    assert not store.exists(KEY)
    events = full_store_events(logs)
    assert len(events) == 1
    assert events[0]["log_level"] == "error"
    assert events[0]["tenant_id"] == str(TENANT)
    assert events[0]["key"] == KEY
    assert events[0]["operation"] == "write"
    assert events[0]["error"] == errno.errorcode[error]
    writer.abort()  # a second abort, as the caller's own clean-up makes, changes nothing


def test_writer_commit_failing_sync_removes_upload_and_blob(
    store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = fill_disk(monkeypatch, room=len(CONTENT), sync_fails=True)
    writer = store.writer(KEY)
    writer.write(CONTENT)

    with pytest.raises(ServerStorageFull):
        writer.commit()

    assert disk.failures == 1
    assert uploads_folder_files(store.root) == []
    assert not store.exists(KEY)


def test_writer_after_room_returns_stores_blob(
    store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = fill_disk(monkeypatch, room=10)
    with store.writer(KEY) as failed, pytest.raises(ServerStorageFull):
        failed.write(CONTENT)
    disk.free()

    with store.writer(KEY) as writer:
        writer.write(CONTENT)
        size = writer.commit()

    assert size == len(CONTENT)
    with store.reader(KEY) as reader:
        assert reader.read_at(0, size) == CONTENT
    assert uploads_folder_files(store.root) == []


def test_other_write_errors_stay_oserror(
    store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill_disk(monkeypatch, room=0, error=errno.EIO)
    writer = store.writer(KEY)

    with pytest.raises(OSError) as raised:
        writer.write(CONTENT)

    assert not isinstance(raised.value, ServerStorageFull)
    assert raised.value.errno == errno.EIO
    writer.abort()
    assert uploads_folder_files(store.root) == []


def test_partial_append_on_full_disk_appends_nothing(
    store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = fill_disk(monkeypatch, room=None)
    with store.open_partial(PARTIAL_KEY) as partial:
        partial.append(CONTENT)
        partial.sync()
        disk.room = len(CONTENT) // 3

        with pytest.raises(ServerStorageFull):
            partial.append(CONTENT)

        assert partial.size == len(CONTENT)
        assert partial.read_at(0, 2 * len(CONTENT)) == CONTENT
    assert (store.root / PARTIAL_KEY).stat().st_size == len(CONTENT)


def test_partial_sync_on_full_disk_raises_storage_full(
    store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill_disk(monkeypatch, room=len(CONTENT), sync_fails=True)
    with store.open_partial(PARTIAL_KEY) as partial:
        partial.append(CONTENT)

        with pytest.raises(ServerStorageFull):
            partial.sync()


def test_partial_publish_on_full_disk_leaves_no_blob(
    store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill_disk(monkeypatch, room=len(CONTENT), sync_fails=True)
    with store.open_partial(PARTIAL_KEY) as partial:
        partial.append(CONTENT)

        with pytest.raises(ServerStorageFull):
            partial.publish(KEY)

        assert partial.size == len(CONTENT)
    assert not store.exists(KEY)
    assert store.exists(PARTIAL_KEY)
