"""Inline readers keep what they read until another connection commits to the file."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from strongroom.storage.inline_readers import InlineReaders, ReadCache


@pytest.fixture
def database(tmp_path: Path) -> str:
    path = tmp_path / "store.db"
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        connection.execute("INSERT INTO notes (body) VALUES ('first')")
    return str(path)


class CountingRead:
    """A read that returns the notes as bytes and counts how often it ran."""

    def __init__(self) -> None:
        self.runs = 0

    def __call__(self, connection: sqlite3.Connection) -> bytes:
        self.runs += 1
        rows = connection.execute("SELECT body FROM notes ORDER BY id").fetchall()
        return ",".join(body for (body,) in rows).encode()


def write(database: str, statement: str) -> None:
    with sqlite3.connect(database) as connection:
        connection.execute(statement)


def test_unchanged_file_is_read_once(database: str) -> None:
    reader = InlineReaders().reader(database)
    read = CountingRead()

    values = [reader.cached("notes", read) for _ in range(5)]

    assert values == [b"first"] * 5
    assert read.runs == 1


def test_commit_of_another_connection_is_read_again(database: str) -> None:
    reader = InlineReaders().reader(database)
    read = CountingRead()
    reader.cached("notes", read)

    write(database, "INSERT INTO notes (body) VALUES ('second')")

    assert reader.cached("notes", read) == b"first,second"
    assert read.runs == 2


def test_commit_of_another_process_is_read_again(database: str) -> None:
    reader = InlineReaders().reader(database)
    read = CountingRead()
    reader.cached("notes", read)

    script = (
        "import sqlite3, sys\n"
        "with sqlite3.connect(sys.argv[1]) as connection:\n"
        "    connection.execute(\"UPDATE notes SET body = 'changed'\")\n"
    )
    subprocess.run([sys.executable, "-c", script, database], check=True, timeout=60)

    assert reader.cached("notes", read) == b"changed"


def test_commit_during_the_read_is_not_served_stale(database: str) -> None:
    reader = InlineReaders().reader(database)

    def read_then_commit(connection: sqlite3.Connection) -> bytes:
        value = CountingRead()(connection)
        # Lands after the read but before the value is kept.
        write(database, "UPDATE notes SET body = 'late'")
        return value

    assert reader.cached("notes", read_then_commit) == b"first"
    assert reader.cached("notes", CountingRead()) == b"late"


def test_keys_are_kept_apart(database: str) -> None:
    reader = InlineReaders().reader(database)

    reader.cached(("tenant-a", "docs"), lambda _connection: b"a")
    reader.cached(("tenant-b", "docs"), lambda _connection: b"b")

    assert reader.cached(("tenant-a", "docs"), CountingRead()) == b"a"
    assert reader.cached(("tenant-b", "docs"), CountingRead()) == b"b"


def test_reopened_file_starts_with_nothing_kept(database: str, tmp_path: Path) -> None:
    readers = InlineReaders(capacity=1)
    first = readers.reader(database)
    first.cached("notes", lambda _connection: b"kept")

    other = tmp_path / "other.db"
    sqlite3.connect(other).close()
    readers.reader(str(other))  # closes the reader of `database`, the least recently used
    again = readers.reader(database)
    read = CountingRead()

    assert again is not first
    assert again.cached("notes", read) == b"first"
    assert read.runs == 1


def test_cache_drops_least_recently_used_above_budget() -> None:
    cache = ReadCache(budget=10, max_value=10)
    cache.put("a", 1, b"aaaa")
    cache.put("b", 1, b"bbbb")
    assert cache.get("a", 1) == b"aaaa"  # now the most recently used

    cache.put("c", 1, b"cccc")

    assert cache.get("b", 1) is None
    assert cache.get("a", 1) == b"aaaa"
    assert cache.get("c", 1) == b"cccc"
    assert cache.size == 8


def test_cache_skips_values_over_max() -> None:
    cache = ReadCache(budget=100, max_value=4)

    cache.put("big", 1, b"12345")

    assert cache.get("big", 1) is None
    assert cache.size == 0


def test_cache_drops_value_of_an_older_version() -> None:
    cache = ReadCache()
    cache.put("a", 1, b"old")

    assert cache.get("a", 2) is None
    assert cache.get("a", 1) is None
    assert cache.size == 0


def test_cache_forgets_one_readers_values() -> None:
    cache = ReadCache()
    cache.put((1, "a"), 1, b"one")
    cache.put((2, "a"), 1, b"two")

    cache.forget(1)

    assert cache.get((1, "a"), 1) is None
    assert cache.get((2, "a"), 1) == b"two"
    assert cache.size == 3
