"""A bare Starlette endpoint doing one indexed SQLite lookup: the baseline for small requests.

`bench.transfer` serves it with uvicorn, configured as `strongroom serve`
configures it (one process, access log off), and compares Strongroom's folder
listing rate with this endpoint's rate. The database path comes from the
environment variable BENCH_BASELINE_DB; `create_database` fills it first.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

DATABASE_VARIABLE = "BENCH_BASELINE_DB"


def item_key(number: int) -> str:
    return f"item-{number:05d}"


def create_database(path: Path, rows: int = 1000) -> None:
    """Create the table the endpoint reads: `rows` rows under a text primary key."""
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE items (key TEXT PRIMARY KEY, name TEXT NOT NULL, size INTEGER NOT NULL)"
        )
        connection.executemany(
            "INSERT INTO items VALUES (?, ?, ?)",
            [(item_key(number), f"file-{number}.txt", number * 100) for number in range(rows)],
        )
    connection.close()


def _open_database() -> sqlite3.Connection | None:
    location = os.environ.get(DATABASE_VARIABLE)
    if not location:
        return None
    # The endpoint runs in the event loop thread only; the flag lets uvicorn import this
    # module in one thread and serve from another.
    return sqlite3.connect(location, check_same_thread=False)


_connection = _open_database()


async def read_item(request: Request) -> JSONResponse:
    if _connection is None:
        return JSONResponse({"detail": f"set {DATABASE_VARIABLE} to the database path"}, 500)
    row = _connection.execute(
        "SELECT key, name, size FROM items WHERE key = ?", (request.path_params["key"],)
    ).fetchone()
    if row is None:
        return JSONResponse({"detail": "no such item"}, 404)
    return JSONResponse({"key": row[0], "name": row[1], "size": row[2]})


app = Starlette(routes=[Route("/items/{key}", read_item)])
