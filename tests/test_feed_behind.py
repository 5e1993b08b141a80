"""Feeding an upload behind the receiving loop: order, overlap, errors and cancellation."""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest
from starlette.requests import ClientDisconnect
from structlog.testing import capture_logs

from strongroom.base import log_context
from strongroom.drive.content import BlobUpload
from strongroom.interfaces.api import uploads
from strongroom.interfaces.api.feed_behind import ChunkGatherer, FeedBehind
from strongroom.interfaces.api.files import FEED_CHUNKS
from strongroom.runtime import Runtime
from strongroom.tenancy.context import current_tenant
from tests.conftest import TEST_CHUNK_SIZE, AppSwitch, Cast, LiveServer
from tests.full_disk import uploads_folder_files

FEED_BYTES = FEED_CHUNKS * TEST_CHUNK_SIZE


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


def test_feed_error_raised_by_send_that_waits() -> None:
    recorder = Recorder()
    recorder.fail_on = b"bad"
    sent: list[bytes] = []

    async def upload() -> None:
        feed = FeedBehind(recorder, depth=2)
        for chunk in (b"bad", b"dropped", b"refused"):
            # The third send waits for room, which the failed feed makes.
            await feed.send(chunk)
            sent.append(chunk)

    with pytest.raises(ValueError, match="cannot store"):
        anyio.run(upload)

    assert sent == [b"bad", b"dropped"]
    assert recorder.chunks == []


def test_no_more_than_depth_chunks_behind() -> None:
    recorder = Recorder()
    recorder.release.clear()
    sent: list[bytes] = []

    async def upload() -> None:
        feed = FeedBehind(recorder, depth=2)
        async with anyio.create_task_group() as group:

            async def send_all() -> None:
                for number in range(4):
                    await feed.send(b"chunk %d" % number)
                    sent.append(b"chunk %d" % number)

            group.start_soon(send_all)
            await anyio.to_thread.run_sync(recorder.started.wait, 10)
            for _ in range(20):
                await anyio.lowlevel.checkpoint()
            # The feed of chunk 0 is held: chunks 0 and 1 fill the room, chunk 2 waits.
            assert sent == [b"chunk 0", b"chunk 1"]
            recorder.release.set()
        await feed.finish()

    anyio.run(upload)

    assert recorder.chunks == [b"chunk %d" % number for number in range(4)]


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


def test_feed_error_ends_receive() -> None:
    recorder = Recorder()
    recorder.fail_on = b"over the quota"

    async def upload() -> None:
        feed = FeedBehind(recorder)
        await feed.send(b"over the quota")
        silent_client = anyio.Event()
        # The feed's error, not the timeout, ends the wait for a client that sends nothing.
        with anyio.fail_after(5):
            await feed.receive(silent_client.wait)

    with pytest.raises(ValueError, match="cannot store"):
        anyio.run(upload)


def test_receive_returns_while_feed_runs() -> None:
    recorder = Recorder()
    recorder.release.clear()

    async def next_piece() -> bytes:
        return b"next"

    async def upload() -> tuple[bytes, list[bytes]]:
        feed = FeedBehind(recorder)
        await feed.send(b"first")
        piece = await feed.receive(next_piece)
        fed_while_receiving = list(recorder.chunks)
        recorder.release.set()
        await feed.finish()
        return piece, fed_while_receiving

    piece, fed_while_receiving = anyio.run(upload)

    assert piece == b"next"
    assert fed_while_receiving == []
    assert recorder.chunks == [b"first"]


def test_settle_logs_feed_error() -> None:
    recorder = Recorder()
    recorder.release.clear()
    recorder.fail_on = b"bad"

    async def upload() -> None:
        feed = FeedBehind(recorder)
        await feed.send(b"bad")
        await anyio.to_thread.run_sync(recorder.started.wait, 10)
        # The feed fails while settle waits for it.
        threading.Timer(0.1, recorder.release.set).start()
        await feed.settle()

    with capture_logs() as logs:
        anyio.run(upload)

    failures = [entry for entry in logs if entry["event"] == "upload_feed_failed"]
    assert len(failures) == 1
    assert failures[0]["error_type"] == "ValueError"


