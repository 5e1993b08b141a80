"""Blob stores: where encrypted blob bytes live, by key.

A blob store stores opaque bytes under keys that `tenant_scoped_key` builds,
with no notion of tenants or encryption. Writes go to a temporary upload
first and appear under their key only when `commit` has synced and renamed
them, so a process killed mid-write leaves at most a stale upload, never a
partial blob under a real key.

A partial blob is the exception: a blob that grows over several requests,
such as a resumable upload. It lives under a key of its own, one writer at a
time locks it, and `publish` gives the finished bytes the blob's real key as
a second name, so they stay under the partial blob's key, and locked, until
the caller has recorded them (docs/decisions/0013-resumable-upload-storage.md).

When the disk or the file system's quota is full (ENOSPC, EDQUOT), every write
raises ServerStorageFull instead of OSError, once it has removed what the
write left: a temporary upload, bytes appended in part, a published name
(docs/decisions/0036-server-storage-full.md).
"""

from __future__ import annotations

import fcntl
import os
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from strongroom.storage.space import blob_store_full_as_error
from strongroom.storage.writeback import Writeback

UPLOADS_FOLDER = ".uploads"
PRIVATE_FOLDER_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
# Tries to lock a partial blob whose file other writers delete or replace meanwhile.
LOCK_ATTEMPTS = 5


class BlobMissing(Exception):
    """No blob is stored under the key."""


class BlobWriter(ABC):
    @abstractmethod
    def write(self, data: bytes | bytearray | memoryview) -> None: ...

    @abstractmethod
    def commit(self) -> int:
        """Make the blob durable and visible under its key; return its stored size."""

    @abstractmethod
    def abort(self) -> None:
        """Discard everything written; safe to call after commit or twice."""

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        # Leaving the block without commit discards the upload; abort is a no-op after commit.
        self.abort()


class PartialBlobBusy(Exception):
    """Another writer has locked the partial blob."""


class PartialBlob(ABC):
    """A blob that grows over several requests, written by one holder of its lock at a time.

    Bytes appended are durable only after `sync`. The lock lasts until
    `close`, and ends with the process that held it.
    """

    size: int

    @abstractmethod
    def append(self, data: bytes | bytearray | memoryview) -> None: ...

    @abstractmethod
    def read_at(self, offset: int, length: int) -> bytes: ...

    @abstractmethod
    def truncate(self, size: int) -> None: ...

    @abstractmethod
    def sync(self) -> None: ...

    @abstractmethod
    def publish(self, key: str) -> int:
        """Make the bytes durable and visible as the blob `key` too; return their size.

        The bytes keep the partial blob's key and its lock, so a crash before
        the caller records the blob leaves them where the next writer finds
        them. The caller deletes the partial blob's key once the blob is recorded.
        """

    @abstractmethod
    def unpublish(self, key: str) -> None:
        """Remove the blob `key` that `publish` made, keeping the bytes under the partial blob's key.

        Also for a blob a crashed writer published: the key belongs to this
        partial blob alone until a row records it.
        """

    @abstractmethod
    def adopt(self, key: str) -> None:
        """Move the blob `key` back to the partial blob's key, in place of its bytes, and lock it.

        For the bytes an earlier release moved to the blob's key before a crash.
        Raises PartialBlobBusy while a writer still has them locked.
        """

    @abstractmethod
    def close(self) -> None:
        """Release the lock; safe to call twice."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        self.close()


class BlobReader(ABC):
    size: int

    @abstractmethod
    def read_at(self, offset: int, length: int) -> bytes: ...

    def read_into(self, offset: int, buffer: bytearray | memoryview) -> int:
        """Read up to len(buffer) bytes at `offset` into `buffer`; return how many were read."""
        data = self.read_at(offset, len(buffer))
        buffer[: len(data)] = data
        return len(data)

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> BlobReader:
        return self

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        self.close()


@dataclass(frozen=True)
class StoredBlob:
    key: str
    size: int
    modified: float


@dataclass(frozen=True)
class StaleUpload:
    name: str
    size: int
    age_seconds: float


class BlobStore(ABC):
    @abstractmethod
    def writer(self, key: str) -> BlobWriter: ...

    @abstractmethod
    def reader(self, key: str) -> BlobReader: ...

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove a blob; a missing blob is not an error."""

    @abstractmethod
    def iter_blobs(self, prefix: str = "") -> Iterator[StoredBlob]:
        """Committed blobs below a folder-like prefix, with size and modification time."""

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        return (blob.key for blob in self.iter_blobs(prefix))

    @abstractmethod
    def iter_stale_uploads(self, older_than_seconds: float) -> Iterator[StaleUpload]: ...

    @abstractmethod
    def remove_stale_upload(self, name: str) -> None: ...

    @abstractmethod
    def check_writable(self) -> None:
        """Raise OSError when the store cannot take new blobs."""

    @abstractmethod
    def open_partial(self, key: str) -> PartialBlob:
        """Open the partial blob `key`, empty if it is new, and lock it.

        Raises PartialBlobBusy when another writer has locked it. `delete(key)`
        removes a partial blob like any other.
        """


