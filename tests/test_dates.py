"""Dates as people read them: the year always has four digits."""

from __future__ import annotations

import datetime as dt

from strongroom.base.dates import format_date, format_minute


def test_format_date_pads_year() -> None:
    assert format_date(dt.date(1, 1, 1)) == "0001-01-01"
    assert format_date(dt.date(2026, 12, 5)) == "2026-12-05"


def test_format_minute_pads_year() -> None:
    moment = dt.datetime(1, 2, 3, 4, 5, 59, tzinfo=dt.UTC)

    assert format_minute(moment) == "0001-02-03 04:05"
    assert format_minute(dt.datetime(9999, 12, 31, 23, 59)) == "9999-12-31 23:59"