def test_settle_drops_waiting_chunks() -> None:
    recorder = Recorder()
    recorder.release.clear()

    async def upload() -> None:
        feed = FeedBehind(recorder, depth=2)
        await feed.send(b"running")
        await anyio.to_thread.run_sync(recorder.started.wait, 10)
        await feed.send(b"waiting")
        threading.Timer(0.1, recorder.release.set).start()
        await feed.settle()

    anyio.run(upload)

    # The running feed ended; the chunk behind it was never fed, as the upload is aborted.
    assert recorder.chunks == [b"running"]


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


def test_task_cancel_waits_for_feed() -> None:
    # uvicorn's graceful shutdown timeout and the end of asyncio.run call Task.cancel(),
    # which passes anyio's shield. The feed must still end before the upload is aborted.
    recorder = Recorder()
    recorder.release.clear()

    async def upload(feed: FeedBehind) -> None:
        await feed.send(b"held")
        try:
            await asyncio.sleep(10)
        finally:
            await feed.settle()

    async def serve() -> tuple[list[bytes], bool]:
        task = asyncio.ensure_future(upload(FeedBehind(recorder)))
        await anyio.to_thread.run_sync(recorder.started.wait, 10)
        task.cancel()  # reaches the sleep
        await asyncio.sleep(0.05)
        task.cancel()  # reaches settle, which waits for the held feed
        threading.Timer(0.2, recorder.release.set).start()
        try:
            await task
        except asyncio.CancelledError:
            pass
        return list(recorder.chunks), task.cancelled()

    fed_when_cancelled, cancelled = asyncio.run(serve())

    assert fed_when_cancelled == [b"held"]
    assert cancelled


def test_task_cancel_retrieves_feed_error() -> None:
    recorder = Recorder()
    recorder.release.clear()
    recorder.fail_on = b"bad"
    unretrieved: list[dict[str, object]] = []

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, context: unretrieved.append(context))
        feed = FeedBehind(recorder)
        await feed.send(b"bad")
        task = asyncio.ensure_future(feed.finish())
        await anyio.to_thread.run_sync(recorder.started.wait, 10)
        task.cancel()
        threading.Timer(0.1, recorder.release.set).start()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Long enough for a feed left running to fail, unseen, before the loop ends.
        await asyncio.sleep(0.3)
        gc.collect()

    with capture_logs() as logs:
        asyncio.run(serve())

    failures = [entry for entry in logs if entry["event"] == "upload_feed_failed"]
    assert unretrieved == []
    assert len(failures) == 1
    assert failures[0]["error_type"] == "ValueError"


