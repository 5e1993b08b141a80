"""Read-only SQLite connections on an event loop's own thread, and what they read, kept while unchanged.

A short read on the loop's thread costs less than handing it to a worker
thread (docs/decisions/0006-folder-listing-hot-path.md). A value computed
from such a read, such as a folder listing's JSON, can be kept and served
again for as long as SQLite reports that no connection has committed a change
to the file since it was read (docs/decisions/0027-listing-cache.md).
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
from collections.abc import Callable, Hashable

# The byte budget of one thread's cache, and the max size of one value. An entry of a listing
# takes about 250 bytes of JSON, so 1 MiB is a folder of about 4,000 entries.
CACHE_BUDGET_BYTES = 8 * 1024 * 1024
MAX_VALUE_BYTES = 1024 * 1024


class ReadCache:
    """Values of one thread's readers, the least recently used dropped first above a byte budget.

    Each value is kept with the data version of its reader's database at
    the time of the read, and is only served while that version holds.
    """

    def __init__(self, budget: int = CACHE_BUDGET_BYTES, max_value: int = MAX_VALUE_BYTES) -> None:
        self.budget = budget
        self.max_value = max_value
        self.size = 0
        self._values: dict[Hashable, tuple[int, bytes]] = {}

    def get(self, key: Hashable, version: int) -> bytes | None:
        entry = self._values.pop(key, None)
        if entry is None:
            return None
        if entry[0] != version:
            self.size -= len(entry[1])
            return None
        # Reinserted last, so the dictionary runs from least to most recently used.
        self._values[key] = entry
        return entry[1]

    def put(self, key: Hashable, version: int, value: bytes) -> None:
        if len(value) > self.max_value:
            return
        previous = self._values.pop(key, None)
        if previous is not None:
            self.size -= len(previous[1])
        self._values[key] = (version, value)
        self.size += len(value)
        while self.size > self.budget:
            oldest = next(iter(self._values))
            self.size -= len(self._values.pop(oldest)[1])

    def forget(self, serial: int) -> None:
        """Drop the values of a reader whose connection is closed."""
        for key in [key for key in self._values if key[0] == serial]:  # type: ignore[index]
            self.size -= len(self._values.pop(key)[1])


class InlineReader:
    """One thread's read-only connection to one database file."""

    __slots__ = ("_cache", "connection", "serial")

    def __init__(self, connection: sqlite3.Connection, serial: int, cache: ReadCache) -> None:
        self.connection = connection
        self.serial = serial
        self._cache = cache

    def cached(self, key: Hashable, read: Callable[[sqlite3.Connection], bytes]) -> bytes:
        """Return what `read` returned for `key`, reading again when the file has changed since.

        `read` must depend on the database's content and `key` alone. SQLite
        changes the data version whenever another connection commits to the
        file, from this process or another. This connection is read-only, so
        every change comes from another connection and shows in the version. The version is taken before the read: a commit
        landing during the read changes it, and the value is read again next
        time rather than served stale.
        """
        version = self.connection.execute("PRAGMA data_version").fetchone()[0]
        full_key = (self.serial, key)
        value = self._cache.get(full_key, version)
        if value is None:
            value = read(self.connection)
            self._cache.put(full_key, version, value)
        return value


class InlineReaders:
    """Plain SQLite connections for short reads on an event loop's own thread.

    Each thread gets its own connection per database file, opened on first
    use, so a read never waits for an engine's pool, which worker threads may
    have drained. The connections are read-only (`PRAGMA query_only`), and in
    WAL mode a read sees the last committed state without waiting for a
    writer. Above `capacity` files per thread, the least recently used
    connection is closed.
    """

    def __init__(self, capacity: int = 200, cache_bytes: int = CACHE_BUDGET_BYTES) -> None:
        self.capacity = capacity
        self.cache_bytes = cache_bytes
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        # Serials are never reused, so a value can never be served to a later connection.
        self._serials = itertools.count()

    def reader(self, database: str) -> InlineReader:
        readers = self._readers()
        reader = readers.pop(database, None)
        if reader is None:
            reader = InlineReader(self._open(database), next(self._serials), self._local.cache)
        # Reinserted last, so the dictionary runs from least to most recently used.
        readers[database] = reader
        if len(readers) > self.capacity:
            oldest = readers.pop(next(iter(readers)))
            self._local.cache.forget(oldest.serial)
            self._close(oldest.connection)
        return reader

    def _readers(self) -> dict[str, InlineReader]:
        readers = getattr(self._local, "by_file", None)
        if readers is None:
            readers = self._local.by_file = {}
            self._local.cache = ReadCache(self.cache_bytes)
        return readers

    def _open(self, database: str) -> sqlite3.Connection:
        # Autocommit: a single SELECT reads one consistent snapshot without BEGIN and COMMIT.
        connection = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA query_only=ON")
        connection.execute("PRAGMA busy_timeout=30000")
        with self._lock:
            self._opened.append(connection)
        return connection

    def _close(self, connection: sqlite3.Connection) -> None:
        with self._lock:
            self._opened.remove(connection)
        connection.close()

    def close(self) -> None:
        with self._lock:
            opened, self._opened = self._opened, []
        for connection in opened:
            connection.close()