class LocalBlobWriter(BlobWriter):
    """A blob written to a temporary file of the uploads folder, renamed to its key by `commit`.

    When the store is full, `write` and `commit` discard the blob before
    they raise ServerStorageFull, so no temporary file and no blob under the
    key stays behind.
    """

    def __init__(self, key: str, temporary: Path, final: Path) -> None:
        self._key = key
        self._temporary = temporary
        self._final = final
        with blob_store_full_as_error(key, "create"):
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
        self._file = os.fdopen(descriptor, "wb", buffering=0)  # closed in commit or abort
        self._writeback = Writeback(descriptor)
        self._size = 0
        self._done = False
        self._renamed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        with blob_store_full_as_error(self._key, "write", self.abort):
            while view:
                written = self._file.write(view)
                if written is None:
                    raise OSError(f"short write to {self._temporary}")
                view = view[written:]
                self._size += written
        self._writeback.written(self._size)

    def commit(self) -> int:
        with blob_store_full_as_error(self._key, "commit", self._discard):
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            make_private_folder(self._final.parent)
            os.replace(self._temporary, self._final)
            self._renamed = True
            _fsync_directory(self._final.parent)
        self._done = True
        return self._size

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        self._file.close()
        self._temporary.unlink(missing_ok=True)

    def _discard(self) -> None:
        """Abort a failed commit, and remove the blob too if the rename happened before the failure."""
        self.abort()
        if self._renamed:
            self._final.unlink(missing_ok=True)


