"""Read ahead of a response body: make its next pieces in worker threads while the loop sends.

A download decrypts each chunk in a worker thread. When the event loop asked
for one chunk at a time, the worker started only once the previous chunk was
in the socket, so reading, decryption and sending ran one after the other.
Here a worker keeps up to `READ_AHEAD_BYTES` of pieces ready, and the event
loop sends from that queue.

A worker job stops as soon as the queue is full, so a slow client keeps
memory but no thread busy. The event loop starts the next job when it takes a piece.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections import deque
from collections.abc import Iterator

from strongroom.base.logging import get_logger
from strongroom.base.thread_pools import shared_pool

log = get_logger(__name__)

# Four of the default 1 MiB chunks. A blob with larger chunks still gets one
# piece ahead, as a piece is made whenever the queue contains less than this.
READ_AHEAD_BYTES = 4 * 1024 * 1024

# The bytes that all downloads of the process keep ready together before each is held
# to one piece ahead, as before reading ahead. Without it, 40 downloads to stalled
# clients would keep 160 MiB ready.
SHARED_READ_AHEAD_BYTES = 32 * 1024 * 1024

# Jobs are short (at most READ_AHEAD_BYTES of reading and decrypting), so a few
# threads serve many downloads. More threads help only when the blob store
# waits on the network.
READ_AHEAD_THREADS = 16



class _SharedBudget:
    """The bytes that all read-ahead queues of the process keep ready, against one limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def has_room(self) -> bool:
        with self._lock:
            return self.used < self.limit

    def add(self, size: int) -> None:
        with self._lock:
            self.used += size


shared_budget = _SharedBudget(SHARED_READ_AHEAD_BYTES)


class ReadAhead:
    """The pieces of a blocking iterator, made ahead in worker threads for one event loop.

    Only the event loop calls `next` and `close`. At most one worker job runs
    `pieces` at a time. An error raised by `pieces` is raised by `next` after
    the pieces made before it. `close` closes `pieces` (which releases the blob
    file it keeps open) at once, or in the worker once its job stops.
    """

    def __init__(self, pieces: Iterator[bytes], limit: int = READ_AHEAD_BYTES) -> None:
        self._pieces = pieces
        self._limit = limit
        self._loop = asyncio.get_running_loop()
        self._executor = shared_pool("read-ahead", READ_AHEAD_THREADS)

        # The lock guards every field below. Pieces are taken by the loop and
        # added by a worker, and `_running` is true while a worker job runs.
        self._lock = threading.Lock()
        self._ready: deque[bytes] = deque()
        self._ready_bytes = 0
        self._running = False
        self._exhausted = False
        self._closed = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None

        self._start()

    def __del__(self) -> None:
        # A response whose body never started is never closed, so its pieces would
        # count against the shared budget for good.
        if not self._closed:
            shared_budget.add(-self._ready_bytes)

    async def next(self) -> bytes | None:
        """Return the next piece, None after the last or once closed; raise what `pieces` raised."""
        while True:
            with self._lock:
                if self._closed:
                    return None
                if self._ready:
                    piece = self._ready.popleft()
                    self._ready_bytes -= len(piece)
                    shared_budget.add(-len(piece))
                    break
                if self._error is not None:
                    raise self._error
                if self._exhausted:
                    return None
                waiter = self._waiter = self._loop.create_future()
            self._start()
            await waiter

        self._start()
        return piece

    def close(self) -> None:
        """Stop reading ahead and close `pieces`, now or when the running job stops."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._ready.clear()
            shared_budget.add(-self._ready_bytes)
            self._ready_bytes = 0
            if self._running:
                return
        self._close_pieces()

    def _start(self) -> None:
        with self._lock:
            if self._running or self._exhausted or self._closed:
                return
            if not self._has_room():
                return
            self._running = True
        # A copy per job, because two threads cannot be inside one context, and
        # the request's context carries the tenant and request ids for logs.
        context = contextvars.copy_context()
        try:
            self._executor.submit(context.run, self._fill)
        except BaseException as exc:  # noqa: BLE001 - the loop raises it from `next`
            # The pool refuses jobs once the interpreter shuts down.
            self._stop(error=exc)

    def _fill(self) -> None:
        """Make pieces in a worker thread until the queue is full, `pieces` ends or fails.

        Every way out goes through `_stop`. An exception left to the executor
        would stay in a future that no code reads. The loop would then wait
        for a piece that never comes, and `pieces` would never be closed.
        """
        ended = False
        error: BaseException | None = None
        try:
            while self._wants_more():
                piece = next(self._pieces, None)
                if piece is None:
                    ended = True
                    break
                self._add(piece)
        except BaseException as exc:  # noqa: BLE001 - the loop raises it from `next`
            error = exc
        self._stop(ended=ended, error=error)

    def _wants_more(self) -> bool:
        with self._lock:
            return not self._closed and self._has_room()

    def _has_room(self) -> bool:
        """Return whether one more piece may be made; call with the lock held."""
        if self._ready_bytes == 0:
            return True
        return self._ready_bytes < self._limit and shared_budget.has_room()

    def _add(self, piece: bytes) -> None:
        size = len(piece)
        with self._lock:
            if self._closed:
                return
            self._ready.append(piece)
            self._ready_bytes += size
            shared_budget.add(size)
            waiter, self._waiter = self._waiter, None
        self._wake(waiter)

    def _stop(self, ended: bool = False, error: BaseException | None = None) -> None:
        """Record how a job ended, wake the loop, and close `pieces` if `close` left them to it.

        Whether the job or `close` closes `pieces` is decided under the lock,
        together with `_running`, so exactly one of them does.
        """
        with self._lock:
            self._running = False
            if ended or error is not None:
                self._exhausted = True
                self._error = error
            waiter, self._waiter = self._waiter, None
            left_to_job = self._closed
        self._wake(waiter)
        if left_to_job:
            self._close_pieces()

    def _wake(self, waiter: asyncio.Future[None] | None) -> None:
        if waiter is None:
            return
        try:
            self._loop.call_soon_threadsafe(_wake, waiter)
        except RuntimeError:
            # The loop closed while the job ran, as when the server stops, so nothing waits.
            pass

    def _close_pieces(self) -> None:
        try:
            close_pieces(self._pieces)
        except Exception as exc:  # noqa: BLE001 - a worker has no caller to raise it to
            log.warning("read_ahead_close_failed", error=str(exc))


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def close_pieces(pieces: Iterator[bytes]) -> None:
    """Close a generator of pieces, which releases the blob file it keeps open."""
    close = getattr(pieces, "close", None)
    if close is not None:
        close()
