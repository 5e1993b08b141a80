"""Rate limits on logins per tenant, counted with the `limits` library.

`RateLimit` holds back web logins per tenant, address and account.
`FailureLimiter` counts only failed WebDAV logins per tenant and address, so
an attacker cannot lock a user out by failing on purpose from another
address. Every counter key is built by `tenant_scoped_key`, so two tenants
never share a counter. With `STRONGROOM_REDIS_URL` the counters live in
Redis and every replica counts against the same limit; without it each
process counts on its own.

When Redis cannot be reached, a check lets the login through and logs a
warning, as the request limits do: locking every user out while Redis is
down would be worse than the brute force a minute of outage allows.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

from limits import RateLimitItem, RateLimitItemPerMinute, parse_many
from limits.errors import StorageError
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError

from strongroom.base.logging import get_logger
from strongroom.base.scoping import tenant_scoped_key

log = get_logger(__name__)

KEY_PREFIX = "strongroom-logins"

Result = TypeVar("Result")


def counter_storage(redis_url: str | None) -> Storage:
    """Return where the counters live: Redis when a URL is given, else this process."""
    if redis_url is None:
        return MemoryStorage()
    # The `limits` package spells a Redis socket URL redis+unix://, and redis-py unix://.
    if redis_url.startswith("unix://"):
        redis_url = "redis+" + redis_url
    return RedisStorage(redis_url, key_prefix=KEY_PREFIX, wrap_exceptions=True)


def _or_open(step: Callable[[], Result], fallback: Result, name: str) -> Result:
    """Run a counter step; when Redis fails, log it and return `fallback`."""
    try:
        return step()
    except (StorageError, RedisError) as exc:
        log.warning("login_limit_unavailable", limit=name, error=type(exc).__name__)
        return fallback


class RateLimit:
    """One or more limits (such as `5/minute;30/hour`) on one kind of action of a tenant."""

    def __init__(self, name: str, notation: str, redis_url: str | None = None) -> None:
        self.name = name
        self.items: list[RateLimitItem] = parse_many(notation)
        self._limiter = MovingWindowRateLimiter(counter_storage(redis_url))

    def retry_after(self, tenant_id: uuid.UUID, subject: str) -> int | None:
        """Return the seconds to wait before the next action on `subject`, or None when allowed."""
        key = self._key(tenant_id, subject)

        def waits() -> int | None:
            found = [
                self._seconds_until_reset(item, key)
                for item in self.items
                if not self._limiter.test(item, key)
            ]
            return max(found) if found else None

        return _or_open(waits, None, self.name)

    def hit(self, tenant_id: uuid.UUID, subject: str) -> None:
        """Count one action on `subject` against every limit."""
        key = self._key(tenant_id, subject)
        for item in self.items:
            _or_open(lambda item=item: self._limiter.hit(item, key), False, self.name)

    def clear(self, tenant_id: uuid.UUID, subject: str) -> None:
        key = self._key(tenant_id, subject)
        for item in self.items:
            _or_open(lambda item=item: self._limiter.clear(item, key), None, self.name)

    def _key(self, tenant_id: uuid.UUID, subject: str) -> str:
        return tenant_scoped_key(tenant_id, "rate-limits", self.name, subject)

    def _seconds_until_reset(self, item: RateLimitItem, key: str) -> int:
        stats = self._limiter.get_window_stats(item, key)
        return max(1, math.ceil(stats.reset_time - time.time()))

class FailureLimiter:
    """A counter of failed logins of one kind, which returns how long a client must wait.

    Without Redis each replica counts on its own, so behind a load balancer
    a client gets up to `per_minute` failures per replica.
    """

    def __init__(self, kind: str, per_minute: int, redis_url: str | None = None) -> None:
        self.kind = kind
        self._item = RateLimitItemPerMinute(per_minute)
        self._limiter = MovingWindowRateLimiter(counter_storage(redis_url))

    def retry_after(self, tenant_id: uuid.UUID, client: str) -> int | None:
        """Return the seconds the client must wait before it may try again, or None if it may now."""
        key = self._key(tenant_id, client)

        def wait() -> int | None:
            if self._limiter.test(self._item, key):
                return None
            reset_at = self._limiter.get_window_stats(self._item, key).reset_time
            return max(1, math.ceil(reset_at - time.time()))

        return _or_open(wait, None, self.kind)

    def record_failure(self, tenant_id: uuid.UUID, client: str) -> None:
        key = self._key(tenant_id, client)
        _or_open(lambda: self._limiter.hit(self._item, key), False, self.kind)

    def _key(self, tenant_id: uuid.UUID, client: str) -> str:
        # The address goes in as one key part, so it must not contain the separator.
        return tenant_scoped_key(tenant_id, "login-failures", self.kind, client.replace("/", "_"))
