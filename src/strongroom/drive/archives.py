"""Zip archives written as a stream, for downloading a folder through a link.

`zipfile` writes to any object with `write`: given one that cannot seek, it
puts each entry's CRC and sizes in a data descriptor after the entry's data,
instead of going back to its header. So the archive goes out piece by piece
as the files are decrypted, and neither the archive nor any file in it is
ever held whole in memory or written to disk. Entries are stored
uncompressed: shared files are often compressed already, and deflating would
make the CPU the limit of the download. Zip64 records are added where an
entry or the archive passes 4 GiB.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

# The earliest time a zip header can hold (MS-DOS dates start in 1980).
EARLIEST = dt.datetime(1980, 1, 1)


@dataclass(frozen=True)
class ArchiveEntry:
    """A file or folder to put in an archive; a folder's name ends with "/" and has no content."""

    name: str
    modified: dt.datetime
    size: int = 0
    content: Callable[[], Iterator[bytes]] | None = None


class _Sink:
    """A write-only file that keeps what zipfile writes until the stream takes it."""

    def __init__(self) -> None:
        self._pieces: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._pieces.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> list[bytes]:
        """Return what was written since the last call, as one piece, or nothing."""
        if not self._pieces:
            return []
        data = b"".join(self._pieces)
        self._pieces.clear()
        return [data]


def entry_name(name: str) -> str:
    """Return a path for a zip entry: a backslash in a file name becomes "_".

    The zip format separates folders with "/" only, but some extractors also
    split on "\\", so a name such as "..\\x" could be written outside the
    folder the archive is extracted into.
    """
    return name.replace("\\", "_")


def stream_zip(entries: Iterable[ArchiveEntry]) -> Iterator[bytes]:
    """Yield the bytes of a zip archive of the entries, about one content piece at a time."""
    sink = _Sink()
    with zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_STORED) as archive:
        for entry in entries:
            info = zipfile.ZipInfo(entry_name(entry.name), date_time=_zip_time(entry.modified))
            if entry.content is None:
                # A directory entry: its name ends with "/", and the MS-DOS directory bit is set.
                info.external_attr = (0o40755 << 16) | 0x10
                archive.writestr(info, b"")
            else:
                # The declared size decides whether the entry needs Zip64 records.
                info.file_size = entry.size
                pieces = entry.content()
                with archive.open(info, mode="w") as target, _closing(pieces):
                    for piece in pieces:
                        target.write(piece)
                        yield from sink.take()
            yield from sink.take()
    yield from sink.take()


@contextlib.contextmanager
def _closing(pieces: Iterator[bytes]) -> Iterator[None]:
    """Close a generator of content when the stream stops early, so that it releases its blob."""
    try:
        yield
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()


def _zip_time(moment: dt.datetime) -> tuple[int, int, int, int, int, int]:
    local = max(moment.replace(tzinfo=None), EARLIEST)
    return (local.year, local.month, local.day, local.hour, local.minute, local.second)
