"""The Destination header of COPY and MOVE, decoded strictly and checked like any other path.

WsgiDAV decodes the header loosely: `urlparse` drops CR, LF and tab where
they were percent-encoded, raw bytes are read as Latin-1, and an invalid
name only shows up later as a 404. Here the header is decoded as UTF-8,
control characters are refused, and the names go through `split_path`, so a
client gets the same 400 and reason as the REST API gives. WsgiDAV then
reads a header that this module wrote, with every name percent-encoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, unquote, unquote_to_bytes, urlparse, urlsplit, urlunsplit

from strongroom.base.errors import InvalidInput
from strongroom.drive.files import Names
from strongroom.drive.paths import split_path


@dataclass(frozen=True)
class Destination:
    """The checked target of a COPY or MOVE, and the header that WsgiDAV is to read instead."""

    names: Names
    header: str


def _control_character(text: str) -> str | None:
    return next((c for c in text if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0), None)


def _decode_utf8(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(
            f"the Destination header's {what} is not valid UTF-8; encode names as UTF-8 "
            "and percent-encode them"
        ) from None


def check_destination(header: str, mount_path: str) -> Destination | None:
    """Return the names that `header` points to below `mount_path`, or None outside it.

    `header` and `mount_path` are WSGI strings: the bytes that came over the
    wire, read as Latin-1. A destination outside the mount path is left to
    WsgiDAV, which returns 502 for another server or tenant.
    """
    text = _decode_utf8(header.encode("latin-1"), "value")
    faulty = _control_character(text)
    if faulty is not None:
        raise InvalidInput(
            f"the Destination header contains the control character U+{ord(faulty):04X}; "
            "remove it, or percent-encode a name that really has it (such names are refused too)"
        )
    url = urlsplit(text, allow_fragments=False)
    if url.query:
        raise InvalidInput(
            f"the Destination header has a query ('?{url.query}'); send the target's URL "
            "without one, and percent-encode a '?' in a name as %3F"
        )
    path = _decode_utf8(unquote_to_bytes(url.path), "path")
    mount = mount_path.encode("latin-1").decode("utf-8")
    if path != mount and not path.startswith(mount + "/"):
        return None
    relative = path[len(mount) :]
    names = split_path(relative)
    target = mount + "/" + "/".join(names) + ("/" if relative.endswith("/") and names else "")
    rewritten = urlunsplit((url.scheme, url.netloc, quote(target, safe="/"), "", ""))
    # WsgiDAV decodes the whole header before it parses it, so a '?' (or a ';' in the
    # last name) would cut the path, and the file would land under a shorter name.
    if urlparse(unquote(rewritten), allow_fragments=False).path != target:
        raise InvalidInput(
            f"WebDAV cannot copy or move to {'/'.join(names)!r}: a name with '?', or a last "
            "name with ';', is cut short there; rename it in the web UI or with POST /move"
        )
    return Destination(names, rewritten)
