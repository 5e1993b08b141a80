"""Read-ahead of response bodies: order, bounds, errors, closing and the request's context."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import threading
import time
from collections.abc import Callable, Iterator

import anyio
import pytest

from strongroom.interfaces.api import read_ahead
from strongroom.interfaces.api.read_ahead import ReadAhead

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")


class Pieces:
    """A generator of numbered pieces that records what a worker made and when it was closed."""

    def __init__(self, count: int, size: int = 10, fail_at: int | None = None) -> None:
        self.count = count
        self.size = size
        self.fail_at = fail_at
        self.made = 0
        self.closed = threading.Event()
        self.threads: set[str] = set()
        self.request_ids: set[str] = set()

    def __iter__(self) -> Iterator[bytes]:
        try:
            for index in range(self.count):
                self.threads.add(threading.current_thread().name)
                self.request_ids.add(request_id.get())
                if index == self.fail_at:
                    raise ValueError(f"piece {index} is damaged")
                self.made += 1
                yield index.to_bytes(2, "big") * (self.size // 2)
        finally:
            self.closed.set()


async def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "condition not met within 10 s"
        await asyncio.sleep(0.005)


async def take_all(ahead: ReadAhead) -> list[bytes]:
    taken = []
    while (piece := await ahead.next()) is not None:
        taken.append(piece)
    return taken


def test_pieces_arrive_in_order() -> None:
    source = Pieces(50)

    async def scenario() -> list[bytes]:
        return await take_all(ReadAhead(iter(source), limit=25))

    taken = asyncio.run(scenario())

    assert [int.from_bytes(piece[:2], "big") for piece in taken] == list(range(50))
    assert all(len(piece) == 10 for piece in taken)
    assert source.closed.is_set()


def test_pieces_are_made_in_worker_threads() -> None:
    source = Pieces(5)

    async def scenario() -> None:
        await take_all(ReadAhead(iter(source)))

    asyncio.run(scenario())

    assert source.threads
    assert all(name.startswith("read-ahead") for name in source.threads)


def test_reads_ahead_up_to_limit_unasked() -> None:
    source = Pieces(100, size=10)

    async def scenario() -> tuple[int, int]:
        ahead = ReadAhead(iter(source), limit=40)
        await wait_until(lambda: source.made >= 4)
        await asyncio.sleep(0.05)
        before = source.made
        await ahead.next()
        await wait_until(lambda: source.made >= 5)
        await asyncio.sleep(0.05)
        after = source.made
        ahead.close()
        return before, after

    before, after = asyncio.run(scenario())

    # Four pieces of 10 bytes fill a limit of 40, and taking one makes room for one more.
    assert before == 4
    assert after == 5


def test_error_follows_pieces_before_it() -> None:
    source = Pieces(10, fail_at=3)

    async def scenario() -> tuple[list[bytes], BaseException]:
        ahead = ReadAhead(iter(source))
        taken = [await ahead.next() for _ in range(3)]
        with pytest.raises(ValueError) as raised:
            await ahead.next()
        return [piece for piece in taken if piece is not None], raised.value

    taken, error = asyncio.run(scenario())

    assert [int.from_bytes(piece[:2], "big") for piece in taken] == [0, 1, 2]
    assert str(error) == "piece 3 is damaged"


def test_error_raised_again_on_next_call() -> None:
    source = Pieces(2, fail_at=0)

    async def scenario() -> int:
        ahead = ReadAhead(iter(source))
        failures = 0
        for _attempt in range(2):
            with pytest.raises(ValueError):
                await ahead.next()
            failures += 1
        return failures

    assert asyncio.run(scenario()) == 2


def test_close_while_idle_closes_now() -> None:
    source = Pieces(100, size=10)

    async def scenario() -> bool:
        ahead = ReadAhead(iter(source), limit=20)
        await wait_until(lambda: source.made >= 2)
        await asyncio.sleep(0.05)
        ahead.close()
        return source.closed.is_set()

    assert asyncio.run(scenario())


def test_close_during_worker_waits_for_it() -> None:
    """A client that goes away while the next piece is made must not close the reader under it.

    Closing a generator that a worker thread runs fails, and closing the blob
    file under a running read could crash, so the worker closes it when done.
    """
    entered, release = threading.Event(), threading.Event()
    events: list[str] = []

    def pieces() -> Iterator[bytes]:
        try:
            entered.set()
            release.wait(10)
            events.append("made")
            yield b"second"
            events.append("made again")
            yield b"third"
        finally:
            events.append("closed")

    async def scenario() -> None:
        ahead = ReadAhead(pieces())
        task = asyncio.create_task(ahead.next())
        await anyio.to_thread.run_sync(entered.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        ahead.close()
        assert events == []
        release.set()
        await wait_until(lambda: "closed" in events)

    asyncio.run(scenario())

    assert events == ["made", "closed"]


def test_close_stops_reading_ahead() -> None:
    source = Pieces(10)

    async def scenario() -> int:
        ahead = ReadAhead(iter(source), limit=10)
        await wait_until(lambda: source.closed.is_set() or source.made >= 1)
        ahead.close()
        await wait_until(source.closed.is_set)
        return source.made

    # With a limit of one piece, the worker made one and stopped before closing.
    assert asyncio.run(scenario()) == 1


def test_worker_sees_request_context() -> None:
    source = Pieces(3)

    async def scenario() -> None:
        request_id.set("request-7")
        await take_all(ReadAhead(iter(source), limit=10))

    asyncio.run(scenario())

    assert source.request_ids == {"request-7"}


def test_large_piece_still_read_ahead() -> None:
    """A piece larger than the limit, as with 16 MiB chunks, still gets one made ahead."""
    source = Pieces(5, size=100)

    async def scenario() -> int:
        ReadAhead(iter(source), limit=40)
        await wait_until(lambda: source.made >= 1)
        await asyncio.sleep(0.05)
        return source.made

    assert asyncio.run(scenario()) == 1


class Unmeasured(bytes):
    """A piece whose first `len` fails, as a MemoryError could while a job adds it to the queue."""

    measured = False

    def __len__(self) -> int:
        if not Unmeasured.measured:
            Unmeasured.measured = True
            raise MemoryError("no memory left to add the piece")
        return super().__len__()


def test_error_after_next_reaches_loop() -> None:
    """A job that fails after `next` returned must end the download with that error.

    The executor keeps a job's exception in a future that no code reads, so
    without care the loop would wait for ever, or send what the job left.
    """

    def pieces() -> Iterator[bytes]:
        yield b"first"
        yield Unmeasured(b"second")
        yield b"third"

    async def scenario() -> list[bytes]:
        ahead = ReadAhead(pieces())
        taken = []
        with pytest.raises(MemoryError):
            while (piece := await asyncio.wait_for(ahead.next(), 5)) is not None:
                taken.append(piece)
        return taken

    assert asyncio.run(scenario()) == [b"first"]


def test_closed_loop_still_closes_pieces() -> None:
    """A job still running when its event loop closes, as when the server stops, closes the pieces.

    The reader was closed while the job ran, which left `pieces` to the job,
    and the job cannot wake a loop that is gone.
    """
    waiting, go_on, closed = threading.Event(), threading.Event(), threading.Event()

    def pieces() -> Iterator[bytes]:
        try:
            yield b"first"
            waiting.set()
            go_on.wait(10)
            yield b"second"
        finally:
            closed.set()

    async def scenario() -> ReadAhead:
        ahead = ReadAhead(pieces())
        assert await ahead.next() == b"first"
        task = asyncio.create_task(ahead.next())
        await anyio.to_thread.run_sync(waiting.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        ahead.close()
        return ahead

    # Kept here, so that `pieces` is not closed by the garbage collector instead.
    ahead = asyncio.run(scenario())
    go_on.set()

    assert closed.wait(5), "the pieces were never closed"
    assert ahead is not None


class Source:
    """An iterator that is not a generator, holding a resource until its `close`."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.go_on = threading.Event()
        self.closed = threading.Event()

    def __iter__(self) -> Source:
        return self

    def __next__(self) -> bytes:
        self.entered.set()
        self.go_on.wait(10)
        raise StopIteration

    def close(self) -> None:
        self.closed.set()


