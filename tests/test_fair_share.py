"""Fair sharing: request rates per tenant and per user, concurrent transfers and bandwidth.

The in-process counters are tested through the API; the Redis counters
through two FairShare objects, as two replicas would hold, and through two
server processes that share one Redis.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace

import anyio
import httpx
import sqlalchemy

from strongroom.base.errors import RateLimited
from strongroom.interfaces.api.files import open_stream
from strongroom.runtime import Runtime
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.events import OPERATOR
from strongroom.tenancy.fair_share import FairShare
from strongroom.tenancy.limits import TenantLimits
from strongroom.tenancy.metering import Meter
from strongroom.tenancy.plans import set_limit_overrides
from tests.conftest import Cast, Member
from tests.services.strongroom import StrongroomProcess


def me(client: httpx.Client, member: Member) -> httpx.Response:
    return client.get(member.url("me"), headers=member.headers)


def limited_tenant(**limits: int) -> TenantInfo:
    return TenantInfo(
        id=uuid.uuid4(),
        slug="acme",
        name="Acme",
        status="active",
        isolation="shared",
        server="default",
        placement="shared",
        quota_bytes=None,
        limits=TenantLimits(**limits),
    )


# Requests -------------------------------------------------------------------------------------


def test_tenant_rate_limit_is_429(client: httpx.Client, cast: Cast, runtime: Runtime) -> None:
    set_limit_overrides(
        runtime.catalog, runtime.stores, "acme", {"requests_per_minute": 3}, OPERATOR
    )

    statuses = [me(client, member).status_code for member in [cast.acme_admin, cast.acme_member] * 2]
    rejected = me(client, cast.acme_admin)
    other_tenant = me(client, cast.globex_member)

    assert statuses == [200, 200, 200, 429]
    assert rejected.status_code == 429
    assert 1 <= int(rejected.headers["retry-after"]) <= 60
    problem = rejected.json()
    assert problem["type"].endswith("rate-limited")
    assert problem["limit"] == 3
    assert problem["scope"] == "tenant"
    assert problem["window_seconds"] == 60
    assert "tenant 'acme' sent more than 3 requests in a minute" in problem["detail"]
    assert other_tenant.status_code == 200


def test_tenant_rate_limit_counts_bad_tokens(client: httpx.Client, cast: Cast, runtime: Runtime) -> None:
    set_limit_overrides(
        runtime.catalog, runtime.stores, "acme", {"requests_per_minute": 2}, OPERATOR
    )
    stranger = {"Authorization": "Bearer sr_not-a-token"}

    unauthenticated = [client.get(cast.acme_admin.url("me"), headers=stranger) for _ in range(2)]

    assert [response.status_code for response in unauthenticated] == [401, 401]
    assert me(client, cast.acme_admin).status_code == 429


def test_user_rate_limit_is_per_user(client: httpx.Client, cast: Cast, runtime: Runtime) -> None:
    set_limit_overrides(
        runtime.catalog, runtime.stores, "acme", {"user_requests_per_minute": 2}, OPERATOR
    )

    member_statuses = [me(client, cast.acme_member).status_code for _ in range(3)]
    admin = me(client, cast.acme_admin)
    rejected = me(client, cast.acme_member)

    assert member_statuses == [200, 200, 429]
    assert admin.status_code == 200
    assert rejected.json()["scope"] == "user"
    assert "this user sent more than 2 requests in a minute" in rejected.json()["detail"]


def test_unlimited_tenant_is_never_limited(client: httpx.Client, cast: Cast) -> None:
    statuses = {me(client, cast.acme_member).status_code for _ in range(30)}

    assert statuses == {200}


# Transfers ------------------------------------------------------------------------------------


def test_concurrent_transfers_limit_is_429(
    client: httpx.Client, cast: Cast, runtime: Runtime
) -> None:
    member = cast.acme_member
    assert client.put(member.url("files/a.txt"), content=b"a", headers=member.headers).is_success
    tenant = set_limit_overrides(
        runtime.catalog, runtime.stores, "acme", {"concurrent_transfers": 1}, OPERATOR
    )
    # The test takes the only slot, as a slow upload in flight would.
    held = anyio.run(runtime.fair_share.acquire_transfer, tenant)

    upload = client.put(member.url("files/b.txt"), content=b"b", headers=member.headers)
    download = client.get(member.url("files/a.txt"), headers=member.headers)
    head = client.head(member.url("files/a.txt"), headers=member.headers)
    other_tenant = client.put(
        cast.globex_member.url("files/b.txt"), content=b"b", headers=cast.globex_member.headers
    )
    anyio.run(held.release)
    after = client.get(member.url("files/a.txt"), headers=member.headers)

    assert upload.status_code == 429
    assert upload.json()["scope"] == "transfers"
    assert upload.headers["retry-after"] == "1"
    assert download.status_code == 429
    assert head.status_code == 200
    assert other_tenant.status_code == 201
    assert after.status_code == 200


def test_finished_transfers_free_their_slot(
    client: httpx.Client, cast: Cast, runtime: Runtime
) -> None:
    member = cast.acme_member
    set_limit_overrides(
        runtime.catalog, runtime.stores, "acme", {"concurrent_transfers": 1}, OPERATOR
    )

    statuses = []
    for index in range(3):
        path = member.url(f"files/f{index}.txt")
        statuses.append(client.put(path, content=b"x" * 100, headers=member.headers).status_code)
        statuses.append(client.get(path, headers=member.headers).status_code)
    last = client.put(member.url("files/last.txt"), content=b"", headers=member.headers)

    assert statuses == [201, 200] * 3
    assert last.status_code == 201


# Bandwidth ------------------------------------------------------------------------------------


def test_bandwidth_waits_beyond_limit() -> None:
    waits: list[float] = []

    async def record_wait(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(seconds)

    fair_share = FairShare(sleep=record_wait)
    tenant = limited_tenant(bandwidth_bytes_per_second=1000)

    asyncio.run(fair_share.throttle(tenant, 500))
    within = list(waits)
    asyncio.run(fair_share.throttle(tenant, 2500))

    assert within == []
    assert waits
    assert all(0 < seconds <= 1 for seconds in waits)


def test_bandwidth_limited_transfers_complete(
    client: httpx.Client, cast: Cast, runtime: Runtime
) -> None:
    member = cast.acme_member
    set_limit_overrides(
        runtime.catalog, runtime.stores, "acme", {"bandwidth_bytes_per_second": 64 * 1024}, OPERATOR
    )
    body = bytes(range(256)) * 400

    stored = client.put(member.url("files/big.bin"), content=body, headers=member.headers)
    fetched = client.get(member.url("files/big.bin"), headers=member.headers)

    assert stored.status_code == 201
    assert fetched.status_code == 200
    assert fetched.content == body


def test_bandwidth_unlimited_never_waits() -> None:
    waits: list[float] = []

    async def record_wait(seconds: float) -> None:
        waits.append(seconds)

    asyncio.run(FairShare(sleep=record_wait).throttle(limited_tenant(), 10**9))

    assert waits == []


# Redis ----------------------------------------------------------------------------------------


def test_redis_counters_shared_between_replicas(redis_url: str) -> None:
    tenant = limited_tenant(requests_per_minute=3, concurrent_transfers=1)

    async def scenario() -> tuple[list[bool], bool, bool]:
        replicas = [FairShare(redis_url), FairShare(redis_url)]
        try:
            admitted = []
            for replica in replicas * 2:
                try:
                    await replica.check_tenant_request(tenant)
                    admitted.append(True)
                except RateLimited:
                    admitted.append(False)
            slot = await replicas[0].acquire_transfer(tenant)
            try:
                await replicas[1].acquire_transfer(tenant)
                second_slot = True
            except RateLimited:
                second_slot = False
            await slot.release()
            after_release = await replicas[1].acquire_transfer(tenant)
            await after_release.release()
            return admitted, second_slot, True
        finally:
            for replica in replicas:
                await replica.aclose()

    admitted, second_slot, released = asyncio.run(scenario())

    assert admitted == [True, True, True, False]
    assert second_slot is False
    assert released is True


def test_redis_down_lets_requests_through() -> None:
    # Nothing listens on port 1 of the loopback interface.
    tenant = limited_tenant(requests_per_minute=1, concurrent_transfers=1)

    async def scenario() -> None:
        fair_share = FairShare("redis://127.0.0.1:1/0")
        try:
            for _ in range(3):
                await fair_share.check_tenant_request(tenant)
            slot = await fair_share.acquire_transfer(tenant)
            await slot.release()
        finally:
            await fair_share.aclose()

    asyncio.run(scenario())


def test_two_servers_share_one_limit(tmp_path: Path, redis_url: str) -> None:
    environment = {"STRONGROOM_REDIS_URL": redis_url, "STRONGROOM_TENANT_CACHE_SECONDS": "0"}
    first = StrongroomProcess(tmp_path / "data", extra_env=environment)
    second = StrongroomProcess(tmp_path / "data", extra_env=environment)
    try:
        token = first.make_member("acme", "alice@acme.test")
        limited = first.cli("tenant", "limits", "acme", "--requests-per-minute", "6")
        assert limited.returncode == 0, limited.stderr
        first.start()
        second.start()

        headers = {"Authorization": f"Bearer {token}"}
        responses = [
            httpx.get(f"{server.url}/t/acme/api/v1/me", headers=headers, timeout=30)
            for server in [first, second] * 4
        ]
    finally:
        first.stop()
        second.stop()

    statuses = [response.status_code for response in responses]
    assert statuses.count(200) == 6
    assert statuses.count(429) == 2
    assert statuses[-2:] == [429, 429]
    assert all("retry-after" in response.headers for response in responses[-2:])


def test_cut_off_downloads_release_redis_slots(redis_url: str) -> None:
    """Downloads cancelled by hang-ups release their slots, though each release waits for Redis.

    Starlette cancels a stream's task when its client goes away, and anyio
    cancels every later wait of that task too. Two releases at once need a
    second Redis connection, whose connect was cancelled before ZREM was sent.
    """
    tenant = limited_tenant(concurrent_transfers=2)
    go_on = threading.Event()

    def pieces() -> Iterator[bytes]:
        yield b"first"
        yield b"second"
        go_on.wait(10)
        yield b"third"

    async def scenario() -> int:
        fair_share = FairShare(redis_url)
        runtime = SimpleNamespace(
            fair_share=fair_share, meter=Meter(sqlalchemy.create_engine("sqlite://"))
        )
        try:
            bodies = [
                await open_stream(runtime, tenant, pieces())  # type: ignore[arg-type]
                for _ in range(2)
            ]
            taken = anyio.Event()
            received = []

            async def consume(body: AsyncIterator[bytes]) -> None:
                # As Starlette's stream_response: `send` returns at once, so the stream is
                # waiting for its third piece when the hang-up cancels it.
                async for piece in body:
                    received.append(piece)
                    if len(received) == 4:
                        taken.set()

            with anyio.CancelScope() as hang_up:
                async with anyio.create_task_group() as group:
                    for body in bodies:
                        group.start_soon(consume, body)
                    await taken.wait()
                    hang_up.cancel()
            free = 0
            for _attempt in range(2):
                try:
                    await fair_share.acquire_transfer(tenant)
                    free += 1
                except RateLimited:
                    pass
            return free
        finally:
            go_on.set()
            await fair_share.aclose()

    assert asyncio.run(scenario()) == 2


def start_download(port: int, path: str, token: str) -> tuple[socket.socket, int]:
    """GET `path` on a socket that reads only the status line, as a client that stalls."""
    connection = socket.create_connection(("127.0.0.1", port))
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n"
    connection.sendall(request.encode())
    status_line = b""
    while len(status_line) < len(b"HTTP/1.1 200"):
        received = connection.recv(12 - len(status_line))
        assert received, "the server closed the connection before its status line"
        status_line += received
    return connection, int(status_line.split()[1])


def test_server_frees_cut_off_download_slots(tmp_path: Path, redis_url: str) -> None:
    """Clients that hang up at once get their slots back at once, not when the leases expire."""
    environment = {"STRONGROOM_REDIS_URL": redis_url, "STRONGROOM_TENANT_CACHE_SECONDS": "0"}
    server = StrongroomProcess(tmp_path / "data", extra_env=environment)
    slots, rounds = 3, 4
    rejected_rounds = 0
    try:
        token = server.make_member("acme", "alice@acme.test")
        limited = server.cli("tenant", "limits", "acme", "--concurrent-transfers", str(slots))
        assert limited.returncode == 0, limited.stderr
        server.start()
        # Larger than what the kernel and the read-ahead buffer, so each download stalls.
        body = bytes(range(256)) * (24 * 1024 * 1024 // 256)
        stored = httpx.put(
            f"{server.url}/t/acme/api/v1/files/large.bin",
            content=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        assert stored.status_code == 201, stored.text
        for _round in range(rounds):
            # The server needs a moment to see the last round's hang-ups. A slot that a
            # cut-off download keeps stays taken for its whole lease, two minutes.
            deadline = time.monotonic() + 10
            while True:
                started = [
                    start_download(server.port, "/t/acme/api/v1/files/large.bin", token)
                    for _ in range(slots)
                ]
                for connection, _status in started:
                    connection.close()
                if all(status == 200 for _connection, status in started):
                    break
                if time.monotonic() > deadline:
                    rejected_rounds += 1
                    break
                time.sleep(0.1)
    finally:
        server.stop()

    assert rejected_rounds == 0


def test_unrenewed_transfer_lease_expires() -> None:
    tenant = limited_tenant(concurrent_transfers=1)

    async def scenario() -> tuple[bool, bool]:
        fair_share = FairShare(lease_seconds=0.05)
        await fair_share.acquire_transfer(tenant)
        try:
            await fair_share.acquire_transfer(tenant)
            before = True
        except RateLimited:
            before = False
        # The first slot is never released, as when a response's cleanup never ran.
        await asyncio.sleep(0.1)
        after = await fair_share.acquire_transfer(tenant)
        await after.release()
        return before, True

    before, after = asyncio.run(scenario())

    assert before is False
    assert after is True
