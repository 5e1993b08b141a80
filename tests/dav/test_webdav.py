"""WebDAV over the drive: the same files, encryption, quota and trash as the REST API, per tenant."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
from xml.etree import ElementTree

import httpx
import pytest

from strongroom.runtime import Runtime
from strongroom.tenancy.lifecycle import provision_tenant
from tests.conftest import TEST_CHUNK_SIZE, Cast, LiveServer, add_member
from tests.dav.conftest import DavUser, add_app_password

DAV = "{DAV:}"
LOCK_BODY = (
    '<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:">'
    "<D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>"
    "<D:owner>tests</D:owner></D:lockinfo>"
)


def hrefs(response: httpx.Response) -> list[str]:
    tree = ElementTree.fromstring(response.content)
    return [element.text or "" for element in tree.iter(f"{DAV}href")]


def test_put_then_rest_download(client: httpx.Client, acme_dav: DavUser) -> None:
    content = os.urandom(3 * TEST_CHUNK_SIZE + 17)

    put = client.put(acme_dav.url("reports/q1.bin"), content=content, auth=acme_dav.auth)
    assert put.status_code == 409  # RFC 4918: PUT does not create missing folders
    assert client.request("MKCOL", acme_dav.url("reports"), auth=acme_dav.auth).status_code == 201
    put = client.put(acme_dav.url("reports/q1.bin"), content=content, auth=acme_dav.auth)
    assert put.status_code == 201

    member = acme_dav.member
    downloaded = client.get(member.url("files/reports/q1.bin"), headers=member.headers)
    assert downloaded.content == content
    assert put.headers["ETag"] == downloaded.headers["ETag"]
    versions = client.get(member.url("versions/reports/q1.bin"), headers=member.headers).json()
    assert versions["items"][0]["sha256"] == hashlib.sha256(content).hexdigest()


def test_get_range_across_chunks(client: httpx.Client, acme_dav: DavUser) -> None:
    content = os.urandom(2 * TEST_CHUNK_SIZE + 5)
    client.put(acme_dav.url("data.bin"), content=content, auth=acme_dav.auth)
    start, end = TEST_CHUNK_SIZE - 3, TEST_CHUNK_SIZE + 9

    response = client.get(
        acme_dav.url("data.bin"), headers={"Range": f"bytes={start}-{end}"}, auth=acme_dav.auth
    )

    assert response.status_code == 206
    assert response.content == content[start : end + 1]


def test_put_replaces_as_new_version(client: httpx.Client, acme_dav: DavUser) -> None:
    first = client.put(acme_dav.url("notes.txt"), content=b"one", auth=acme_dav.auth)
    second = client.put(acme_dav.url("notes.txt"), content=b"two", auth=acme_dav.auth)

    assert (first.status_code, second.status_code) == (201, 204)
    member = acme_dav.member
    versions = client.get(member.url("versions/notes.txt"), headers=member.headers).json()
    assert [item["number"] for item in versions["items"]] == [1, 2]
    assert client.get(acme_dav.url("notes.txt"), auth=acme_dav.auth).content == b"two"


def test_delete_moves_to_trash(client: httpx.Client, acme_dav: DavUser) -> None:
    client.request("MKCOL", acme_dav.url("old"), auth=acme_dav.auth)
    client.put(acme_dav.url("old/a.txt"), content=b"a", auth=acme_dav.auth)

    deleted = client.request("DELETE", acme_dav.url("old/"), auth=acme_dav.auth)

    assert deleted.status_code == 204
    assert client.get(acme_dav.url("old/a.txt"), auth=acme_dav.auth).status_code == 404
    member = acme_dav.member
    trash = client.get(member.url("trash"), headers=member.headers).json()
    assert [item["original_path"] for item in trash["items"]] == ["old"]


def test_copy_is_independent_file(client: httpx.Client, acme_dav: DavUser) -> None:
    client.put(acme_dav.url("a.txt"), content=b"original", auth=acme_dav.auth)

    copied = client.request(
        "COPY",
        acme_dav.url("a.txt"),
        headers={"Destination": acme_dav.url("b.txt")},
        auth=acme_dav.auth,
    )
    client.put(acme_dav.url("a.txt"), content=b"changed", auth=acme_dav.auth)

    assert copied.status_code == 201
    assert client.get(acme_dav.url("b.txt"), auth=acme_dav.auth).content == b"original"
    member = acme_dav.member
    usage = client.get(member.url("usage"), headers=member.headers).json()
    assert usage["used_bytes"] == len(b"original") * 2 + len(b"changed")


def test_quota_enforced(client: httpx.Client, runtime: Runtime, live_server: LiveServer) -> None:
    tenant = provision_tenant(runtime.catalog, runtime.stores, "tiny", "Tiny", 1000, "shared")
    user = add_app_password(
        runtime, add_member(runtime, tenant, "u@tiny.test", "member"), live_server
    )
    client.put(user.url("small.bin"), content=b"x" * 600, auth=user.auth)

    declared = client.put(user.url("big.bin"), content=b"x" * 600, auth=user.auth)
    copied = client.request(
        "COPY", user.url("small.bin"), headers={"Destination": user.url("copy.bin")}, auth=user.auth
    )

    assert declared.status_code == 507
    assert copied.status_code == 507
    assert client.get(user.url("big.bin"), auth=user.auth).status_code == 404
    assert client.get(user.url("copy.bin"), auth=user.auth).status_code == 404


def test_quota_enforced_without_length(
    client: httpx.Client, runtime: Runtime, live_server: LiveServer
) -> None:
    tenant = provision_tenant(runtime.catalog, runtime.stores, "tiny", "Tiny", 1000, "shared")
    user = add_app_password(
        runtime, add_member(runtime, tenant, "u@tiny.test", "member"), live_server
    )

    def chunked_body():  # no Content-Length, so the limit applies while bytes arrive
        for _ in range(4):
            yield b"y" * 400

    response = client.put(user.url("stream.bin"), content=chunked_body(), auth=user.auth)

    assert response.status_code == 507
    assert client.get(user.url("stream.bin"), auth=user.auth).status_code == 404


def test_cut_off_upload_not_stored(
    client: httpx.Client, acme_dav: DavUser, live_server: LiveServer
) -> None:
    credentials = base64.b64encode(f"{acme_dav.email}:{acme_dav.password}".encode()).decode()
    head = (
        f"PUT /t/{acme_dav.tenant.slug}/dav/cut.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Basic {credentials}\r\nContent-Length: {4 * TEST_CHUNK_SIZE}\r\n\r\n"
    )

    with socket.create_connection(("127.0.0.1", live_server.port)) as connection:
        connection.sendall(head.encode() + b"x" * TEST_CHUNK_SIZE)
    live_server.wait_until_idle()

    assert client.get(acme_dav.url("cut.bin"), auth=acme_dav.auth).status_code == 404
    member = acme_dav.member
    assert client.get(member.url("usage"), headers=member.headers).json()["used_bytes"] == 0


def test_invalid_name_rejected(client: httpx.Client, acme_dav: DavUser) -> None:
    response = client.put(acme_dav.url("bad%01name.txt"), content=b"x", auth=acme_dav.auth)
    assert response.status_code == 400
    collection = client.request("MKCOL", acme_dav.url("%E2%80%AEevil"), auth=acme_dav.auth)
    assert collection.status_code == 400


def test_hrefs_follow_url_form(client: httpx.Client, acme_dav: DavUser) -> None:
    client.put(acme_dav.url("a.txt"), content=b"a", auth=acme_dav.auth)
    host = f"{acme_dav.tenant.slug}.strongroom.test"

    by_path = client.request("PROPFIND", acme_dav.url(), headers={"Depth": "1"}, auth=acme_dav.auth)
    by_host = client.request(
        "PROPFIND", "/dav/", headers={"Depth": "1", "Host": host}, auth=acme_dav.auth
    )

    assert sorted(hrefs(by_path)) == ["/t/acme/dav/", "/t/acme/dav/a.txt"]
    assert sorted(hrefs(by_host)) == ["/dav/", "/dav/a.txt"]


def test_move_by_host_form(client: httpx.Client, acme_dav: DavUser) -> None:
    host = f"{acme_dav.tenant.slug}.strongroom.test"
    client.put(acme_dav.url("a.txt"), content=b"a", auth=acme_dav.auth)

    moved = client.request(
        "MOVE",
        "/dav/a.txt",
        headers={"Host": host, "Destination": f"http://{host}/dav/b.txt"},
        auth=acme_dav.auth,
    )

    assert moved.status_code == 201
    assert client.get(acme_dav.url("b.txt"), auth=acme_dav.auth).content == b"a"


@pytest.mark.every_level
def test_files_stay_in_tenant(client: httpx.Client, acme_dav: DavUser, globex_dav: DavUser) -> None:
    client.put(acme_dav.url("secret.txt"), content=b"acme only", auth=acme_dav.auth)

    assert client.get(globex_dav.url("secret.txt"), auth=globex_dav.auth).status_code == 404
    listing = client.request(
        "PROPFIND", globex_dav.url(), headers={"Depth": "1"}, auth=globex_dav.auth
    )
    assert hrefs(listing) == ["/t/globex/dav/"]


@pytest.mark.every_level
def test_move_to_other_tenant_refused(
    client: httpx.Client, acme_dav: DavUser, globex_dav: DavUser
) -> None:
    client.put(acme_dav.url("a.txt"), content=b"a", auth=acme_dav.auth)

    moved = client.request(
        "MOVE",
        acme_dav.url("a.txt"),
        headers={"Destination": globex_dav.url("a.txt")},
        auth=acme_dav.auth,
    )

    assert moved.status_code == 502
    assert client.get(acme_dav.url("a.txt"), auth=acme_dav.auth).content == b"a"
    assert client.get(globex_dav.url("a.txt"), auth=globex_dav.auth).status_code == 404


@pytest.mark.every_level
def test_locks_stay_in_tenant(client: httpx.Client, acme_dav: DavUser, globex_dav: DavUser) -> None:
    client.put(acme_dav.url("shared-name.txt"), content=b"a", auth=acme_dav.auth)
    client.put(globex_dav.url("shared-name.txt"), content=b"g", auth=globex_dav.auth)
    locked = client.request(
        "LOCK", acme_dav.url("shared-name.txt"), content=LOCK_BODY, auth=acme_dav.auth
    )
    assert locked.status_code == 200
    token = locked.headers["Lock-Token"]

    discovery = client.request(
        "PROPFIND",
        globex_dav.url("shared-name.txt"),
        headers={"Depth": "0"},
        content='<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:lockdiscovery/>'
        "</D:prop></D:propfind>",
        auth=globex_dav.auth,
    )
    globex_put = client.put(globex_dav.url("shared-name.txt"), content=b"g2", auth=globex_dav.auth)
    acme_put = client.put(acme_dav.url("shared-name.txt"), content=b"a2", auth=acme_dav.auth)
    globex_unlock = client.request(
        "UNLOCK",
        globex_dav.url("shared-name.txt"),
        headers={"Lock-Token": token},
        auth=globex_dav.auth,
    )

    assert b"activelock" not in discovery.content
    assert globex_put.status_code == 204
    assert acme_put.status_code == 423
    assert globex_unlock.status_code != 204
    assert client.get(acme_dav.url("shared-name.txt"), auth=acme_dav.auth).content == b"a"


@pytest.mark.parametrize("depth", ["0", "1"])
def test_dead_property_follows_move(client: httpx.Client, acme_dav: DavUser, depth: str) -> None:
    client.put(acme_dav.url("a.txt"), content=b"a", auth=acme_dav.auth)
    patched = client.request(
        "PROPPATCH",
        acme_dav.url("a.txt"),
        auth=acme_dav.auth,
        content='<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:test">'
        "<D:set><D:prop><Z:colour>green</Z:colour></D:prop></D:set></D:propertyupdate>",
    )
    assert patched.status_code == 207
    client.request(
        "MOVE",
        acme_dav.url("a.txt"),
        headers={"Destination": acme_dav.url("b.txt")},
        auth=acme_dav.auth,
    )

    found = client.request(
        "PROPFIND",
        acme_dav.url("" if depth == "1" else "b.txt"),
        headers={"Depth": depth},
        content='<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:Z="urn:test"><D:prop>'
        "<Z:colour/></D:prop></D:propfind>",
        auth=acme_dav.auth,
    )

    tree = ElementTree.fromstring(found.content)
    values = [element.text for element in tree.iter("{urn:test}colour")]
    # Depth 1 lists the root too, where the property is missing and so empty.
    assert [value for value in values if value is not None] == ["green"]


def test_webdav_module_off_answers_403(
    client: httpx.Client, cast: Cast, acme_dav: DavUser, globex_dav: DavUser
) -> None:
    admin = cast.acme_admin
    client.put(acme_dav.url("kept.txt"), content=b"before", auth=acme_dav.auth)

    def switch(on: bool) -> None:
        response = client.patch(admin.url("modules"), headers=admin.headers, json={"webdav": on})
        assert response.status_code == 200, response.text

    switch(False)
    listing = client.request(
        "PROPFIND", acme_dav.url(""), headers={"Depth": "1"}, auth=acme_dav.auth
    )
    written = client.put(acme_dav.url("late.txt"), content=b"while off", auth=acme_dav.auth)
    other = client.request(
        "PROPFIND", globex_dav.url(""), headers={"Depth": "1"}, auth=globex_dav.auth
    )
    switch(True)
    read = client.get(acme_dav.url("kept.txt"), auth=acme_dav.auth)

    assert listing.status_code == 403
    assert "webdav" in listing.json()["detail"]
    assert written.status_code == 403
    assert other.status_code == 207
    assert read.content == b"before"
    api = client.get(acme_dav.member.url("folders/"), headers=acme_dav.member.headers).json()
    assert [item["name"] for item in api["items"]] == ["kept.txt"]


def test_webdav_module_off_hidden_before_login(
    client: httpx.Client, cast: Cast, acme_dav: DavUser
) -> None:
    admin = cast.acme_admin

    def switch(on: bool) -> None:
        response = client.patch(admin.url("modules"), headers=admin.headers, json={"webdav": on})
        assert response.status_code == 200, response.text

    def seen_by_client(response: httpx.Response) -> tuple:
        body = response.json()
        body.pop("request_id", None)
        return response.status_code, response.headers.get("www-authenticate"), body

    anonymous_on = client.request("PROPFIND", acme_dav.url(""), headers={"Depth": "0"})
    switch(False)
    anonymous_off = client.request("PROPFIND", acme_dav.url(""), headers={"Depth": "0"})
    wrong_off = client.request(
        "PROPFIND",
        acme_dav.url(""),
        headers={"Depth": "0"},
        auth=httpx.BasicAuth(acme_dav.email, "not the app password"),
    )
    signed_in_off = client.request(
        "PROPFIND", acme_dav.url(""), headers={"Depth": "0"}, auth=acme_dav.auth
    )
    switch(True)

    assert anonymous_off.status_code == 401
    assert anonymous_off.headers["www-authenticate"].startswith("Basic ")
    assert seen_by_client(anonymous_off) == seen_by_client(anonymous_on)
    assert wrong_off.status_code == 401
    assert signed_in_off.status_code == 403
    assert signed_in_off.headers["content-type"] == "application/problem+json"
    assert signed_in_off.json()["type"].endswith("module-disabled")
    assert "webdav" in signed_in_off.json()["detail"]
