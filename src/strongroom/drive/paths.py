"""Paths of files and folders: validation and Unicode normalisation.

A path is a sequence of names separated by `/`. Each name is normalised to
NFC, so the same name typed on macOS (which sends NFD) and on Linux is one
file. Leading and trailing slashes are ignored; the empty path is the root.
"""

from __future__ import annotations

import unicodedata

from strongroom.base.errors import InvalidPath

MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4096


def _is_control(character: str) -> bool:
    return unicodedata.category(character) == "Cc"


def check_name(name: str, position: int | None = None) -> str:
    """Return the NFC form of one file or folder name, or raise InvalidPath naming the fault."""
    where = f"name {position} ({name!r})" if position is not None else f"name {name!r}"
    normalised = unicodedata.normalize("NFC", name)
    if normalised == "":
        raise InvalidPath(f"{where} is empty; remove the doubled '/'", segment=position)
    if normalised in {".", ".."}:
        raise InvalidPath(
            f"{where} is not allowed: '.' and '..' cannot be file or folder names", segment=position
        )
    if "/" in normalised:
        raise InvalidPath(f"{where} contains '/', which separates folders", segment=position)
    faulty = next((c for c in normalised if _is_control(c)), None)
    if faulty is not None:
        raise InvalidPath(
            f"{where} contains the control character U+{ord(faulty):04X}; remove it",
            segment=position,
        )
    size = len(normalised.encode("utf-8"))
    if size > MAX_NAME_BYTES:
        raise InvalidPath(
            f"{where} is {size} bytes in UTF-8; names may have at most {MAX_NAME_BYTES}",
            segment=position,
        )
    return normalised


def split_path(path: str) -> tuple[str, ...]:
    """Return the checked names of a path; raise InvalidPath naming the first part at fault."""
    stripped = path.strip("/")
    if not stripped:
        return ()
    names = tuple(
        check_name(part, position) for position, part in enumerate(stripped.split("/"), start=1)
    )
    size = len("/".join(names).encode("utf-8"))
    if size > MAX_PATH_BYTES:
        raise InvalidPath(
            f"the path is {size} bytes in UTF-8; paths may have at most {MAX_PATH_BYTES}"
        )
    return names


def join_path(names: tuple[str, ...] | list[str]) -> str:
    return "/".join(names)
