"""Feed a request body to blocking storage code in a worker thread while the next chunks arrive.

An upload gathers body pieces into chunks on the event loop, then hashes,
encrypts and writes each chunk in a worker thread. When the loop waited for
each chunk's feed before it received more, receiving and storing ran one
after the other, and each took about half of an upload's time. `FeedBehind`
lets a chunk's feed run while the loop receives the next chunk.

One drain job in the feed pool feeds the waiting chunks, one at a time and
in order, so the storage code receives the same calls as before. The job
ends when no chunk waits, so a slow client keeps no thread busy while the
loop waits for its bytes. A thread handed each chunk on its own, through
`anyio.to_thread`, cost about a fifth of the upload's CPU time in the
benchmark: a task, a capacity limiter and a future for every MiB
(docs/decisions/0037-upload-drain.md). Memory grows by `FEED_DEPTH` chunks
per upload.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import anyio

from strongroom.base.logging import get_logger
from strongroom.base.thread_pools import shared_pool

log = get_logger(__name__)

T = TypeVar("T")
Chunk = TypeVar("Chunk")

# Chunks that may wait or run behind the loop: one feeds while the loop gathers the
# next. A second gave no gain in interleaved benchmark runs, and costs memory.
FEED_DEPTH = 1
FEED_THREADS = 16


class FeedBehind(Generic[Chunk]):
    """Runs `feed` on each chunk in a worker thread, one at a time and in order, behind the loop.

    Call `send` for each chunk, `receive` around each wait for the client,
    and `finish` at the end, or `settle` when another error ends the upload.
    A feed's error stops the feeding: the chunks behind it are dropped, and
    the next `send`, `receive` or `finish` raises it.
    """

    def __init__(self, feed: Callable[[Chunk], object], depth: int = FEED_DEPTH) -> None:
        self._feed = feed
        self._depth = depth

        # Shared with the drain job, under the lock.
        self._lock = threading.Lock()
        self._waiting: deque[Chunk] = deque()
        self._draining = False
        self._dropping = False

        # Touched on the event loop only, so they need no lock.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._context: contextvars.Context | None = None
        self._room: asyncio.Semaphore | None = None
        self._idle: asyncio.Event | None = None
        self._unfinished = 0
        self._error: BaseException | None = None
        self._error_raised = False
        self._receiving: anyio.CancelScope | None = None

    async def send(self, chunk: Chunk) -> None:
        """Queue `chunk` for its feed, waiting while `depth` chunks are ahead of it.

        Cancelled while it waits, it drops the waiting chunks and lets the running
        feed end before it raises, as `settle` does.
        """
        self._raise_error()
        room, idle = self._prepare()
        try:
            await room.acquire()
        except BaseException:
            # The caller may abort the upload as soon as this raises, so no feed may run on.
            await self.settle()
            raise
        if self._error is not None:
            room.release()
            self._raise_error()

        self._unfinished += 1
        idle.clear()
        with self._lock:
            self._waiting.append(chunk)
            start, self._draining = not self._draining, True
        if start:
            shared_pool("strongroom-feed", FEED_THREADS).submit(self._drain)

    async def receive(self, receive: Callable[[], Awaitable[T]]) -> T:
        """Return what `receive()` returns, or raise a feed's error as soon as it fails.

        A feed fails, for example, when the upload passes the quota or the maximum
        size. Noticed only at the next `send`, the error would wait for another chunk
        to arrive, and a client that paused meanwhile would get the idle timeout's 408.
        """
        self._raise_error()
        if self._unfinished == 0:
            return await receive()

        with anyio.CancelScope() as scope:
            self._receiving = scope
            try:
                return await receive()
            finally:
                self._receiving = None

        # Only a failed feed cancels the scope.
        self._raise_error()
        raise AssertionError("the receive was cancelled, but no feed failed")

    async def finish(self) -> None:
        """Wait until every chunk sent is fed, and raise what a feed raised."""
        cancelled = await self._wait_until_idle()
        if cancelled is not None:
            self._log_unraised_error()
            raise cancelled
        self._raise_error()

    async def settle(self) -> None:
        """Drop the chunks still waiting and wait for the running feed, while another error
        ends the upload; log the feed's own error."""
        with self._lock:
            self._dropping = True
        cancelled = await self._wait_until_idle()
        self._log_unraised_error()
        if cancelled is not None:
            raise cancelled

    def _prepare(self) -> tuple[asyncio.Semaphore, asyncio.Event]:
        if self._room is None or self._idle is None:
            self._loop = asyncio.get_running_loop()
            # Feeds run in the request's context, as anyio.to_thread would run them.
            self._context = contextvars.copy_context()
            self._room = asyncio.Semaphore(self._depth)
            self._idle = asyncio.Event()
            self._idle.set()
        return self._room, self._idle

    def _drain(self) -> None:
        """Feed the waiting chunks in order, in a thread of the feed pool, until none waits."""
        assert self._loop is not None and self._context is not None
        while True:
            with self._lock:
                if not self._waiting:
                    self._draining = False
                    return
                chunk = self._waiting.popleft()
                dropping = self._dropping

            error: BaseException | None = None
            if not dropping:
                try:
                    self._context.run(self._feed, chunk)
                except BaseException as exc:  # noqa: BLE001 - handed to the loop, which raises it
                    error = exc
                    with self._lock:
                        self._dropping = True
            del chunk
            try:
                self._loop.call_soon_threadsafe(self._fed, error)
            except RuntimeError:
                # The loop closed under an upload cut off at shutdown, and no request waits for it.
                with self._lock:
                    self._draining = False
                return

    def _fed(self, error: BaseException | None) -> None:
        """Count one chunk done, on the loop, and pass on a feed's error."""
        assert self._room is not None and self._idle is not None
        self._unfinished -= 1
        self._room.release()
        if error is not None and self._error is None:
            self._error = error
            if self._receiving is not None:
                self._receiving.cancel()
        if self._unfinished == 0:
            self._idle.set()

    async def _wait_until_idle(self) -> asyncio.CancelledError | None:
        """Wait until no chunk waits or runs, even when the waiting task is cancelled meanwhile.

        The storage code may be aborted once this returns, so it must not run on.
        anyio's shield (4.16) holds off the cancellation of anyio cancel scopes,
        but not `Task.cancel()`. uvicorn (0.55) calls that past its graceful
        shutdown timeout, and `asyncio.run` on the tasks left at its end. Return
        such a cancellation, for the caller to raise once the feeds are done.
        """
        idle = self._idle
        cancelled: asyncio.CancelledError | None = None
        while idle is not None and not idle.is_set():
            try:
                with anyio.CancelScope(shield=True):
                    await idle.wait()
            except asyncio.CancelledError as error:
                cancelled = error
        return cancelled

    def _raise_error(self) -> None:
        if self._error is not None:
            self._error_raised = True
            raise self._error

    def _log_unraised_error(self) -> None:
        if self._error is not None and not self._error_raised:
            self._error_raised = True
            log.warning(
                "upload_feed_failed", error=str(self._error), error_type=type(self._error).__name__
            )


class ChunkGatherer:
    """Gathers body pieces into lists that hold exactly `size` bytes each, copying nothing.

    With `size` a whole number of the blob's chunks, each list joins into
    whole chunks, which the blob upload then encrypts without another copy.
    A piece that crosses a list's end is cut with memoryview slices.
    """

    def __init__(self, size: int) -> None:
        self._list_size = size
        self._pieces: list[bytes | memoryview] = []
        self.size = 0

    def add(self, piece: bytes) -> list[list[bytes | memoryview]]:
        """Keep `piece`, and return the lists it completed, oldest first."""
        completed = []
        rest: bytes | memoryview = piece
        while self.size + len(rest) >= self._list_size:
            missing = self._list_size - self.size
            if missing < len(rest):
                whole = memoryview(rest)
                self._pieces.append(whole[:missing])
                rest = whole[missing:]
            else:
                self._pieces.append(rest)
                rest = b""
            completed.append(self._pieces)
            self._pieces, self.size = [], 0
        if rest:
            self._pieces.append(rest)
            self.size += len(rest)
        return completed

    def rest(self) -> list[bytes | memoryview]:
        """Return the pieces of the unfinished list, and forget them."""
        pieces, self._pieces, self.size = self._pieces, [], 0
        return pieces
