"""Reading the fields of web forms, with errors that name each field as its form labels it.

A person who fills in a form reads labels, not the API's field names, so an
error such as "max_downloads 0 is out of range" leaves them guessing. The
helpers here name the field by its label and say what to enter instead.
Browsers send every field as text, and an empty field means the person left
it blank.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Iterable, Mapping
from typing import Any

from strongroom.base.errors import InvalidInput

# The labels of form fields by their `name` attribute, for errors that FastAPI finds
# before a route runs, such as a field longer than its `max_length`.
FORM_LABELS = {
    "password": "Password",
    "expires": "Expiry date",
    "max_downloads": "Maximum downloads",
    "recipient": "Share with",
    "permission": "They may",
    "name": "Name",
    "destination": "Move to",
    "number": "Version",
    "time_zone": "Time zone",
    "locale": "Language",
    "password_min_length": "Shortest password",
    "second_factor_required": "Require two-step verification",
    "max_file_size": "Largest file",
    "blocked_extensions": "Blocked file endings",
    "link_max_expiry_days": "Longest link lifetime",
    "versions_kept": "Versions kept per file",
    "trash_retention_days": "Days in the trash",
    "email": "E-mail address",
    "display_name": "Name",
    "role": "Role",
    "code": "Code",
    # The filters of the audit page.
    "action": "Action",
    "actor": "Actor",
    "since": "From",
    "until": "Before",
}

# A whole number as a person types it: ASCII digits, perhaps after a minus sign.
WHOLE_NUMBER = re.compile(r"-?[0-9]+", re.ASCII)


def label_of(name: str, labels: Mapping[str, str] = FORM_LABELS) -> str:
    """Return the label of a field, or its name in words when no label is known."""
    return labels.get(name) or name.replace("_", " ").replace(".", " ").capitalize()


def whole_number(text: str, label: str, minimum: int, maximum: int) -> int | None:
    """Read a field that contains a whole number from `minimum` to `maximum`; None when it is empty."""
    value = text.strip()
    if not value:
        return None
    if not WHOLE_NUMBER.fullmatch(value):
        raise InvalidInput(
            f"{label} {text!r} is not a whole number; enter a number from {minimum} to {maximum}"
        )
    # A number with more digits than the maximum is out of range, so it is not converted.
    digits = value.removeprefix("-").lstrip("0") or "0"
    too_long = len(digits) > len(str(maximum))
    number = None if too_long else int(value)
    if (too_long and value.startswith("-")) or (number is not None and number < minimum):
        raise InvalidInput(
            f"{label} must be {at_least(minimum)}, not {value}; enter a number from {minimum} "
            f"to {maximum}"
        )
    if number is None or number > maximum:
        raise InvalidInput(
            f"{label} {value} is out of range; enter a number from {minimum} to {maximum}"
        )
    return number


def at_least(minimum: int) -> str:
    """Word a lower bound as a person reads it: "zero or more", or "at least 5"."""
    return "zero or more" if minimum == 0 else f"at least {minimum}"


def local_moment(text: str, label: str, zone: zoneinfo.ZoneInfo) -> dt.datetime | None:
    """Read a `datetime-local` field as a time of the zone; None when it is empty."""
    value = text.strip()
    if not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"{label} {text!r} is not a date and time; pick one in the field, or enter it in "
            "the form 2030-01-31T18:00"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def describe_errors(errors: Iterable[Mapping[str, Any]], labels: Mapping[str, str]) -> str:
    """Describe pydantic validation errors by field label, each with what to enter instead.

    `labels` maps a field's location, its parts joined by dots (such as
    `password_policy.min_length`), to its label.
    """
    return "; ".join(_describe(error, labels) for error in errors) or "the form is invalid"


def _describe(error: Mapping[str, Any], labels: Mapping[str, str]) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()) if part not in ("body", "form"))
    label = label_of(where, labels)
    kind = error.get("type", "")
    limits = error.get("ctx") or {}
    if kind == "missing":
        return f"{label} is missing; fill it in"
    if kind in ("greater_than_equal", "greater_than"):
        bound = limits.get("ge", limits.get("gt"))
        if kind == "greater_than":
            return f"{label} must be more than {bound}; enter a larger number"
        return f"{label} must be {at_least(bound)}; enter a larger number"
    if kind in ("less_than_equal", "less_than"):
        bound = limits.get("le", limits.get("lt"))
        at_most = "at most" if kind == "less_than_equal" else "less than"
        return f"{label} must be {at_most} {bound}; enter a smaller number"
    if kind == "string_too_long":
        return f"{label} is longer than {limits.get('max_length')} characters; shorten it"
    if kind.startswith("int_"):
        return f"{label} is not a whole number; enter digits only"
    message = str(error.get("msg", "is invalid")).removeprefix("Value error, ")
    return f"{label}: {message[:1].lower()}{message[1:]}"
