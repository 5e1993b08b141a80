"""Engines keep statement parameters out of the text of their errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from strongroom.storage.db import make_engine

SECRET = "hash-of-a-token-0123456789abcdef"


def error_text(url: str) -> str:
    engine = make_engine(url)
    try:
        with engine.connect() as connection, pytest.raises(SQLAlchemyError) as raised:
            connection.execute(
                text("SELECT * FROM missing_table WHERE token = :token"), {"token": SECRET}
            )
    finally:
        engine.dispose()
    return str(raised.value)


def test_sqlite_error_hides_parameters(tmp_path: Path) -> None:
    message = error_text(f"sqlite:///{tmp_path / 'engine.db'}")

    assert "missing_table" in message
    assert SECRET not in message


def test_postgres_error_hides_parameters(postgres_shared_database: str) -> None:
    message = error_text(postgres_shared_database)

    assert "missing_table" in message
    assert SECRET not in message
