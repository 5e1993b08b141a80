"""Tenant settings: the choices a tenant administrator makes, validated by one schema.

A setting's value comes from three layers, the first that has it winning: the
tenant's own values, its plan's default settings, and the defaults below. The
catalog stores only the first two, so a changed plan default reaches every
tenant that did not choose a value of its own. Changes arrive as JSON merge
patches (RFC 7396): a key set to null goes back to the plan's default.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator

from strongroom.base.errors import InvalidInput
from strongroom.base.logging import get_logger
from strongroom.base.validation import unknown_keys_message

log = get_logger(__name__)

# A BCP 47 language tag of the common form: language, then optional script and region,
# such as en, en-GB, pt-BR, zh-Hant-TW or es-419.
LOCALE_PATTERN = re.compile(r"[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?")
EXTENSION_PATTERN = re.compile(r"[a-z0-9]+(\.[a-z0-9]+)*")
MAX_BLOCKED_EXTENSIONS = 200
# The largest max_file_size setting: 2**53 - 1 bytes, about 8 PiB. It is the largest integer
# that JSON parsers which store numbers as doubles, such as JavaScript's, read exactly.
MAX_FILE_SIZE_SETTING = 2**53 - 1
# The name is the tenant's display name in the catalog, so it is stored there, not with the rest.
CATALOG_SETTINGS = ("display_name",)
# The shortest audit retention: an admin who shortens it still leaves a month of trail.
MIN_AUDIT_RETENTION_DAYS = 30


class PasswordPolicy(BaseModel):
    """Rules for the passwords of the tenant's users."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_length: StrictInt = Field(
        default=12, ge=12, le=128, description="characters; 12 is the platform's minimum"
    )
    require_mixed_case: bool = False
    require_digit: bool = False
    require_symbol: bool = False


class TenantSettings(BaseModel):
    """Every setting of a tenant, with its default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    display_name: str = Field(default="", max_length=200)
    time_zone: str = Field(default="UTC", description="an IANA time zone, such as Europe/Paris")
    locale: str = Field(default="en", description="a BCP 47 language tag, such as en-GB")
    password_policy: PasswordPolicy = PasswordPolicy()
    second_factor_required: bool = False
    max_file_size: StrictInt | None = Field(
        default=None,
        ge=0,
        le=MAX_FILE_SIZE_SETTING,
        description="bytes, at most 2**53 - 1; null leaves only the plan's limit",
    )
    blocked_extensions: tuple[str, ...] = Field(
        default=(), description="file name endings that uploads may not have, such as exe"
    )
    link_max_expiry_days: StrictInt | None = Field(default=None, ge=1, le=3650)
    # 0 means no limit in the two settings below, because null in a merge patch restores
    # the plan's default instead.
    versions_kept: StrictInt = Field(
        default=0, ge=0, le=100_000, description="versions kept per file; 0 keeps all"
    )
    trash_retention_days: StrictInt = Field(
        default=30,
        ge=0,
        le=3650,
        description="days before trashed items are deleted for good; 0 keeps them until emptied",
    )
    audit_retention_days: StrictInt = Field(
        default=0,
        ge=0,
        le=36500,
        description=f"days an audit event is kept before the daily job deletes it; 0 keeps "
        f"events for ever, otherwise at least {MIN_AUDIT_RETENTION_DAYS}",
    )
    guest_invites: Literal["admins", "members"] = Field(
        default="members",
        description="who may invite guests by e-mail: admins only, or members and admins",
    )
    guest_max_days: StrictInt = Field(
        default=30, ge=1, le=3650, description="days a guest account lasts at most"
    )

    @field_validator("display_name")
    @classmethod
    def check_display_name(cls, value: str) -> str:
        name = value.strip()
        if not name:
            raise ValueError("the display name is empty; give the tenant's name")
        return name

    @field_validator("audit_retention_days")
    @classmethod
    def check_audit_retention_days(cls, value: int) -> int:
        # A short retention would let an admin erase the trail of what they just did.
        if 0 < value < MIN_AUDIT_RETENTION_DAYS:
            raise ValueError(
                f"{value} days is too short to keep the audit trail; use 0 to keep events for "
                f"ever, or {MIN_AUDIT_RETENTION_DAYS} to 36500 days"
            )
        return value

    @field_validator("time_zone")
    @classmethod
    def check_time_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{value!r} is not an IANA time zone; use a name such as Europe/Paris or UTC"
            ) from None
        return value

    @field_validator("locale")
    @classmethod
    def check_locale(cls, value: str) -> str:
        if not LOCALE_PATTERN.fullmatch(value):
            raise ValueError(f"{value!r} is not a language tag; use a tag such as en, de or pt-BR")
        return value

    @field_validator("blocked_extensions", mode="before")
    @classmethod
    def check_blocked_extensions(cls, value: Any) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [part for part in value.split(",") if part.strip()]
        if not isinstance(value, (list, tuple)):
            # Pydantic reports a ValueError as a validation error, but lets a TypeError through.
            raise ValueError(  # noqa: TRY004
                'give a list of file name endings, such as ["exe", "bat"]'
            )
        if len(value) > MAX_BLOCKED_EXTENSIONS:
            raise ValueError(
                f"{len(value)} endings is too many; block at most {MAX_BLOCKED_EXTENSIONS}"
            )
        endings = []
        for item in value:
            ending = str(item).strip().lower().removeprefix(".")
            if not EXTENSION_PATTERN.fullmatch(ending) or len(ending) > 32:
                raise ValueError(
                    f"{item!r} is not a file name ending; use letters and digits, such as exe or tar.gz"
                )
            if ending not in endings:
                endings.append(ending)
        return tuple(endings)

    def blocked_extension_of(self, name: str) -> str | None:
        """Return the blocked ending that the file name has, or None.

        Trailing dots and spaces, and an NTFS stream suffix (`::$DATA`), are
        ignored, because Windows drops them and would store `b.exe. ` as `b.exe`.
        """
        lowered = name.lower().split("::", 1)[0].rstrip(". ")
        for ending in self.blocked_extensions:
            if lowered.endswith("." + ending):
                return ending
        return None


SETTING_NAMES = tuple(TenantSettings.model_fields)
# Keys of a tenant's stored settings object that hold another feature's own section, such
# as the web UI's branding, which that feature validates. They are not settings.
SECTIONS = ("branding",)


def setting_values(stored: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return the settings of a tenant's stored settings object, without the sections."""
    return {key: value for key, value in (stored or {}).items() if key not in SECTIONS}


