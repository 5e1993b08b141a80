"""Rate limits on logins per tenant, counted with the `limits` library.

`RateLimit` holds back web logins per tenant, address and account.
`FailureLimiter` counts only failed WebDAV logins per tenant and address, so
an attacker cannot lock a user out by failing on purpose from another
address. Every counter key is built by `tenant_scoped_key`, so two tenants
never share a counter. The counters live in this process's memory: each
replica of a scaled-out deployment counts on its own.
"""

from __future__ import annotations

import math
import time
import uuid

from limits import RateLimitItem, RateLimitItemPerMinute, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from strongroom.base.scoping import tenant_scoped_key

# TODO: keep the counters in Redis once replicas share state, so that a limit applies
# across the fleet instead of per replica.


class RateLimit:
    """One or more limits (such as `5/minute;30/hour`) on one kind of action of a tenant."""

    def __init__(self, name: str, notation: str) -> None:
        self.name = name
        self.items: list[RateLimitItem] = parse_many(notation)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def retry_after(self, tenant_id: uuid.UUID, subject: str) -> int | None:
        """Return the seconds to wait before the next action on `subject`, or None when allowed."""
        key = self._key(tenant_id, subject)
        waits = [
            self._seconds_until_reset(item, key)
            for item in self.items
            if not self._limiter.test(item, key)
        ]
        return max(waits) if waits else None

    def hit(self, tenant_id: uuid.UUID, subject: str) -> None:
        """Count one action on `subject` against every limit."""
        key = self._key(tenant_id, subject)
        for item in self.items:
            self._limiter.hit(item, key)

    def clear(self, tenant_id: uuid.UUID, subject: str) -> None:
        key = self._key(tenant_id, subject)
        for item in self.items:
            self._limiter.clear(item, key)

    def _key(self, tenant_id: uuid.UUID, subject: str) -> str:
        return tenant_scoped_key(tenant_id, "rate-limits", self.name, subject)

    def _seconds_until_reset(self, item: RateLimitItem, key: str) -> int:
        stats = self._limiter.get_window_stats(item, key)
        return max(1, math.ceil(stats.reset_time - time.time()))

class FailureLimiter:
    """A counter of failed logins of one kind, which returns how long a client must wait.

    NOTE: the counters live in this process. Behind a load balancer each
    replica counts on its own, so a client gets up to `per_minute` failures
    per replica. The `limits` package offers Redis storage for a shared count.
    """

    def __init__(self, kind: str, per_minute: int) -> None:
        self.kind = kind
        self._item = RateLimitItemPerMinute(per_minute)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def retry_after(self, tenant_id: uuid.UUID, client: str) -> int | None:
        """Return the seconds the client must wait before it may try again, or None if it may now."""
        key = self._key(tenant_id, client)
        if self._limiter.test(self._item, key):
            return None
        reset_at = self._limiter.get_window_stats(self._item, key).reset_time
        return max(1, math.ceil(reset_at - time.time()))

    def record_failure(self, tenant_id: uuid.UUID, client: str) -> None:
        self._limiter.hit(self._item, self._key(tenant_id, client))

    def _key(self, tenant_id: uuid.UUID, client: str) -> str:
        # The address goes in as one key part, so it must not contain the separator.
        return tenant_scoped_key(tenant_id, "login-failures", self.kind, client.replace("/", "_"))