def record_slow_feeds_and_aborts(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[list[str], threading.Event]:
    """Make every blob feed take 0.3 s; return the feeds' and aborts' events and a first-feed flag."""
    events: list[str] = []
    feeding = threading.Event()
    real_feed, real_abort = BlobUpload.feed, BlobUpload.abort

    def slow_feed(upload: BlobUpload, data: bytes) -> None:
        events.append("feed started")
        feeding.set()
        time.sleep(0.3)
        real_feed(upload, data)
        events.append("feed ended")

    def recorded_abort(upload: BlobUpload) -> None:
        events.append("abort")
        real_abort(upload)

    monkeypatch.setattr(BlobUpload, "feed", slow_feed)
    monkeypatch.setattr(BlobUpload, "abort", recorded_abort)
    return events, feeding


def test_cut_off_put_aborts_after_feed(
    client: httpx.Client,
    live_server: LiveServer,
    runtime: Runtime,
    cast: Cast,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alice = cast.acme_member
    events, feeding = record_slow_feeds_and_aborts(monkeypatch)
    blob_dir = runtime.settings.resolved_blob_dir
    files_before = {path for path in blob_dir.rglob("*") if path.is_file()}
    head = (
        f"PUT {alice.url('files/cut.bin')} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {alice.token}\r\nContent-Length: {2 * FEED_BYTES}\r\n\r\n"
    )

    with socket.create_connection(("127.0.0.1", live_server.port)) as connection:
        connection.sendall(head.encode() + os.urandom(FEED_BYTES + 100))
        assert feeding.wait(10), "the first chunk was never fed"
    # The connection closed while the first chunk's feed ran.
    live_server.wait_until_idle()

    assert events == ["feed started", "feed ended", "abort"]
    assert {path for path in blob_dir.rglob("*") if path.is_file()} == files_before
    assert client.get(alice.url("files/cut.bin"), headers=alice.headers).status_code == 404


def test_send_cancelled_while_waiting_waits_for_feed() -> None:
    # A send that waits for room while a chunk is fed may be cancelled. The caller may
    # abort the upload once send raises, so the running feed must have ended by then.
    recorder = Recorder()
    recorder.release.clear()

    async def upload() -> bool:
        feed = FeedBehind(recorder)
        await feed.send(b"held")
        await anyio.to_thread.run_sync(recorder.started.wait, 10)
        with anyio.CancelScope() as scope:
            asyncio.get_running_loop().call_later(0.05, scope.cancel)
            threading.Timer(0.3, recorder.release.set).start()
            await feed.send(b"waits for room")
        return recorder.release.is_set()

    released_before_send_raised = anyio.run(upload)

    assert released_before_send_raised
    assert recorder.chunks == [b"held"]


class FakeBody:
    """A request whose body is one chunk, then a short piece, then a client that went away."""

    def __init__(self, chunk_size: int) -> None:
        self._chunk_size = chunk_size

    async def stream(self) -> AsyncIterator[bytes]:
        yield b"c" * self._chunk_size
        yield b"tail"
        raise ClientDisconnect()


class HeldAppend:
    """An UploadAppend stand-in whose feeds wait until the test lets them go."""

    def __init__(self) -> None:
        self.recorder = Recorder()
        self.recorder.release.clear()

    def feed(self, data: bytes) -> None:
        self.recorder(data)


@pytest.mark.parametrize("cancellation", ["anyio scope", "Task.cancel"])
def test_cancelled_tus_cut_off_waits_for_feed(cancellation: str) -> None:
    # After a PATCH's client went away, its last piece is sent behind the chunk being fed.
    # Cancelled there, the request discards the upload, which must wait for that feed.
    held_append = HeldAppend()
    recorder = held_append.recorder
    append: Any = held_append
    scopes: list[anyio.CancelScope] = []

    async def patch() -> None:
        body: Any = FakeBody(TEST_CHUNK_SIZE)
        with anyio.CancelScope() as scope:
            scopes.append(scope)
            await uploads._feed_body(body, append, TEST_CHUNK_SIZE, idle_timeout=10)

    async def serve() -> bool:
        task = asyncio.ensure_future(patch())
        await anyio.to_thread.run_sync(recorder.started.wait, 10)
        await asyncio.sleep(0.05)  # the cut-off's send now waits for room
        if cancellation == "anyio scope":
            scopes[0].cancel()
        else:
            task.cancel()
        threading.Timer(0.3, recorder.release.set).start()
        try:
            await task
        except (asyncio.CancelledError, ClientDisconnect):
            pass
        return recorder.release.is_set()

    released_before_returned = asyncio.run(serve())

    assert released_before_returned
    assert recorder.chunks[0] == b"c" * TEST_CHUNK_SIZE


class CancellableApp:
    """Serves each request inside an anyio cancel scope that the test can cancel."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.scopes: list[anyio.CancelScope] = []
        self.tasks: list[asyncio.Task[Any]] = []
        self.loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        self.tasks.append(task)
        with anyio.CancelScope() as cancel_scope:
            self.scopes.append(cancel_scope)
            await self.app(scope, receive, send)

    def cancel(self, cancellation: str) -> None:
        """Cancel the first request's scope or task, from the test's thread."""
        assert self.loop is not None
        target = self.scopes[0].cancel if cancellation == "anyio scope" else self.tasks[0].cancel
        self.loop.call_soon_threadsafe(target)


@pytest.mark.parametrize("cancellation", ["anyio scope", "Task.cancel"])
def test_cancelled_put_aborts_after_feed(
    cast: Cast,
    runtime: Runtime,
    live_server: LiveServer,
    shared_server: tuple[LiveServer, AppSwitch],
    monkeypatch: pytest.MonkeyPatch,
    cancellation: str,
) -> None:
    alice = cast.acme_member
    switch = shared_server[1]
    app = CancellableApp(switch.app)
    switch.app = app
    events, feeding = record_slow_feeds_and_aborts(monkeypatch)
    head = (
        f"PUT {alice.url('files/cancelled.bin')} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {alice.token}\r\nContent-Length: {2 * FEED_BYTES}\r\n\r\n"
    )

    with socket.create_connection(("127.0.0.1", live_server.port)) as connection:
        connection.sendall(head.encode() + os.urandom(FEED_BYTES + 100))
        assert feeding.wait(10), "the first chunk was never fed"
        app.cancel(cancellation)
        # The connection stays open until the request has ended.
        deadline = time.monotonic() + 10
        while "abort" not in events and time.monotonic() < deadline:
            time.sleep(0.01)
    live_server.wait_until_idle()

    # Cancelled while the feed ran, the upload still aborts its blob, after the feed.
    assert events == ["feed started", "feed ended", "abort"]
    assert uploads_folder_files(runtime.settings.resolved_blob_dir) == []


def in_pieces(body: bytes, sizes: list[int]) -> Iterator[bytes]:
    """Yield `body` in pieces of the given sizes, in turn; httpx sends them chunked."""
    start = 0
    for number in range(len(body)):
        if start >= len(body):
            return
        size = sizes[number % len(sizes)]
        yield body[start : start + size]
        start += size


@pytest.mark.parametrize(
    "size",
    [0, 1, FEED_BYTES - 1, FEED_BYTES, FEED_BYTES + 1, 2 * FEED_BYTES + TEST_CHUNK_SIZE // 2 + 3],
)
def test_put_stores_feed_boundaries(client: httpx.Client, cast: Cast, size: int) -> None:
    # Pieces that cross feeds and chunks at odd places; the last chunk written carries
    # the last flag, or the download fails to decrypt.
    alice = cast.acme_member
    body = os.urandom(size)
    sizes = [FEED_BYTES + 1, 3, TEST_CHUNK_SIZE - 1]

    stored = client.put(
        alice.url("files/b.bin"), content=in_pieces(body, sizes), headers=alice.headers
    )
    downloaded = client.get(alice.url("files/b.bin"), headers=alice.headers)

    assert stored.status_code == 201, stored.text
    assert downloaded.status_code == 200
    assert downloaded.content == body


def test_feed_runs_in_request_context(
    client: httpx.Client, cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = cast.acme_member
    seen: list[tuple[str | None, dict[str, Any]]] = []
    real_feed = BlobUpload.feed

    def spying_feed(upload: BlobUpload, data: bytes) -> None:
        tenant = current_tenant.get()
        seen.append((tenant.slug if tenant else None, dict(log_context.current())))
        real_feed(upload, data)

    monkeypatch.setattr(BlobUpload, "feed", spying_feed)
    response = client.put(
        alice.url("files/c.bin"), content=os.urandom(2 * FEED_BYTES + 5), headers=alice.headers
    )

    assert response.status_code == 201
    assert [slug for slug, _fields in seen] == ["acme"] * 3
    assert all("request_id" in fields for _slug, fields in seen)


def test_gatherer_cuts_exact_chunks() -> None:
    gatherer = ChunkGatherer(10)
    body = bytes(range(47))
    completed: list[bytes] = []

    for start, end in ((0, 3), (3, 25), (25, 30), (30, 40), (40, 47)):
        completed += [b"".join(chunk) for chunk in gatherer.add(body[start:end])]

    assert completed == [body[0:10], body[10:20], body[20:30], body[30:40]]
    assert gatherer.size == 7
    assert b"".join(gatherer.rest()) == body[40:]
    assert gatherer.size == 0
    assert gatherer.rest() == []


def test_gatherer_slices_without_copying() -> None:
    gatherer = ChunkGatherer(4)
    piece = b"abcdefghij"

    first, second = gatherer.add(piece)

    # The cut pieces are views of the piece received, not copies of its bytes.
    assert all(isinstance(part, memoryview) and part.obj is piece for part in first + second)
    assert [bytes(b"".join(first)), bytes(b"".join(second))] == [b"abcd", b"efgh"]
    assert b"".join(gatherer.rest()) == b"ij"
