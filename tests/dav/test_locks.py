"""WebDAV locks belong to the drive they were taken in, and last at most an hour."""

from __future__ import annotations

import re
import uuid
from xml.etree import ElementTree

import httpx
import pytest

from strongroom.base.errors import MissingTenantContext
from strongroom.interfaces.webdav.locks import MAX_LOCK_SECONDS, DriveLockStorage, current_drive
from strongroom.runtime import Runtime
from strongroom.tenancy.context import current_tenant
from tests.conftest import Cast, LiveServer
from tests.dav.conftest import DavUser, add_app_password

DAV = "{DAV:}"
OWNER_TEXT = "member-private-owner-note"
LOCK_BODY = (
    '<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:">'
    "<D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>"
    f"<D:owner>{OWNER_TEXT}</D:owner></D:lockinfo>"
)
DISCOVERY_BODY = (
    '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:lockdiscovery/>'
    "</D:prop></D:propfind>"
)


@pytest.fixture
def admin_dav(runtime: Runtime, cast: Cast, live_server: LiveServer) -> DavUser:
    """A second user of acme's tenant: the same WebDAV root, a drive of their own."""
    return add_app_password(runtime, cast.acme_admin, live_server)


def lock(
    client: httpx.Client, user: DavUser, path: str, timeout: str = "Infinite"
) -> httpx.Response:
    return client.request(
        "LOCK", user.url(path), content=LOCK_BODY, headers={"Timeout": timeout}, auth=user.auth
    )


def discovery(client: httpx.Client, user: DavUser, path: str, depth: str) -> httpx.Response:
    return client.request(
        "PROPFIND", user.url(path), headers={"Depth": depth}, content=DISCOVERY_BODY, auth=user.auth
    )


def lock_seconds(response: httpx.Response) -> list[int]:
    """The seconds left of each active lock in a LOCK or PROPFIND response."""
    tree = ElementTree.fromstring(response.content)
    found = []
    for element in tree.iter(f"{DAV}timeout"):
        match = re.fullmatch(r"Second-(\d+)", element.text or "")
        assert match is not None, f"timeout {element.text!r} is not a number of seconds"
        found.append(int(match.group(1)))
    return found


@pytest.mark.every_level
def test_lock_stays_in_its_drive(
    client: httpx.Client, acme_dav: DavUser, admin_dav: DavUser
) -> None:
    client.put(acme_dav.url("same.txt"), content=b"member", auth=acme_dav.auth)
    client.put(admin_dav.url("same.txt"), content=b"admin", auth=admin_dav.auth)
    locked = lock(client, acme_dav, "same.txt")
    assert locked.status_code == 200
    token = locked.headers["Lock-Token"].strip("<>")

    file_found = discovery(client, admin_dav, "same.txt", "0")
    listing = discovery(client, admin_dav, "", "1")
    admin_put = client.put(admin_dav.url("same.txt"), content=b"admin2", auth=admin_dav.auth)
    admin_unlock = client.request(
        "UNLOCK",
        admin_dav.url("same.txt"),
        headers={"Lock-Token": f"<{token}>"},
        auth=admin_dav.auth,
    )
    admin_move = client.request(
        "MOVE",
        admin_dav.url("same.txt"),
        headers={"Destination": admin_dav.url("moved.txt")},
        auth=admin_dav.auth,
    )
    member_put = client.put(acme_dav.url("same.txt"), content=b"member2", auth=acme_dav.auth)
    own = discovery(client, acme_dav, "same.txt", "0")

    for response in (file_found, listing):
        assert response.status_code == 207
        assert b"activelock" not in response.content
        assert OWNER_TEXT.encode() not in response.content
        assert token.encode() not in response.content
    assert admin_put.status_code == 204
    assert admin_move.status_code == 201
    assert client.get(admin_dav.url("moved.txt"), auth=admin_dav.auth).content == b"admin2"
    # No lock in the admin's drive has that token, so the member's lock stays.
    assert admin_unlock.status_code == 409
    assert member_put.status_code == 423
    assert OWNER_TEXT.encode() in own.content
    assert token.encode() in own.content
    assert client.get(acme_dav.url("same.txt"), auth=acme_dav.auth).content == b"member"


def test_lock_of_new_name_stays_in_its_drive(
    client: httpx.Client, acme_dav: DavUser, admin_dav: DavUser
) -> None:
    # Locking a name that does not exist yet makes an empty file in the locker's drive only.
    assert lock(client, acme_dav, "new.txt").status_code == 201

    admin_put = client.put(admin_dav.url("new.txt"), content=b"admin", auth=admin_dav.auth)
    admin_lock = lock(client, admin_dav, "new.txt")

    assert admin_put.status_code == 201
    assert admin_lock.status_code == 200
    assert OWNER_TEXT.encode() in admin_lock.content
    assert len(lock_seconds(admin_lock)) == 1
    assert client.put(acme_dav.url("new.txt"), content=b"m", auth=acme_dav.auth).status_code == 423


@pytest.mark.parametrize("timeout", ["Infinite", "Second-4100000000", "Second-86400"])
def test_lock_timeout_capped(client: httpx.Client, acme_dav: DavUser, timeout: str) -> None:
    client.put(acme_dav.url("long.txt"), content=b"x", auth=acme_dav.auth)

    locked = lock(client, acme_dav, "long.txt", timeout)
    propfind = discovery(client, acme_dav, "long.txt", "0")
    refreshed = client.request(
        "LOCK",
        acme_dav.url("long.txt"),
        headers={"Timeout": timeout, "If": f"({locked.headers['Lock-Token']})"},
        auth=acme_dav.auth,
    )

    assert locked.status_code == 200
    assert refreshed.status_code == 200
    for response in (locked, propfind, refreshed):
        (seconds,) = lock_seconds(response)
        assert MAX_LOCK_SECONDS - 60 <= seconds <= MAX_LOCK_SECONDS


def test_short_lock_timeout_kept(client: httpx.Client, acme_dav: DavUser) -> None:
    client.put(acme_dav.url("short.txt"), content=b"x", auth=acme_dav.auth)

    (seconds,) = lock_seconds(lock(client, acme_dav, "short.txt", "Second-120"))

    assert 60 <= seconds <= 120


def test_storage_refuses_lock_without_drive(cast: Cast) -> None:
    storage = DriveLockStorage()
    tenant_token = current_tenant.set(cast.acme)
    try:
        with pytest.raises(MissingTenantContext):
            storage.get_lock_list("/a", include_root=True, include_children=True, token_only=False)
        drive_token = current_drive.set(uuid.uuid4())
        try:
            found = storage.get_lock_list(
                "/a", include_root=True, include_children=True, token_only=False
            )
            assert found == []
        finally:
            current_drive.reset(drive_token)
    finally:
        current_tenant.reset(tenant_token)
