"""Login rate limits: per tenant, shared by replicas through Redis, and open while Redis is down."""

from __future__ import annotations

import uuid

from strongroom.tenancy.rate_limits import FailureLimiter, RateLimit

TENANT = uuid.uuid4()
OTHER_TENANT = uuid.uuid4()


def test_login_limit_in_memory_per_tenant() -> None:
    limit = RateLimit("login-address", "2/minute")

    limit.hit(TENANT, "192.0.2.7")
    limit.hit(TENANT, "192.0.2.7")

    assert limit.retry_after(TENANT, "192.0.2.7") is not None
    assert limit.retry_after(OTHER_TENANT, "192.0.2.7") is None
    assert limit.retry_after(TENANT, "192.0.2.8") is None


def test_login_limit_shared_by_replicas(redis_url: str) -> None:
    # Two instances stand for two server processes with the same STRONGROOM_REDIS_URL.
    first, second = (
        RateLimit("login-account", "3/minute", redis_url),
        RateLimit("login-account", "3/minute", redis_url),
    )

    first.hit(TENANT, "alice")
    second.hit(TENANT, "alice")
    before = first.retry_after(TENANT, "alice")
    second.hit(TENANT, "alice")

    assert before is None
    assert first.retry_after(TENANT, "alice") is not None
    assert second.retry_after(OTHER_TENANT, "alice") is None
    second.clear(TENANT, "alice")
    assert first.retry_after(TENANT, "alice") is None


def test_webdav_failures_shared_by_replicas(redis_url: str) -> None:
    first, second = FailureLimiter("webdav", 2, redis_url), FailureLimiter("webdav", 2, redis_url)

    first.record_failure(TENANT, "198.51.100.4")
    second.record_failure(TENANT, "198.51.100.4")

    wait = first.retry_after(TENANT, "198.51.100.4")
    assert wait is not None
    assert 1 <= wait <= 60
    assert second.retry_after(OTHER_TENANT, "198.51.100.4") is None


def test_login_limit_open_while_redis_down() -> None:
    # Nothing listens on port 1 of the loopback interface.
    limit = RateLimit("login-address", "1/minute", "redis://127.0.0.1:1/0")
    failures = FailureLimiter("webdav", 1, "redis://127.0.0.1:1/0")

    limit.hit(TENANT, "192.0.2.7")
    limit.hit(TENANT, "192.0.2.7")
    failures.record_failure(TENANT, "192.0.2.7")

    assert limit.retry_after(TENANT, "192.0.2.7") is None
    assert failures.retry_after(TENANT, "192.0.2.7") is None