class LocalPartialBlob(PartialBlob):
    """A partial blob as one file, locked with flock(2).

    The kernel drops the lock when the descriptor closes, also when the
    process dies, so a crashed writer never leaves the blob locked.
    """

    def __init__(self, key: str, path: Path, path_of_key: Callable[[str], Path]) -> None:
        self._key = key
        self._path = path
        self._path_of_key = path_of_key
        self._fd = -1
        with blob_store_full_as_error(key, "create"):
            make_private_folder(path.parent)
        for _attempt in range(LOCK_ATTEMPTS):
            with blob_store_full_as_error(key, "create"):
                descriptor = os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE)
            _lock_or_close(descriptor, path)
            # The file may have been deleted or replaced between open and flock, and then
            # the lock holds a file that no longer has the key: open the one that has it.
            if _names(descriptor, path):
                self._fd = descriptor
                break
            os.close(descriptor)
        else:
            raise PartialBlobBusy(str(path))
        self.size = os.fstat(self._fd).st_size
        self._writeback = Writeback(self._fd, start=self.size)

    def append(self, data: bytes | bytearray | memoryview) -> None:
        """Append all of `data`, or, when the store is full, none of it."""
        view = memoryview(data)
        start = self.size
        with blob_store_full_as_error(self._key, "append", lambda: self.truncate(start)):
            while view:
                written = os.pwrite(self._fd, view, self.size)
                view = view[written:]
                self.size += written
        self._writeback.written(self.size)

    def read_at(self, offset: int, length: int) -> bytes:
        return os.pread(self._fd, length, offset)

    def truncate(self, size: int) -> None:
        os.ftruncate(self._fd, size)
        self.size = size

    def sync(self) -> None:
        with blob_store_full_as_error(self._key, "sync"):
            os.fsync(self._fd)

    def publish(self, key: str) -> int:
        final = self._path_of_key(key)
        self.sync()
        # The name `key` is removed again when a later step fails for want of room.
        with blob_store_full_as_error(key, "publish", lambda: final.unlink(missing_ok=True)):
            make_private_folder(final.parent)
            try:
                os.link(self._path, final)
            except FileExistsError:
                # Left by a writer that crashed before its blob was recorded: no row names it.
                final.unlink()
                os.link(self._path, final)
            _fsync_directory(final.parent)
        return self.size

    def unpublish(self, key: str) -> None:
        final = self._path_of_key(key)
        final.unlink(missing_ok=True)
        with blob_store_full_as_error(key, "unpublish"):
            _fsync_directory(final.parent)

    def adopt(self, key: str) -> None:
        source = self._path_of_key(key)
        try:
            descriptor = os.open(source, os.O_RDWR)
        except FileNotFoundError:
            raise BlobMissing(str(source)) from None
        _lock_or_close(descriptor, source)
        try:
            with blob_store_full_as_error(key, "adopt"):
                os.replace(source, self._path)
                _fsync_directory(self._path.parent)
                _fsync_directory(source.parent)
        except BaseException:
            os.close(descriptor)
            raise
        os.close(self._fd)
        self._fd = descriptor
        self.size = os.fstat(descriptor).st_size

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class LocalBlobReader(BlobReader):
    def __init__(self, path: Path) -> None:
        try:
            self._fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise BlobMissing(str(path)) from None
        self.size = os.fstat(self._fd).st_size

    def read_at(self, offset: int, length: int) -> bytes:
        return os.pread(self._fd, length, offset)

    def read_into(self, offset: int, buffer: bytearray | memoryview) -> int:
        return os.preadv(self._fd, [buffer], offset)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class LocalBlobStore(BlobStore):
    """Blobs as files below one folder, each key a relative path."""

    def __init__(self, root: Path) -> None:
        self.root = root
        make_private_folder(self.root / UPLOADS_FOLDER)

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if not key or any(part in {"", ".", ".."} for part in parts) or parts[0] == UPLOADS_FOLDER:
            raise ValueError(f"invalid blob key {key!r}")
        return self.root.joinpath(*parts)

    def writer(self, key: str) -> BlobWriter:
        temporary = self.root / UPLOADS_FOLDER / f"{uuid.uuid4().hex}.part"
        return LocalBlobWriter(key, temporary, self._path(key))

    def reader(self, key: str) -> BlobReader:
        return LocalBlobReader(self._path(key))

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def iter_blobs(self, prefix: str = "") -> Iterator[StoredBlob]:
        start = self._path(prefix.rstrip("/")) if prefix else self.root
        for directory, folders, files in os.walk(start):
            if Path(directory) == self.root:
                folders[:] = [name for name in folders if name != UPLOADS_FOLDER]
            for name in files:
                path = Path(directory, name)
                try:
                    stat = path.stat()
                except FileNotFoundError:
                    continue  # deleted since the folder was read
                yield StoredBlob(path.relative_to(self.root).as_posix(), stat.st_size, stat.st_mtime)

    def iter_stale_uploads(self, older_than_seconds: float) -> Iterator[StaleUpload]:
        now = time.time()
        with os.scandir(self.root / UPLOADS_FOLDER) as entries:
            for entry in entries:
                if not entry.name.endswith(".part"):
                    continue
                try:
                    stat = entry.stat()
                except FileNotFoundError:
                    continue  # committed or aborted since the folder was read
                age = now - stat.st_mtime
                if age >= older_than_seconds:
                    yield StaleUpload(entry.name, stat.st_size, age)

    def remove_stale_upload(self, name: str) -> None:
        if "/" in name or not name.endswith(".part"):
            raise ValueError(f"invalid upload name {name!r}")
        (self.root / UPLOADS_FOLDER / name).unlink(missing_ok=True)

    def check_writable(self) -> None:
        probe = self.root / UPLOADS_FOLDER / f"probe-{uuid.uuid4().hex}.part"
        probe.write_bytes(b"")
        probe.unlink()

    def open_partial(self, key: str) -> PartialBlob:
        return LocalPartialBlob(key, self._path(key), self._path)


def make_private_folder(path: Path) -> None:
    """Create the folder and its missing parents, readable by the owner alone.

    Blob contents are encrypted, but folder and file names show tenant and
    blob ids, and the blob folder may lie outside the private data folder.
    `Path.mkdir(parents=True)` would give the parents the umask's mode.
    """
    missing = []
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_FOLDER_MODE)
        except FileExistsError:
            pass


def _lock_or_close(descriptor: int, path: Path) -> None:
    """Lock the open file without waiting, or close it and raise PartialBlobBusy."""
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise PartialBlobBusy(str(path)) from None


def _names(descriptor: int, path: Path) -> bool:
    """Tell whether `path` still names the open file."""
    try:
        named = path.stat()
    except FileNotFoundError:
        return False
    opened = os.fstat(descriptor)
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


def _fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def open_blob_store(location: Path) -> BlobStore:
    return LocalBlobStore(location)
