"""HTTP `Range` and conditional request headers (RFC 9110, sections 13 and 14)."""

from __future__ import annotations

import datetime as dt
import re
from email.utils import parsedate_to_datetime

from strongroom.base.errors import RangeNotSatisfiable

RANGE_PATTERN = re.compile(r"bytes=(\d*)-(\d*)")
# Nineteen digits reach past any real file size, so a longer position is read as this
# one: still beyond the end, without converting thousands of digits to an integer.
MAX_DIGITS = 19
BEYOND_ANY_FILE = 10**MAX_DIGITS


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Return the inclusive byte range a `Range` header requests, or None to send the whole file.

    Multiple ranges and malformed headers are ignored, as RFC 9110 allows, and
    the whole file is sent; a well-formed single range that misses the file
    raises RangeNotSatisfiable.
    """
    if not header:
        return None
    match = RANGE_PATTERN.fullmatch(header.strip().replace(" ", ""))
    if match is None:
        return None
    first, last = (_position(text) for text in match.groups())
    if first is None and last is None:
        return None

    if first is None:
        suffix = last or 0
        if suffix == 0 or size == 0:
            raise _unsatisfiable(header, size)
        return max(size - suffix, 0), size - 1

    start = first
    # Only a last-pos given before first-pos makes the header invalid; an open end
    # past a short file is unsatisfiable instead.
    if last is not None and last < start:
        return None
    if start >= size:
        raise _unsatisfiable(header, size)
    end = last if last is not None else size - 1
    return start, min(end, size - 1)


def _position(digits: str) -> int | None:
    if not digits:
        return None
    return int(digits) if len(digits) <= MAX_DIGITS else BEYOND_ANY_FILE


def _unsatisfiable(header: str, size: int) -> RangeNotSatisfiable:
    return RangeNotSatisfiable(
        f"the range {header!r} lies outside the file of {size} bytes", size=size
    )


def parse_etag_list(header: str | None, strong: bool = False) -> list[str] | None:
    """Split an If-Match or If-None-Match header into entity tags; None when absent.

    Weak tags lose their `W/` for the weak comparison of If-None-Match. With
    `strong`, for If-Match, they are left out, because a weak tag never matches
    under the strong comparison (RFC 9110, section 8.8.3.2).
    """
    if header is None:
        return None
    tags = []
    for part in header.split(","):
        tag = part.strip()
        if tag.startswith("W/"):
            if strong:
                continue
            tag = tag[2:]
        if tag:
            tags.append(tag)
    return tags


def parse_http_date(header: str | None) -> dt.datetime | None:
    """Read an HTTP-date, such as If-Unmodified-Since, as an aware time; None when absent or invalid.

    RFC 9110 (section 13.1.4) has an invalid date ignored, as if the header were absent.
    """
    if not header:
        return None
    try:
        moment = parsedate_to_datetime(header.strip())
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment
