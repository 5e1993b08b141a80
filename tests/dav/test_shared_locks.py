"""WebDAV locks in Redis, shared by two replicas of one deployment, kept apart per tenant and drive.

Replica A is the test's runtime on the session's live server. Replica B is a
second runtime on the same database and Redis, on a live server of its own.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from wsgidav.dav_error import DAVError

from strongroom.base.config import Settings
from strongroom.base.scoping import tenant_scoped_key
from strongroom.interfaces.webdav.locks import MAX_LOCK_SECONDS, DriveLockStorage, current_drive
from strongroom.runtime import Runtime, build_runtime
from strongroom.tenancy.context import TenantInfo, current_tenant
from tests.conftest import Cast, LiveServer
from tests.dav.conftest import DavUser, add_app_password
from tests.dav.test_clients import FAILED_TEST, SUMMARY, run_litmus
from tests.dav.test_locks import OWNER_TEXT, discovery, lock, lock_seconds


@pytest.fixture
def settings(settings: Settings, redis_url: str) -> Settings:
    return settings.model_copy(update={"redis_url": redis_url})


@pytest.fixture
def replica_b(runtime: Runtime) -> Iterator[LiveServer]:
    second = build_runtime(runtime.settings, migrate=False)
    server = LiveServer(second)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        second.close()


@pytest.fixture
def admin_dav(runtime: Runtime, cast: Cast, live_server: LiveServer) -> DavUser:
    """A second user of acme's tenant: the same WebDAV root, a drive of their own."""
    return add_app_password(runtime, cast.acme_admin, live_server)


def through(server: LiveServer, user: DavUser) -> DavUser:
    """Return the same user and password, sending requests to `server`."""
    return DavUser(user.member, user.password, f"{server.url}/t/{user.tenant.slug}/dav/")


def token_of(response: httpx.Response) -> str:
    assert response.status_code in (200, 201), response.text
    return response.headers["Lock-Token"].strip("<>")


def put(client: httpx.Client, user: DavUser, path: str, body: bytes, **headers: str) -> int:
    return client.put(user.url(path), content=body, headers=headers, auth=user.auth).status_code


def test_lock_blocks_writes_on_other_replica(
    client: httpx.Client, acme_dav: DavUser, replica_b: LiveServer
) -> None:
    on_b = through(replica_b, acme_dav)
    put(client, acme_dav, "doc.txt", b"first")
    token = token_of(lock(client, acme_dav, "doc.txt"))

    put_b = put(client, on_b, "doc.txt", b"second")
    delete_b = client.delete(on_b.url("doc.txt"), auth=on_b.auth)
    move_b = client.request(
        "MOVE", on_b.url("doc.txt"), headers={"Destination": on_b.url("moved.txt")}, auth=on_b.auth
    )
    with_token = put(client, on_b, "doc.txt", b"third", If=f"(<{token}>)")

    assert put_b == 423
    assert delete_b.status_code == 423
    assert move_b.status_code == 423
    assert with_token == 204
    assert client.get(acme_dav.url("doc.txt"), auth=acme_dav.auth).content == b"third"


def test_unlock_on_other_replica_frees_path(
    client: httpx.Client, acme_dav: DavUser, replica_b: LiveServer
) -> None:
    on_b = through(replica_b, acme_dav)
    put(client, acme_dav, "doc.txt", b"first")
    token = token_of(lock(client, acme_dav, "doc.txt"))

    unlocked = client.request(
        "UNLOCK", on_b.url("doc.txt"), headers={"Lock-Token": f"<{token}>"}, auth=on_b.auth
    )
    put_a = put(client, acme_dav, "doc.txt", b"second")
    found = discovery(client, acme_dav, "doc.txt", "0")

    assert unlocked.status_code == 204
    assert put_a == 204
    assert token.encode() not in found.content


def test_refresh_on_other_replica(
    client: httpx.Client, acme_dav: DavUser, replica_b: LiveServer
) -> None:
    on_b = through(replica_b, acme_dav)
    put(client, acme_dav, "doc.txt", b"first")
    locked = lock(client, acme_dav, "doc.txt", "Second-120")
    token = token_of(locked)

    refreshed = client.request(
        "LOCK",
        on_b.url("doc.txt"),
        headers={"Timeout": "Infinite", "If": f"(<{token}>)"},
        auth=on_b.auth,
    )
    seen_on_a = discovery(client, acme_dav, "doc.txt", "0")

    (before,) = lock_seconds(locked)
    assert before <= 120
    assert refreshed.status_code == 200
    for response in (refreshed, seen_on_a):
        (seconds,) = lock_seconds(response)
        assert MAX_LOCK_SECONDS - 60 <= seconds <= MAX_LOCK_SECONDS
    assert put(client, acme_dav, "doc.txt", b"second") == 423


def test_lock_expires_on_both_replicas(
    client: httpx.Client, acme_dav: DavUser, replica_b: LiveServer
) -> None:
    on_b = through(replica_b, acme_dav)
    put(client, acme_dav, "doc.txt", b"first")
    token_of(lock(client, acme_dav, "doc.txt", "Second-1"))

    blocked = put(client, on_b, "doc.txt", b"second")
    time.sleep(1.2)
    after_expiry_b = put(client, on_b, "doc.txt", b"third")
    after_expiry_a = discovery(client, acme_dav, "doc.txt", "0")

    assert blocked == 423
    assert after_expiry_b == 204
    assert b"activelock" not in after_expiry_a.content


def test_lock_key_names_tenant_and_drive(
    client: httpx.Client, acme_dav: DavUser, redis_url: str
) -> None:
    put(client, acme_dav, "doc.txt", b"first")
    token = token_of(lock(client, acme_dav, "doc.txt", "Infinite"))
    scope = tenant_scoped_key(acme_dav.tenant.id, "dav-locks", str(acme_dav.member.user_id))

    with redis.Redis.from_url(redis_url) as direct:
        keys = {key.decode() for key in direct.scan_iter("*dav-locks*")}
        lock_key = f"strongroom:{{{scope}}}:lock:{token}"
        milliseconds = direct.pttl(lock_key)

    assert keys == {lock_key, f"strongroom:{{{scope}}}:index"}
    assert (MAX_LOCK_SECONDS - 60) * 1000 <= milliseconds <= MAX_LOCK_SECONDS * 1000


def test_locks_apart_across_tenants_and_drives(
    client: httpx.Client,
    acme_dav: DavUser,
    admin_dav: DavUser,
    globex_dav: DavUser,
    replica_b: LiveServer,
) -> None:
    for user, body in ((acme_dav, b"member"), (admin_dav, b"admin"), (globex_dav, b"globex")):
        put(client, user, "same.txt", body)
    token = token_of(lock(client, acme_dav, "same.txt"))
    admin_b, globex_b, member_b = (through(replica_b, u) for u in (admin_dav, globex_dav, acme_dav))

    admin_put = put(client, admin_b, "same.txt", b"admin2")
    globex_put = put(client, globex_b, "same.txt", b"globex2")
    others_found = [discovery(client, user, "same.txt", "0") for user in (admin_b, globex_b)]
    admin_token = token_of(lock(client, admin_b, "same.txt"))
    globex_token = token_of(lock(client, globex_b, "same.txt"))
    globex_unlock = client.request(
        "UNLOCK", globex_b.url("same.txt"), headers={"Lock-Token": f"<{token}>"}, auth=globex_b.auth
    )
    member_put = put(client, member_b, "same.txt", b"member2")
    member_found = discovery(client, member_b, "same.txt", "0")

    assert admin_put == 204
    assert globex_put == 204
    for found in others_found:
        assert found.status_code == 207
        assert b"activelock" not in found.content
        assert OWNER_TEXT.encode() not in found.content
        assert token.encode() not in found.content
    # No lock in globex's drive has that token, so acme's lock stays.
    assert globex_unlock.status_code == 409
    assert member_put == 423
    assert token.encode() in member_found.content
    assert admin_token.encode() not in member_found.content
    assert globex_token.encode() not in member_found.content


def test_litmus_locks_on_redis(tmp_path: Path, acme_dav: DavUser) -> None:
    output = run_litmus(tmp_path, acme_dav, ("locks",))
    summaries = {match["suite"]: match for match in SUMMARY.finditer(output)}
    assert list(summaries) == ["locks"], output
    assert FAILED_TEST.findall(output) == [], output
    assert int(summaries["locks"]["failed"]) == 0, output
    assert summaries["locks"]["passed"] == summaries["locks"]["run"], output


# The storage itself, in memory and in Redis --------------------------------------------------


def new_lock(scope: str = "exclusive", depth: str = "0", timeout: float = 60) -> dict[str, Any]:
    return {
        "type": "write",
        "scope": scope,
        "depth": depth,
        "owner": b"<D:owner xmlns:D='DAV:'>tests</D:owner>",
        "timeout": timeout,
        "principal": "member@acme.test",
    }


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_url) as client:
        yield client


@pytest.fixture(params=["memory", "redis"])
def storage(request: pytest.FixtureRequest) -> DriveLockStorage:
    if request.param == "memory":
        return DriveLockStorage()
    return DriveLockStorage(request.getfixturevalue("redis_client"))


class InDrive:
    """A context in which lock storage calls find the given tenant and drive."""

    def __init__(self, tenant: TenantInfo, drive: uuid.UUID) -> None:
        self.tenant = tenant
        self.drive = drive

    def __enter__(self) -> None:
        self._tokens = (current_tenant.set(self.tenant), current_drive.set(self.drive))

    def __exit__(self, *_exc: object) -> None:
        current_drive.reset(self._tokens[1])
        current_tenant.reset(self._tokens[0])


def everything(storage: DriveLockStorage) -> list[Any]:
    return storage.get_lock_list("/", include_root=True, include_children=True, token_only=True)


