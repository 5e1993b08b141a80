"""File objects that WsgiDAV reads downloads from and writes uploads into.

They run the same encryption code as the REST API: `read_range` decrypts only
the chunks a read needs, and `BlobUpload` encrypts an upload chunk by chunk,
so memory stays at about two chunks whatever the file size.
"""

from __future__ import annotations

from collections.abc import Iterator

from strongroom.drive.content import BlobUpload, read_range
from strongroom.drive.transfers import Download
from strongroom.interfaces.webdav.errors import dav_errors
from strongroom.storage.blobs import BlobStore


class DecryptedReader:
    """A seekable, read-only view of a file version's plaintext."""

    def __init__(self, store: BlobStore, download: Download) -> None:
        self._store = store
        self._download = download
        self._position = 0
        self._pieces: Iterator[bytes] | None = None
        self._pending = b""

    def seek(self, offset: int) -> None:
        """Move to `offset`; WsgiDAV calls this once, before the first read of a Range request."""
        self._close_pieces()
        self._position = offset
        self._pending = b""

    def read(self, size: int = -1) -> bytes:
        total = self._download.blob.size
        if size < 0:
            size = total
        if self._position >= total or size == 0:
            return b""
        if self._pieces is None:
            blob, key = self._download.blob, self._download.tenant_key
            self._pieces = read_range(self._store, blob, key, self._position, total - 1)

        gathered = bytearray(self._pending)
        while len(gathered) < size:
            with dav_errors():
                piece = next(self._pieces, None)
            if piece is None:
                break
            gathered += piece
        result, self._pending = bytes(gathered[:size]), bytes(gathered[size:])
        self._position += len(result)
        return result

    def close(self) -> None:
        self._close_pieces()

    def _close_pieces(self) -> None:
        if self._pieces is not None:
            self._pieces.close()  # type: ignore[attr-defined]
            self._pieces = None


class EncryptingWriter:
    """Feeds what WsgiDAV writes into an encrypted blob; the resource's `end_write` commits it."""

    def __init__(self, upload: BlobUpload) -> None:
        self.upload = upload

    def write(self, data: bytes) -> None:
        # Past the quota, `feed` aborts the blob and raises QuotaExceeded, which becomes a 507.
        with dav_errors():
            self.upload.feed(data)

    def close(self) -> None:
        """Do nothing: committing needs the request's outcome, which `end_write` gets."""
