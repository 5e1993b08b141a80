"""Feed a request body to blocking storage code in a worker thread while the next chunk arrives.

An upload gathers body pieces into chunks on the event loop, then hashes,
encrypts and writes each chunk in a worker thread. When the loop waited for
each chunk's feed before it received more, receiving and storing ran one
after the other, and each took about half of an upload's time. `FeedBehind`
keeps one chunk's feed running while the loop receives the next chunk.

Feeds run one at a time and in order, so the storage code receives the same
calls as before. Memory grows by one chunk per upload.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

from strongroom.base.logging import get_logger

log = get_logger(__name__)

T = TypeVar("T")


class FeedBehind:
    """Runs `feed` on each chunk in a worker thread, one chunk at a time, behind the receiving loop."""

    def __init__(self, feed: Callable[[bytes], object]) -> None:
        self._feed = feed
        self._running: asyncio.Task[object] | None = None

    async def send(self, data: bytes) -> None:
        """Wait for the previous chunk's feed, raising its error, then start feeding `data`."""
        await self.finish()
        # The task copies the request's context, and anyio passes it on to the thread.
        self._running = asyncio.ensure_future(anyio.to_thread.run_sync(self._feed, data))

    async def receive(self, receive: Callable[[], Awaitable[T]]) -> T:
        """Return what `receive()` returns, or raise the running feed's error as soon as it fails.

        A feed fails, for example, when the upload passes the quota or the maximum
        size. Noticed only at the next `send`, the error would wait for another chunk
        to arrive, and a client that paused meanwhile would get the idle timeout's 408.
        """
        running = self._running
        if running is None:
            return await receive()
        if running.done():
            await self.finish()
            return await receive()

        def cancel_on_failure(task: asyncio.Task[object]) -> None:
            if not task.cancelled() and task.exception() is not None:
                scope.cancel()

        with anyio.CancelScope() as scope:
            running.add_done_callback(cancel_on_failure)
            try:
                return await receive()
            finally:
                running.remove_done_callback(cancel_on_failure)

        # Only the failed feed cancels the scope, so finish raises the feed's error.
        await self.finish()
        raise AssertionError("the receive was cancelled, but the feed did not fail")

    async def finish(self) -> None:
        """Wait for the chunk being fed, and raise what its feed raised."""
        running, self._running = self._running, None
        if running is None:
            return

        # The storage code may be aborted once this returns, so it must not run on.
        cancelled = await _wait_through_cancellation(running)
        if cancelled is not None:
            if not running.cancelled() and running.exception() is not None:
                _log_feed_error(running.exception())
            raise cancelled
        running.result()

    async def settle(self) -> None:
        """Wait for the chunk being fed while another error ends the upload; log the feed's own error."""
        try:
            await self.finish()
        except Exception as error:  # noqa: BLE001 - logged, and the caller raises its own error
            _log_feed_error(error)


async def _wait_through_cancellation(running: asyncio.Task[object]) -> asyncio.CancelledError | None:
    """Wait until `running` is done, even when the waiting task is cancelled meanwhile.

    anyio's shield (4.16) holds off the cancellation of anyio cancel scopes, but
    not `Task.cancel()`. uvicorn (0.55) calls that past its graceful shutdown
    timeout, and `asyncio.run` on the tasks left at its end. Return such a
    cancellation, for the caller to raise once the feed is done.
    """
    cancelled: asyncio.CancelledError | None = None
    while not running.done():
        try:
            with anyio.CancelScope(shield=True):
                await asyncio.wait([running])
        except asyncio.CancelledError as error:
            cancelled = error
    return cancelled


def _log_feed_error(error: BaseException | None) -> None:
    log.warning("upload_feed_failed", error=str(error), error_type=type(error).__name__)
