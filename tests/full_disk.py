"""A stand-in for the disk under the blob store filling up, for the tests of a full server storage.

A real full disk needs a small file system mounted for the test, which only
root can do. Instead, `fill_disk` replaces the `os` module that
strongroom.storage.blobs imports, and nothing else. The replacement's file
writes store at most `room` more bytes and then fail with OSError(ENOSPC),
or another errno, as write(2) does on a full disk: a short write first,
then the error. Those are os.pwrite and the writes of files that os.fdopen opens.
With `sync_fails`, os.fsync fails the same way once the room is used up,
as it does on file systems that allocate blocks late. Every other call
reaches the real `os`, so the files are real and the tests look at them.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from typing import Any

import pytest

from strongroom.storage import blobs


@dataclass
class FullDisk:
    """The room left on the stand-in disk: None for no limit, else the bytes it still takes."""

    room: int | None = None
    error: int = errno.ENOSPC
    sync_fails: bool = False
    failures: int = 0

    def take(self, requested: int) -> int:
        """Use up and return as many of the `requested` bytes as fit, or raise when none fit."""
        if self.room is None or requested == 0:
            return requested
        granted = min(requested, self.room)
        if granted == 0:
            self.fail()
        self.room -= granted
        return granted

    def fail(self) -> None:
        self.failures += 1
        raise OSError(self.error, os.strerror(self.error))

    def free(self) -> None:
        """Make room again, as an operator who deleted files would."""
        self.room = None


class _FillingFile:
    """A file opened by os.fdopen whose writes use up the disk's room."""

    def __init__(self, inner: Any, disk: FullDisk) -> None:
        self._inner = inner
        self._disk = disk

    def write(self, data: bytes | bytearray | memoryview) -> int:
        granted = self._disk.take(len(data))
        return self._inner.write(memoryview(data)[:granted])

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _FillingOs:
    """The `os` module of the blob store on the stand-in disk."""

    def __init__(self, disk: FullDisk) -> None:
        self._disk = disk

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def pwrite(self, fd: int, data: bytes | bytearray | memoryview, offset: int) -> int:
        granted = self._disk.take(len(data))
        return os.pwrite(fd, memoryview(data)[:granted], offset)

    def fdopen(self, fd: int, *args: Any, **kwargs: Any) -> _FillingFile:
        return _FillingFile(os.fdopen(fd, *args, **kwargs), self._disk)

    def fsync(self, fd: int) -> None:
        if self._disk.sync_fails and self._disk.room == 0:
            self._disk.fail()
        os.fsync(fd)


def fill_disk(
    monkeypatch: pytest.MonkeyPatch,
    room: int | None,
    error: int = errno.ENOSPC,
    sync_fails: bool = False,
) -> FullDisk:
    """Put the blob store on a stand-in disk with `room` bytes left, until the test ends."""
    disk = FullDisk(room=room, error=error, sync_fails=sync_fails)
    monkeypatch.setattr(blobs, "os", _FillingOs(disk))
    return disk


def uploads_folder_files(blob_dir: os.PathLike[str]) -> list[str]:
    """Return the names of the files in the blob store's folder of temporary uploads."""
    return sorted(os.listdir(os.path.join(blob_dir, blobs.UPLOADS_FOLDER)))
