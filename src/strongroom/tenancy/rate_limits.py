"""Rate limits on failed logins, counted per tenant and client address.

Successful logins are not counted, and a client is only held back after it
has failed `per_minute` times in a moving window of one minute. So an
attacker cannot lock a user out by failing on purpose from another address.
Keys come from `tenant_scoped_key`, so two tenants never share a counter.
"""

from __future__ import annotations

import math
import time
import uuid

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from strongroom.base.scoping import tenant_scoped_key


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
