"""The short cache of checked API tokens: which tokens it keeps, for how long, and in which tenant."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import httpx
from sqlalchemy import update

from strongroom.identity.models import UserRow
from strongroom.identity.tokens import Principal, TokenCache
from strongroom.runtime import Runtime
from strongroom.tenancy.models import utcnow
from tests.conftest import Cast

SECRET = "sr_" + "x" * 43


def principal(expires_at: dt.datetime | None = None) -> Principal:
    return Principal(user_id=uuid.uuid4(), role="member", token_id=uuid.uuid4(), expires_at=expires_at)


def test_cache_returns_stored_principal() -> None:
    cache = TokenCache(seconds=60)
    tenant_id, stored = uuid.uuid4(), principal()

    cache.put(tenant_id, SECRET, stored)

    assert cache.get(tenant_id, SECRET) == stored


def test_cache_misses_in_other_tenant() -> None:
    cache = TokenCache(seconds=60)
    cache.put(uuid.uuid4(), SECRET, principal())

    assert cache.get(uuid.uuid4(), SECRET) is None


def test_cache_misses_other_secret() -> None:
    cache = TokenCache(seconds=60)
    tenant_id = uuid.uuid4()
    cache.put(tenant_id, SECRET, principal())

    assert cache.get(tenant_id, SECRET[:-1] + "y") is None


def test_cache_forgets_after_its_window() -> None:
    cache = TokenCache(seconds=0.05)
    tenant_id = uuid.uuid4()
    cache.put(tenant_id, SECRET, principal())

    time.sleep(0.06)

    assert cache.get(tenant_id, SECRET) is None


def test_cache_never_outlives_token_expiry() -> None:
    cache = TokenCache(seconds=60)
    tenant_id = uuid.uuid4()
    cache.put(tenant_id, SECRET, principal(expires_at=utcnow() + dt.timedelta(seconds=0.05)))

    time.sleep(0.06)

    assert cache.get(tenant_id, SECRET) is None


def test_cache_with_zero_seconds_keeps_nothing() -> None:
    cache = TokenCache(seconds=0)
    tenant_id = uuid.uuid4()

    cache.put(tenant_id, SECRET, principal())

    assert cache.get(tenant_id, SECRET) is None


def test_cache_stays_bounded() -> None:
    cache = TokenCache(seconds=60)
    tenant_id = uuid.uuid4()
    for number in range(TokenCache.MAX_ENTRIES + 5):
        cache.put(tenant_id, f"sr_{number}", principal())

    assert len(cache._entries) <= TokenCache.MAX_ENTRIES


def test_revocation_through_api_is_immediate(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    created = client.post(alice.url("tokens"), json={"name": "cached"}, headers=alice.headers).json()
    headers = {"Authorization": f"Bearer {created['token']}"}
    assert client.get(alice.url("folders/"), headers=headers).status_code == 200

    client.delete(alice.url(f"tokens/{created['id']}"), headers=alice.headers)

    assert client.get(alice.url("folders/"), headers=headers).status_code == 401


def test_change_behind_api_lands_within_window(
    client: httpx.Client, runtime: Runtime, cast: Cast
) -> None:
    alice = cast.acme_member
    runtime.tokens.seconds = 0.3
    assert client.get(alice.url("folders/"), headers=alice.headers).status_code == 200

    # A user disabled by another process (the command line, another replica) reaches
    # this one's cache only when the entry runs out.
    with runtime.stores.session(alice.tenant, write=True) as session:
        session.execute(update(UserRow).where(UserRow.id == alice.user_id).values(status="disabled"))
    deadline = time.monotonic() + 5
    status = 200
    while status == 200 and time.monotonic() < deadline:
        status = client.get(alice.url("folders/"), headers=alice.headers).status_code
        time.sleep(0.05)

    assert status == 401
