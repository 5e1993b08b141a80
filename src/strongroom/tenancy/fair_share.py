"""Fair sharing: request rates, concurrent transfers and bandwidth, limited per tenant and user.

The limits come from the tenant's plan and overrides (TenantInfo.limits); an
unlimited one costs nothing per request. Counters live in this process, or,
with STRONGROOM_REDIS_URL, in Redis, so that every replica counts against the
same limit.

- Request rates use the `limits` library's moving window: at most N requests
  in any 60 seconds, with no burst of 2N across a window boundary as a fixed
  window allows, and a Retry-After that gives the time until the oldest
  request leaves the window. Its cost is one list per key of at most N timestamps.
- Bandwidth uses a fixed window of one second, counting bytes: a moving
  window would keep one entry per byte.
- Concurrent transfers are leases, in a Redis sorted set or a dictionary in
  memory. A lease that is not renewed expires after LEASE_SECONDS, so neither
  a crashed replica nor a response that never ran its cleanup (a client gone
  before the body started) holds a slot for ever.

If Redis fails, requests are let through and the failure is logged: a rate
limit is not worth an outage.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import Any

import limits.aio.storage
import limits.aio.strategies
import limits.storage
import limits.strategies
import redis.asyncio
from limits import RateLimitItem, RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.errors import StorageError
from redis.exceptions import RedisError

from strongroom.base.errors import RateLimited
from strongroom.base.logging import get_logger
from strongroom.base.scoping import tenant_scoped_key
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.monitoring import record_rate_limit_rejection

log = get_logger(__name__)

KEY_PREFIX = "strongroom"
# A transfer renews its lease at its first chunk after a quarter of it has passed. One that
# sends nothing for LEASE_SECONDS, such as a download to a client that stopped reading,
# loses its slot while it stays open.
LEASE_SECONDS = 120.0
STORAGE_ERROR_LOG_INTERVAL = 60.0

# Take a slot if fewer than ARGV[2] unexpired leases exist; return 1 if taken, else 0.
# Redis's clock is the one clock every replica shares.
ACQUIRE_SLOT = """
local now = redis.call('TIME')
local seconds = tonumber(now[1]) + tonumber(now[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', seconds)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
    return 0
end
redis.call('ZADD', KEYS[1], seconds + tonumber(ARGV[1]), ARGV[3])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[1])) + 1)
return 1
"""
RENEW_SLOT = """
local now = redis.call('TIME')
local seconds = tonumber(now[1]) + tonumber(now[2]) / 1000000
redis.call('ZADD', KEYS[1], 'XX', seconds + tonumber(ARGV[1]), ARGV[2])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[1])) + 1)
return 1
"""


@lru_cache(maxsize=1024)
def per_minute(amount: int) -> RateLimitItem:
    return RateLimitItemPerMinute(amount)


@lru_cache(maxsize=1024)
def per_second(amount: int) -> RateLimitItem:
    return RateLimitItemPerSecond(amount)


async def _result(value: Any) -> Any:
    """Return the value of a call to a limiter, awaiting it when the limiter is asynchronous."""
    if isinstance(value, Awaitable):
        return await value
    return value


class TransferSlot:
    """A tenant's place among its concurrent transfers, held until `release`."""

    def __init__(
        self, fair_share: FairShare | None, key: str = "", token: str = "", lease: float = 0
    ) -> None:
        self._fair_share = fair_share
        self._key = key
        self._token = token
        self._renew_after = lease / 4
        self._renewed = time.monotonic()

    async def keep(self) -> None:
        """Renew the lease when due; call it for each chunk of a long transfer."""
        if self._fair_share is None or time.monotonic() - self._renewed < self._renew_after:
            return
        self._renewed = time.monotonic()
        await self._fair_share.renew_slot(self._key, self._token)

    async def release(self) -> None:
        fair_share, self._fair_share = self._fair_share, None
        if fair_share is not None:
            await fair_share.release_slot(self._key, self._token)


UNLIMITED_SLOT = TransferSlot(None)