def sections_of(stored: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return the sections of a tenant's stored settings object, to keep them when settings change."""
    return {key: value for key, value in (stored or {}).items() if key in SECTIONS}


def merge_patch(target: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """Apply a JSON merge patch (RFC 7396) to a copy of `target`."""
    merged = dict(target)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping):
            current = merged.get(key)
            merged[key] = merge_patch(current if isinstance(current, Mapping) else {}, value)
        else:
            merged[key] = value
    return merged


class InvalidSettings(InvalidInput):
    """Settings that failed validation, with pydantic's errors for interfaces that word them."""

    def __init__(self, detail: str, errors: list[dict[str, Any]]) -> None:
        super().__init__(detail)
        # An attribute, not `extra`, so that problem responses keep their form.
        self.errors = errors


def validate_settings(values: Mapping[str, Any]) -> TenantSettings:
    """Return the settings the values make with the defaults, or raise InvalidSettings naming each bad one."""
    try:
        return TenantSettings.model_validate(dict(values))
    except ValidationError as exc:
        errors = [dict(error) for error in exc.errors(include_url=False, include_input=False)]
        raise InvalidSettings(describe_errors(exc), errors) from None


def describe_errors(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            problems.append(unknown_keys_message([where], SETTING_NAMES, noun="setting"))
            continue
        if error["type"] == "int_type":
            message += "; give an integer such as 30, not a string, a fraction or true/false"
        if error["type"] in ("less_than_equal", "greater_than_equal"):
            message = _bound_message(error)
        problems.append(f"{where}: {message}")
    return "; ".join(problems)


def _bound_message(error: Mapping[str, Any]) -> str:
    """Describe a number outside a setting's range by its value and the bound it broke."""
    limits = error.get("ctx") or {}
    if error["type"] == "less_than_equal":
        return f"{error['input']} is more than the maximum, {limits['le']}; give a smaller number"
    return f"{error['input']} is less than the minimum, {limits['ge']}; give a larger number"


def stored_settings(own: Mapping[str, Any], validated: TenantSettings) -> dict[str, Any]:
    """Return the keys of `own` with their validated values, as the catalog stores them."""
    return _pick(own, validated.model_dump(mode="json"))


def _pick(keys: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    picked = {}
    for key, value in keys.items():
        if isinstance(value, Mapping) and isinstance(values.get(key), Mapping):
            picked[key] = _pick(value, values[key])
        else:
            picked[key] = values.get(key)
    return picked


def effective_settings(
    plan_defaults: Mapping[str, Any], own: Mapping[str, Any], display_name: str
) -> TenantSettings:
    """Combine the plan's defaults and the tenant's own values into the settings in force.

    Stored values were valid when written. One that no longer is (a time zone
    that a tzdata update removed, say) falls back to its default, with a
    warning, instead of making the tenant unusable.
    """
    values = merge_patch(merge_patch(plan_defaults, own), {"display_name": display_name})
    for _attempt in range(len(SETTING_NAMES)):
        try:
            return TenantSettings.model_validate(values)
        except ValidationError as exc:
            bad = {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
            log.warning("tenant_setting_invalid", settings=sorted(bad), error=describe_errors(exc))
            values = {key: value for key, value in values.items() if key not in bad}
            if not bad:
                break
    return TenantSettings(display_name=display_name or "tenant")


def check_password(policy: PasswordPolicy, password: str) -> None:
    """Raise InvalidInput naming the first rule of the tenant's policy that the password breaks."""
    if len(password) < policy.min_length:
        raise InvalidInput(
            f"the password has {len(password)} characters, but this tenant's policy requires at "
            f"least {policy.min_length}; choose a longer one"
        )
    if policy.require_mixed_case and (password.lower() == password or password.upper() == password):
        raise InvalidInput(
            "this tenant's policy requires upper and lower case letters in passwords; add both"
        )
    if policy.require_digit and not any(character.isdigit() for character in password):
        raise InvalidInput("this tenant's policy requires a digit in passwords; add one")
    if policy.require_symbol and all(character.isalnum() for character in password):
        raise InvalidInput(
            "this tenant's policy requires a character other than a letter or digit in "
            "passwords; add one"
        )
