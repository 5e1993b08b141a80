"""HTTP `Range` and conditional request headers (RFC 9110, sections 13 and 14)."""

from __future__ import annotations

import re

from strongroom.base.errors import RangeNotSatisfiable

# Nineteen digits reach past any real file size; a longer number is malformed.
RANGE_PATTERN = re.compile(r"bytes=(\d{0,19})-(\d{0,19})")


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
    first, last = match.groups()
    if not first and not last:
        return None

    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise _unsatisfiable(header, size)
        return max(size - suffix, 0), size - 1

    start = int(first)
    # Only a last-pos given before first-pos makes the header invalid; an open end
    # past a short file is unsatisfiable instead.
    if last and int(last) < start:
        return None
    if start >= size:
        raise _unsatisfiable(header, size)
    end = int(last) if last else size - 1
    return start, min(end, size - 1)


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
