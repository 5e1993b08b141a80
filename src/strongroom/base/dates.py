"""Dates and times as people read them, with the year always in four digits.

On glibc, `strftime("%Y")` drops leading zeros, so the year 1 reads as
`1-01-01`. These functions pad the year to four digits, as ISO 8601 does.
"""

from __future__ import annotations

import datetime as dt


def format_date(moment: dt.date) -> str:
    """Format a date as YYYY-MM-DD."""
    return f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"


def format_minute(moment: dt.datetime) -> str:
    """Format a time to the minute as YYYY-MM-DD HH:MM, in the time's own zone."""
    return f"{format_date(moment)} {moment.hour:02d}:{moment.minute:02d}"
