"""The tenant context in threads and concurrent requests.

A worker thread of `anyio.to_thread` runs in a copy of its caller's context,
so it reads the caller's tenant, and a worker reused by the next caller reads
that caller's tenant or none. `start_thread_with_context` keeps the tenant of
the moment it started. A plain thread, or a pool thread, has no tenant, and
the stores raise there instead of guessing. Under concurrent requests to two
tenants each response holds its own tenant's bytes only.

Background jobs are not built yet, so their tenant id is not tested here.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import anyio
import anyio.to_thread
import httpx
import pytest

from strongroom.base.errors import MissingTenantContext
from strongroom.runtime import Runtime
from strongroom.tenancy.context import (
    TenantInfo,
    bound_tenant,
    current_tenant,
    start_thread_with_context,
)
from tests.conftest import Cast, Member
from tests.security.tally import Tally

FAMILY = "tenant context"


def seen_by_worker(tenants: list[TenantInfo | None]) -> list[tuple[TenantInfo | None, int]]:
    """Call a worker thread once per tenant (None for no tenant) and return what each call read.

    A limiter of one makes every call reuse the same worker thread.
    """

    def look() -> tuple[TenantInfo | None, int]:
        return current_tenant.get(), threading.get_ident()

    async def main() -> list[tuple[TenantInfo | None, int]]:
        limiter = anyio.CapacityLimiter(1)
        seen = []
        for tenant in tenants:
            if tenant is None:
                seen.append(await anyio.to_thread.run_sync(look, limiter=limiter))
                continue
            with bound_tenant(tenant):
                seen.append(await anyio.to_thread.run_sync(look, limiter=limiter))
        return seen

    return anyio.run(main)


def test_reused_worker_sees_each_caller(cast: Cast) -> None:
    callers = [cast.acme, cast.globex, None, cast.acme]

    seen = seen_by_worker(callers)

    assert [tenant for tenant, _thread in seen] == callers
    assert len({thread for _tenant, thread in seen}) == 1


def test_started_thread_keeps_start_tenant(cast: Cast) -> None:
    started = threading.Event()
    switched = threading.Event()
    seen: list[TenantInfo | None] = []

    def work() -> None:
        started.set()
        switched.wait(timeout=10)
        seen.append(current_tenant.get())

    with bound_tenant(cast.acme):
        thread = start_thread_with_context(work)
    started.wait(timeout=10)
    with bound_tenant(cast.globex):
        switched.set()
        thread.join(timeout=10)

    assert seen == [cast.acme]


def test_plain_thread_has_no_tenant(cast: Cast) -> None:
    seen: list[TenantInfo | None] = []

    with bound_tenant(cast.acme):
        thread = threading.Thread(target=lambda: seen.append(current_tenant.get()))
        thread.start()
        thread.join(timeout=10)

    assert seen == [None]


def test_pool_thread_has_no_tenant(runtime: Runtime, cast: Cast) -> None:
    def open_session() -> None:
        with runtime.stores.session():
            pass

    with bound_tenant(cast.acme), ThreadPoolExecutor(max_workers=1) as pool:
        tenant = pool.submit(current_tenant.get).result()
        failed = pool.submit(open_session).exception()

    assert tenant is None
    assert isinstance(failed, MissingTenantContext)


# Concurrent requests --------------------------------------------------------------------


REQUESTS = 120


def test_concurrent_requests_stay_apart(
    client: httpx.Client, cast: Cast, tally: Tally, where: str
) -> None:
    members = [cast.acme_member, cast.globex_member]
    bodies = {
        member.tenant.slug: f"only for {member.tenant.slug} ".encode() * 2000 for member in members
    }
    for member in members:
        client.put(
            member.url("files/mine.bin"), content=bodies[member.tenant.slug], headers=member.headers
        )

    def fetch(member: Member) -> tuple[str, bytes]:
        response = client.get(member.url("files/mine.bin"), headers=member.headers)
        return member.tenant.slug, response.content

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(fetch, [members[n % 2] for n in range(REQUESTS)]))
    tally.attempt(FAMILY, where, REQUESTS)
    mixed = [slug for slug, body in results if body != bodies[slug]]
    for _slug in mixed:
        tally.leak(FAMILY, where)

    assert mixed == []


@pytest.mark.parametrize("form", ["path", "host"])
def test_concurrent_me_names_own_user(
    client: httpx.Client, cast: Cast, form: str, tally: Tally, where: str
) -> None:
    members = [cast.acme_admin, cast.acme_member, cast.globex_admin, cast.globex_member]

    def me(member: Member) -> tuple[Member, dict]:
        if form == "path":
            response = client.get(member.url("me"), headers=member.headers)
        else:
            host = {"Host": f"{member.tenant.slug}.strongroom.test"}
            response = client.get("/api/v1/me", headers={**member.headers, **host})
        return member, response.json()

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(me, [members[n % 4] for n in range(REQUESTS)]))
    tally.attempt(FAMILY, where, REQUESTS)
    wrong = [
        member.email
        for member, body in results
        if (body.get("id"), body.get("tenant")) != (str(member.user_id), member.tenant.slug)
    ]
    for _email in wrong:
        tally.leak(FAMILY, where)

    assert wrong == []