def test_close_during_last_job_closes_pieces() -> None:
    """Closed while the job finds the end of `pieces`, the reader still closes them once."""
    source = Source()

    async def scenario() -> None:
        ahead = ReadAhead(source)
        await anyio.to_thread.run_sync(source.entered.wait, 10)
        ahead.close()
        source.go_on.set()
        await anyio.to_thread.run_sync(source.closed.wait, 5)

    asyncio.run(scenario())

    assert source.closed.is_set(), "the pieces were never closed"


def test_next_after_close_returns_none() -> None:
    """After `close`, `next` returns None at once instead of waiting for a job that never runs."""
    source = Pieces(100, size=10)

    async def scenario() -> bytes | None:
        ahead = ReadAhead(iter(source), limit=20)
        await ahead.next()
        ahead.close()
        return await asyncio.wait_for(ahead.next(), 5)

    assert asyncio.run(scenario()) is None


def test_shared_budget_limits_other_readers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(read_ahead.shared_budget, "limit", read_ahead.shared_budget.used + 40)
    first, second = Pieces(100, size=10), Pieces(100, size=10)

    async def scenario() -> tuple[int, int, int]:
        greedy = ReadAhead(iter(first), limit=40)
        await wait_until(lambda: first.made >= 4)
        other = ReadAhead(iter(second), limit=40)
        await wait_until(lambda: second.made >= 1)
        await asyncio.sleep(0.05)
        made = (first.made, second.made)
        greedy.close()
        await other.next()
        await wait_until(lambda: second.made >= 5)
        await asyncio.sleep(0.05)
        other.close()
        return made[0], made[1], second.made

    first_made, second_while_full, second_after_close = asyncio.run(scenario())

    # The first reader fills the budget, so the second gets only the one piece every
    # reader is given, and reads ahead in full once the first lets its pieces go.
    assert first_made == 4
    assert second_while_full == 1
    assert second_after_close == 5


def test_shared_budget_freed_by_unclosed_reader() -> None:
    used_before = read_ahead.shared_budget.used
    source = Pieces(20)

    async def scenario() -> int:
        reader = ReadAhead(iter(source))
        await wait_until(lambda: source.made >= 20)
        await asyncio.sleep(0.05)
        assert reader is not None
        return read_ahead.shared_budget.used

    while_alive = asyncio.run(scenario())
    gc.collect()

    assert while_alive == used_before + 200
    assert read_ahead.shared_budget.used == used_before


def test_shared_budget_returns_to_zero() -> None:
    used_before = read_ahead.shared_budget.used
    sources = [Pieces(20), Pieces(20, fail_at=5), Pieces(20)]

    async def scenario() -> None:
        whole = ReadAhead(iter(sources[0]))
        await take_all(whole)
        failing = ReadAhead(iter(sources[1]))
        with pytest.raises(ValueError):
            await take_all(failing)
        closed = ReadAhead(iter(sources[2]))
        await wait_until(lambda: sources[2].made >= 3)
        closed.close()
        await wait_until(sources[2].closed.is_set)

    asyncio.run(scenario())

    assert read_ahead.shared_budget.used == used_before
