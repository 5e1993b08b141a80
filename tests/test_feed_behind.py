"""Feeding an upload behind the receiving loop: order, overlap, errors and cancellation."""

from __future__ import annotations

import threading

import anyio
import pytest
from structlog.testing import capture_logs

from strongroom.interfaces.api.feed_behind import FeedBehind


class Recorder:
    """A feed that records its chunks, and can be held until the test lets it go."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.started = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.fail_on: bytes | None = None

    def __call__(self, data: bytes) -> None:
        self.started.set()
        assert self.release.wait(10), "the test never let the feed go"
        if data == self.fail_on:
            raise ValueError(f"cannot store {data!r}")
        self.chunks.append(data)


def test_chunks_fed_in_order() -> None:
    recorder = Recorder()

    async def upload() -> None:
        feed = FeedBehind(recorder)
        for number in range(20):
            await feed.send(b"chunk %d" % number)
        await feed.finish()

    anyio.run(upload)

    assert recorder.chunks == [b"chunk %d" % number for number in range(20)]


def test_send_returns_while_feed_runs() -> None:
    recorder = Recorder()
    recorder.release.clear()

    async def upload() -> list[bytes]:
        feed = FeedBehind(recorder)
        await feed.send(b"first")
        # send returned with the feed still held, so the loop could receive the next chunk.
        await anyio.to_thread.run_sync(recorder.started.wait, 10)
        fed_while_held = list(recorder.chunks)
        recorder.release.set()
        await feed.finish()
        return fed_while_held

    fed_while_held = anyio.run(upload)

    assert fed_while_held == []
    assert recorder.chunks == [b"first"]


def test_feed_error_raised_by_next_send() -> None:
    recorder = Recorder()
    recorder.fail_on = b"bad"

    async def upload() -> None:
        feed = FeedBehind(recorder)
        await feed.send(b"bad")
        await feed.send(b"after")

    with pytest.raises(ValueError, match="cannot store"):
        anyio.run(upload)

    assert recorder.chunks == []


def test_feed_error_raised_by_finish() -> None:
    recorder = Recorder()
    recorder.fail_on = b"last"

    async def upload() -> None:
        feed = FeedBehind(recorder)
        await feed.send(b"first")
        await feed.send(b"last")
        await feed.finish()

    with pytest.raises(ValueError, match="cannot store"):
        anyio.run(upload)

    assert recorder.chunks == [b"first"]


def test_settle_logs_feed_error() -> None:
    recorder = Recorder()
    recorder.fail_on = b"bad"

    async def upload() -> None:
        feed = FeedBehind(recorder)
        await feed.send(b"bad")
        await feed.settle()

    with capture_logs() as logs:
        anyio.run(upload)

    failures = [entry for entry in logs if entry["event"] == "upload_feed_failed"]
    assert len(failures) == 1
    assert failures[0]["error_type"] == "ValueError"


def test_cancelled_upload_waits_for_feed() -> None:
    recorder = Recorder()
    recorder.release.clear()

    async def upload() -> bool:
        feed = FeedBehind(recorder)
        with anyio.CancelScope() as scope:
            await feed.send(b"held")
            await anyio.to_thread.run_sync(recorder.started.wait, 10)
            scope.cancel()
            try:
                await anyio.sleep(10)
            finally:
                # A cancelled request settles its feed before the upload is aborted.
                threading.Timer(0.2, recorder.release.set).start()
                await feed.settle()
        return recorder.release.is_set()

    released_before_settled = anyio.run(upload)

    assert released_before_settled
    assert recorder.chunks == [b"held"]