class FairShare:
    """The rate limits and transfer slots of every tenant, in this process or in Redis."""

    def __init__(
        self,
        redis_url: str | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        self._sleep = sleep
        self._lease_seconds = lease_seconds
        self._last_storage_error = 0.0
        self._redis: redis.asyncio.Redis | None = None
        # Leases in memory: tenant key, then transfer token, then expiry on the monotonic clock.
        self._slots: dict[str, dict[str, float]] = {}
        self._slots_lock = threading.Lock()
        if redis_url is None:
            storage: Any = limits.storage.MemoryStorage()
            self._requests: Any = limits.strategies.MovingWindowRateLimiter(storage)
            self._bytes: Any = limits.strategies.FixedWindowRateLimiter(storage)
            return
        pool = redis.asyncio.ConnectionPool.from_url(redis_url)
        self._redis = redis.asyncio.Redis(connection_pool=pool)
        shared = limits.aio.storage.RedisStorage(
            "async+" + redis_url,
            implementation="redispy",
            key_prefix=KEY_PREFIX,
            wrap_exceptions=True,
            connection_pool=pool,
        )
        self._requests = limits.aio.strategies.MovingWindowRateLimiter(shared)
        self._bytes = limits.aio.strategies.FixedWindowRateLimiter(shared)
        self._acquire_slot = self._redis.register_script(ACQUIRE_SLOT)
        self._renew_slot = self._redis.register_script(RENEW_SLOT)

    @property
    def shared(self) -> bool:
        """True when the counters live in Redis, shared by every replica."""
        return self._redis is not None

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose(close_connection_pool=True)

    # Requests ------------------------------------------------------------------------------

    async def check_tenant_request(self, tenant: TenantInfo) -> None:
        """Count a request to the tenant, or raise RateLimited when it sent too many this minute."""
        limit = tenant.limits.requests_per_minute
        if limit is None:
            return
        key = tenant_scoped_key(tenant.id, "rate", "requests")
        if not await self._hit(per_minute(limit), key):
            retry_after = await self._retry_after(per_minute(limit), key)
            record_rate_limit_rejection(tenant, "tenant_rate")
            raise RateLimited(
                f"tenant {tenant.slug!r} sent more than {limit} requests in a minute, the limit "
                f"of its plan; retry after {retry_after} seconds",
                retry_after=retry_after,
                scope="tenant",
                limit=limit,
                window_seconds=60,
            )

    async def check_user_request(self, tenant: TenantInfo, user_id: uuid.UUID) -> None:
        """Count a request of one user, or raise RateLimited when the user sent too many."""
        limit = tenant.limits.user_requests_per_minute
        if limit is None:
            return
        key = tenant_scoped_key(tenant.id, "rate", "user", str(user_id))
        if not await self._hit(per_minute(limit), key):
            retry_after = await self._retry_after(per_minute(limit), key)
            record_rate_limit_rejection(tenant, "user_rate")
            raise RateLimited(
                f"this user sent more than {limit} requests in a minute, the limit for each user "
                f"of tenant {tenant.slug!r}; retry after {retry_after} seconds",
                retry_after=retry_after,
                scope="user",
                limit=limit,
                window_seconds=60,
            )

    async def _hit(self, item: RateLimitItem, key: str, cost: int = 1) -> bool:
        try:
            return bool(await _result(self._requests.hit(item, key, cost=cost)))
        except (StorageError, RedisError) as exc:
            self._storage_failed(exc)
            return True

    async def _retry_after(self, item: RateLimitItem, key: str) -> int:
        try:
            stats = await _result(self._requests.get_window_stats(item, key))
        except (StorageError, RedisError) as exc:
            self._storage_failed(exc)
            return 1
        return max(1, math.ceil(stats.reset_time - time.time()))

    # Transfers -----------------------------------------------------------------------------

    async def acquire_transfer(self, tenant: TenantInfo) -> TransferSlot:
        """Take one of the tenant's transfer slots, or raise RateLimited when all are in use."""
        limit = tenant.limits.concurrent_transfers
        if limit is None:
            return UNLIMITED_SLOT
        key = tenant_scoped_key(tenant.id, "transfers")
        token = uuid.uuid4().hex
        if not await self._take_slot(key, limit, token):
            record_rate_limit_rejection(tenant, "transfers")
            raise RateLimited(
                f"tenant {tenant.slug!r} has {limit} uploads and downloads running, the limit of "
                "its plan; retry when one has finished",
                retry_after=1,
                scope="transfers",
                limit=limit,
            )
        return TransferSlot(self, key, token, self._lease_seconds)

    async def _take_slot(self, key: str, limit: int, token: str) -> bool:
        if self._redis is None:
            now = time.monotonic()
            with self._slots_lock:
                leases = self._slots.setdefault(key, {})
                for expired in [other for other, expiry in leases.items() if expiry <= now]:
                    del leases[expired]
                if len(leases) >= limit:
                    return False
                leases[token] = now + self._lease_seconds
                return True
        try:
            taken = await self._acquire_slot(
                keys=[self._slot_key(key)], args=[self._lease_seconds, limit, token]
            )
            return bool(taken)
        except RedisError as exc:
            self._storage_failed(exc)
            return True

    async def renew_slot(self, key: str, token: str) -> None:
        if self._redis is None:
            with self._slots_lock:
                leases = self._slots.get(key)
                if leases is not None and token in leases:
                    leases[token] = time.monotonic() + self._lease_seconds
            return
        try:
            await self._renew_slot(keys=[self._slot_key(key)], args=[self._lease_seconds, token])
        except RedisError as exc:
            self._storage_failed(exc)

    async def release_slot(self, key: str, token: str) -> None:
        if self._redis is None:
            with self._slots_lock:
                leases = self._slots.get(key)
                if leases is not None:
                    leases.pop(token, None)
                    if not leases:
                        del self._slots[key]
            return
        try:
            await self._redis.zrem(self._slot_key(key), token)
        except RedisError as exc:
            self._storage_failed(exc)

    @staticmethod
    def _slot_key(key: str) -> str:
        return f"{KEY_PREFIX}:{key}"

    # Bandwidth -----------------------------------------------------------------------------

    async def throttle(self, tenant: TenantInfo, size: int) -> None:
        """Wait until the tenant's bandwidth allows `size` more bytes; return at once if unlimited."""
        limit = tenant.limits.bandwidth_bytes_per_second
        if limit is None or size <= 0:
            return
        item = per_second(limit)
        key = tenant_scoped_key(tenant.id, "rate", "bytes")
        remaining = size
        while remaining > 0:
            # A window admits at most `limit` bytes, so a larger piece is counted in parts.
            part = min(remaining, limit)
            try:
                admitted = await _result(self._bytes.hit(item, key, cost=part))
                if not admitted:
                    stats = await _result(self._bytes.get_window_stats(item, key))
            except (StorageError, RedisError) as exc:
                self._storage_failed(exc)
                return
            if admitted:
                remaining -= part
            else:
                await self._sleep(min(max(stats.reset_time - time.time(), 0.01), 1.0))

    def _storage_failed(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_storage_error >= STORAGE_ERROR_LOG_INTERVAL:
            self._last_storage_error = now
            log.error(
                "rate_limit_storage_failed",
                error=f"{type(exc).__name__}: {exc}",
                advice="requests are not rate-limited until Redis answers again",
            )
