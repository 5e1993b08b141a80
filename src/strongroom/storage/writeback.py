"""Early writeback: asking the kernel to start writing a file's dirty pages while more arrive.

A blob is synced before its version is committed. Left alone, the kernel
starts writing dirty pages only once they are about 30 seconds old or past
its dirty-memory thresholds. The final fsync of a large upload then writes
nearly all of it at once, which took about a third of a second per GiB on
the benchmark machine. `Writeback` starts the writing of each stretch once it
is complete, with sync_file_range(2) and SYNC_FILE_RANGE_WRITE, so the disk
works while the upload still receives, and the final fsync finds little
left to write. PostgreSQL's `backend_flush_after` does the same for the
same reason.

The call only starts writing and reports nothing a later fsync would not,
so any failure just stops the hints for that file; fsync still decides
whether the bytes are stored. Where the call does not exist (outside Linux),
nothing is hinted.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Callable

from strongroom.base.logging import get_logger

log = get_logger(__name__)

# Dirty bytes a file gathers before their writing is started. Stretches of a few
# MiB keep the disk busy without a system call for every chunk.
WRITEBACK_BYTES = 8 * 1024 * 1024

# From <linux/fs.h>: start writing the dirty pages of the range, without waiting.
SYNC_FILE_RANGE_WRITE = 2


def _load_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        function = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function  # type: ignore[no-any-return]


_sync_file_range = _load_sync_file_range()


class Writeback:
    """Starts the writeback of one file's bytes as they are written, `WRITEBACK_BYTES` at a time.

    Call `written(end)` with the offset the written bytes reached. A
    resumable upload that was cut back calls it with a smaller offset, and
    the next stretch then starts there.
    """

    def __init__(self, descriptor: int, start: int = 0) -> None:
        self._descriptor = descriptor
        self._started = start
        self._enabled = _sync_file_range is not None

    def written(self, end: int) -> None:
        if not self._enabled:
            return
        self._started = min(self._started, end)
        if end - self._started < WRITEBACK_BYTES:
            return
        self._start(self._started, end - self._started)
        self._started = end

    def _start(self, offset: int, length: int) -> None:
        assert _sync_file_range is not None
        # ctypes lets go of the GIL for the call, which may wait while the disk's queue is full.
        if _sync_file_range(self._descriptor, offset, length, SYNC_FILE_RANGE_WRITE) != 0:
            self._enabled = False
            log.debug("writeback_hint_failed", errno=ctypes.get_errno())