def test_storage_contract(storage: DriveLockStorage, cast: Cast) -> None:
    drive = uuid.uuid4()
    with InDrive(cast.acme, drive):
        folder = storage.create("/docs/", new_lock("shared", "infinity"))
        inner = storage.create("/docs/a.txt", new_lock("shared"))
        other = storage.create("/other", new_lock())
        stored = storage.get(folder["token"])
        # Read now: the in-memory storage returns its own dictionary, which refresh changes.
        stored_seconds = None if stored is None else stored["expire"] - time.time()
        unknown = storage.get("opaquelocktoken:0x1")
        own = storage.get_lock_list(
            "/docs", include_root=True, include_children=False, token_only=True
        )
        below = storage.get_lock_list(
            "/docs", include_root=False, include_children=True, token_only=False
        )
        all_tokens = everything(storage)
        refreshed = storage.refresh(folder["token"], timeout=120)
        refreshed_stored = storage.get(folder["token"])
        deleted = storage.delete(inner["token"])
        deleted_again = storage.delete(inner["token"])
        after_delete = everything(storage)
    with InDrive(cast.acme, uuid.uuid4()):
        other_drive = (storage.get(folder["token"]), everything(storage))
    with InDrive(cast.globex, drive):
        other_tenant = (storage.get(folder["token"]), everything(storage))
    with InDrive(cast.acme, drive):
        storage.clear()
        after_clear = everything(storage)

    assert folder["root"] == "/docs"
    assert folder["token"].startswith("opaquelocktoken:")
    assert stored is not None
    for name in ("root", "scope", "depth", "owner", "principal", "token", "timeout"):
        assert stored[name] == folder[name], name
    assert stored_seconds is not None
    assert 55 <= stored_seconds <= 60
    assert unknown is None
    assert own == [folder["token"]]
    assert [found["token"] for found in below] == [inner["token"]]
    assert below[0]["owner"] == new_lock()["owner"]
    assert sorted(all_tokens) == sorted(lock["token"] for lock in (folder, inner, other))
    assert refreshed["timeout"] == 120
    assert refreshed_stored is not None
    assert refreshed_stored["timeout"] == 120
    assert 115 <= refreshed_stored["expire"] - time.time() <= 120
    assert deleted is True
    assert deleted_again is False
    assert sorted(after_delete) == sorted([folder["token"], other["token"]])
    assert other_drive == (None, [])
    assert other_tenant == (None, [])
    assert after_clear == []


def test_storage_lock_expires(storage: DriveLockStorage, cast: Cast) -> None:
    with InDrive(cast.acme, uuid.uuid4()):
        short = storage.create("/a", new_lock(timeout=0.3))
        capped = storage.create("/b", new_lock(timeout=-1))
        time.sleep(0.5)

        assert storage.get(short["token"]) is None
        assert everything(storage) == [capped["token"]]
        assert capped["timeout"] == MAX_LOCK_SECONDS


def test_redis_storage_rejects_conflict_of_other_replica(
    redis_client: redis.Redis, redis_url: str, cast: Cast
) -> None:
    # Each replica's lock manager checks for conflicts in its own process before it creates,
    # so two LOCKs at once can both pass that check: the storage must reject the second.
    with redis.Redis.from_url(redis_url) as second_client:
        replica_a, replica_b = DriveLockStorage(redis_client), DriveLockStorage(second_client)
        with InDrive(cast.acme, uuid.uuid4()):
            replica_a.create("/docs/a.txt", new_lock())
            replica_a.create("/shared", new_lock("shared"))
            outcomes = {}
            attempts = {
                "same path": lambda: replica_b.create("/docs/a.txt", new_lock()),
                "shared on exclusive": lambda: replica_b.create("/docs/a.txt", new_lock("shared")),
                "infinity above": lambda: replica_b.create("/docs", new_lock("shared", "infinity")),
                "exclusive on shared": lambda: replica_b.create("/shared", new_lock()),
            }
            for name, attempt in attempts.items():
                with pytest.raises(DAVError) as raised:
                    attempt()
                outcomes[name] = raised.value.value
            allowed = [
                replica_b.create("/shared", new_lock("shared")),
                replica_b.create("/docs", new_lock("exclusive", "0")),
                replica_b.create("/docs/b.txt", new_lock()),
            ]
            tokens_held = everything(replica_a)

    assert outcomes == dict.fromkeys(attempts, 423)
    assert all(lock["token"] in tokens_held for lock in allowed)
    assert len(tokens_held) == 5


def test_redis_storage_down_is_unavailable(cast: Cast) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port once the probe is closed.
    # No retries, which would only make the test wait.
    no_retry = Retry(NoBackoff(), 0)
    with redis.Redis(host="127.0.0.1", port=port, retry=no_retry) as unreachable:
        storage = DriveLockStorage(unreachable)
        with InDrive(cast.acme, uuid.uuid4()), pytest.raises(DAVError) as raised:
            everything(storage)

    assert raised.value.value == 503
    assert "lock store is unavailable" in (raised.value.context_info or "")
