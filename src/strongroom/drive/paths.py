"""Paths of files and folders: validation and Unicode normalisation.

A path is a sequence of names separated by `/`. Each name is normalised to
NFC, so the same name typed on macOS (which sends NFD) and on Linux is one
file. Leading and trailing slashes are ignored; the empty path is the root.
Names that differ only in case are different files, as on Linux; clients on
case-insensitive systems see them as a conflict of their own.
"""

from __future__ import annotations

import unicodedata

from strongroom.base.errors import InvalidPath

MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4096
# Each level costs a query to resolve; 256 is far deeper than people nest folders.
MAX_DEPTH = 256


# Characters that make a name display differently from what it is: bidirectional
# overrides and isolates (a name "invoice<RLO>txt.exe" shows as "invoiceexe.txt") and
# invisible characters that let two names look identical. The zero-width joiner and
# non-joiner stay allowed, because emoji sequences and several scripts need them.
DECEPTIVE_CHARACTERS = frozenset(
    "\u061c\u200b\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2060\u2066\u2067\u2068\u2069\ufeff"
)


def _is_control(character: str) -> bool:
    return unicodedata.category(character) in {"Cc", "Zl", "Zp"}


def check_name(name: str, position: int | None = None) -> str:
    """Return the NFC form of one file or folder name, or raise InvalidPath naming the fault."""
    # Printable ASCII, which most names are, is its own NFC form and contains none of the
    # characters the slower checks look for. Paths are checked on every request.
    plain = name.isascii() and name.isprintable()
    normalised = name if plain else unicodedata.normalize("NFC", name)

    if normalised == "":
        raise InvalidPath(
            f"{_where(name, position)} is empty; remove the doubled '/'", segment=position
        )
    if normalised in {".", ".."}:
        raise InvalidPath(
            f"{_where(name, position)} is not allowed: '.' and '..' cannot be file or folder names",
            segment=position,
        )
    if "/" in normalised:
        raise InvalidPath(
            f"{_where(name, position)} contains '/', which separates folders", segment=position
        )
    if not plain:
        _check_characters(name, normalised, position)

    if not normalised.strip():
        raise InvalidPath(
            f"{_where(name, position)} has only blank characters; give it a visible name",
            segment=position,
        )

    size = len(normalised) if plain else len(normalised.encode("utf-8"))
    if size > MAX_NAME_BYTES:
        raise InvalidPath(
            f"{_where(name, position)} is {size} bytes in UTF-8; names may have at most "
            f"{MAX_NAME_BYTES}",
            segment=position,
        )
    return normalised


def _check_characters(name: str, normalised: str, position: int | None) -> None:
    faulty = next((c for c in normalised if _is_control(c)), None)
    if faulty is not None:
        raise InvalidPath(
            f"{_where(name, position)} contains the control character U+{ord(faulty):04X}; "
            "remove it",
            segment=position,
        )
    deceptive = next((c for c in normalised if c in DECEPTIVE_CHARACTERS), None)
    if deceptive is not None:
        raise InvalidPath(
            f"{_where(name, position)} contains the invisible or direction-changing character "
            f"U+{ord(deceptive):04X}, which can disguise a name; remove it",
            segment=position,
        )
    if "\ufffd" in normalised:
        raise InvalidPath(
            f"{_where(name, position)} is not valid UTF-8 (it decodes to U+FFFD); encode names "
            "as UTF-8",
            segment=position,
        )


def _where(name: str, position: int | None) -> str:
    return f"name {position} ({name!r})" if position is not None else f"name {name!r}"


def split_path(path: str) -> tuple[str, ...]:
    """Return the checked names of a path; raise InvalidPath naming the first part at fault."""
    stripped = path.strip("/")
    if not stripped:
        return ()
    parts = stripped.split("/")
    if len(parts) > MAX_DEPTH:
        raise InvalidPath(f"the path has {len(parts)} levels; paths may have at most {MAX_DEPTH}")
    names = tuple(check_name(part, position) for position, part in enumerate(parts, start=1))
    size = len("/".join(names).encode("utf-8"))
    if size > MAX_PATH_BYTES:
        raise InvalidPath(
            f"the path is {size} bytes in UTF-8; paths may have at most {MAX_PATH_BYTES}"
        )
    return names


def join_path(names: tuple[str, ...] | list[str]) -> str:
    return "/".join(names)
