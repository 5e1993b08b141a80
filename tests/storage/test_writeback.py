"""Early writeback: which stretches of a blob get their writing started, and failures ignored."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from strongroom.storage import writeback
from strongroom.storage.blobs import LocalBlobStore
from strongroom.storage.writeback import WRITEBACK_BYTES, Writeback

pytestmark = pytest.mark.skipif(
    writeback._sync_file_range is None, reason="sync_file_range(2) exists on Linux only"
)


class Spy:
    """A sync_file_range stand-in that records each range, then calls the real one or fails."""

    def __init__(self, fail: bool = False) -> None:
        self.ranges: list[tuple[int, int]] = []
        self.fail = fail
        self.real = writeback._sync_file_range

    def __call__(self, descriptor: int, offset: int, length: int, flags: int) -> int:
        self.ranges.append((offset, length))
        if self.fail:
            return -1
        assert self.real is not None
        return self.real(descriptor, offset, length, flags)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    recorder = Spy()
    monkeypatch.setattr(writeback, "_sync_file_range", recorder)
    return recorder


def test_blob_writer_starts_each_full_stretch(tmp_path: Path, spy: Spy) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    piece = os.urandom(WRITEBACK_BYTES // 4 + 3)

    with store.writer("tenant/blobs/aa/blob") as writer:
        for _ in range(9):
            writer.write(piece)
        writer.commit()

    # Nine pieces of a quarter stretch and 3 bytes: two stretches full, the rest left to fsync.
    first_end = 4 * len(piece)
    assert spy.ranges == [(0, first_end), (first_end, 4 * len(piece))]
    assert (tmp_path / "blobs" / "tenant/blobs/aa/blob").stat().st_size == 9 * len(piece)


def test_failed_hint_stops_hints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    failing = Spy(fail=True)
    monkeypatch.setattr(writeback, "_sync_file_range", failing)
    store = LocalBlobStore(tmp_path / "blobs")

    with store.writer("tenant/blobs/aa/blob") as writer:
        for _ in range(3):
            writer.write(os.urandom(WRITEBACK_BYTES))
        size = writer.commit()

    # The one failed hint changed nothing; fsync in commit still stored every byte.
    assert failing.ranges == [(0, WRITEBACK_BYTES)]
    assert size == 3 * WRITEBACK_BYTES


def test_written_back_offset_follows_a_cut(tmp_path: Path, spy: Spy) -> None:
    path = tmp_path / "partial"
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        hints = Writeback(descriptor)
        os.pwrite(descriptor, os.urandom(WRITEBACK_BYTES), 0)
        hints.written(WRITEBACK_BYTES)
        # A resumable upload cut back to 1 MiB writes from there again.
        os.ftruncate(descriptor, 1024 * 1024)
        hints.written(1024 * 1024)
        os.pwrite(descriptor, os.urandom(WRITEBACK_BYTES), 1024 * 1024)
        hints.written(1024 * 1024 + WRITEBACK_BYTES)
    finally:
        os.close(descriptor)

    assert spy.ranges == [(0, WRITEBACK_BYTES), (1024 * 1024, WRITEBACK_BYTES)]
