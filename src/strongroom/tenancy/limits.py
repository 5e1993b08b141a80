"""The limits of a tenant: what its plan allows, with the operator's per-tenant overrides on top.

A limit of None means unlimited. Overrides are stored per tenant as a JSON
object: a missing key takes the plan's value, a key set to null lifts the
limit for that tenant alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace

from strongroom.base.errors import InvalidInput


@dataclass(frozen=True)
class TenantLimits:
    """Limits set by the operator; None is unlimited."""

    storage_bytes: int | None = None
    max_users: int | None = None
    max_file_size: int | None = None
    requests_per_minute: int | None = None
    user_requests_per_minute: int | None = None
    bandwidth_bytes_per_second: int | None = None
    concurrent_transfers: int | None = None

    def with_overrides(self, overrides: Mapping[str, int | None]) -> TenantLimits:
        return replace(self, **{name: overrides[name] for name in LIMIT_NAMES if name in overrides})

    def as_dict(self) -> dict[str, int | None]:
        return asdict(self)


LIMIT_NAMES = tuple(field.name for field in fields(TenantLimits))

# The smallest value of each limit. A rate or a count of transfers of 0 would block a
# tenant completely, which is what suspending it is for.
MINIMUMS = {
    "storage_bytes": 0,
    "max_users": 0,
    "max_file_size": 0,
    "requests_per_minute": 1,
    "user_requests_per_minute": 1,
    "bandwidth_bytes_per_second": 1,
    "concurrent_transfers": 1,
}


def check_limits(values: Mapping[str, object]) -> dict[str, int | None]:
    """Return the values as limits, or raise InvalidInput naming the first bad name or value."""
    checked: dict[str, int | None] = {}
    for name, value in values.items():
        if name not in MINIMUMS:
            raise InvalidInput(f"{name!r} is not a limit; use one of: {', '.join(LIMIT_NAMES)}")
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < MINIMUMS[name]
        ):
            raise InvalidInput(
                f"{name} {value!r} is invalid; give a whole number of at least {MINIMUMS[name]}, "
                "or null for unlimited"
            )
        checked[name] = value
    return checked
