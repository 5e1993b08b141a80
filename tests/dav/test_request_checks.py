"""WebDAV responds as the other interfaces do: download headers, blocked endings, paths, errors."""

from __future__ import annotations

import base64
import socket
from xml.etree import ElementTree

import httpx
import pytest
from structlog.testing import capture_logs

from strongroom.drive import files, properties
from strongroom.interfaces.web.security import DOWNLOAD_POLICY
from tests.conftest import Cast, LiveServer
from tests.dav.conftest import DavUser

PAGE = b"<html><script>alert(document.cookie)</script></html>"


def listing(client: httpx.Client, user: DavUser) -> httpx.Response:
    return client.request("PROPFIND", user.url(), headers={"Depth": "1"}, auth=user.auth)


def listed(client: httpx.Client, user: DavUser) -> list[str]:
    """Return the hrefs of the root and the items in it, sorted."""
    tree = ElementTree.fromstring(listing(client, user).content)
    return sorted(element.text or "" for element in tree.iter("{DAV:}href"))


# Downloads ------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_download_never_renders_as_page(
    client: httpx.Client, acme_dav: DavUser, method: str
) -> None:
    client.put(acme_dav.url("evil.html"), content=PAGE, auth=acme_dav.auth)

    response = client.request(method, acme_dav.url("evil.html"), auth=acme_dav.auth)

    assert response.status_code == 200
    assert response.headers["content-disposition"].startswith('attachment; filename="evil.html"')
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"] == DOWNLOAD_POLICY
    assert "sandbox" in response.headers["content-security-policy"]
    # The guessed type stays for WebDAV clients; see decision 0028.
    assert response.headers["content-type"].startswith("text/html")
    if method == "GET":
        assert response.content == PAGE


def test_range_download_has_headers(client: httpx.Client, acme_dav: DavUser) -> None:
    client.put(acme_dav.url("évil page.html"), content=PAGE, auth=acme_dav.auth)

    response = client.get(
        acme_dav.url("%C3%A9vil%20page.html"), headers={"Range": "bytes=0-5"}, auth=acme_dav.auth
    )

    assert response.status_code == 206
    assert response.content == PAGE[:6]
    disposition = response.headers["content-disposition"]
    assert (
        disposition
        == "attachment; filename=\"_vil page.html\"; filename*=UTF-8''%C3%A9vil%20page.html"
    )
    assert response.headers["content-security-policy"] == DOWNLOAD_POLICY


# Blocked endings ------------------------------------------------------------------------


def block_endings(client: httpx.Client, cast: Cast, endings: list[str]) -> None:
    admin = cast.acme_admin
    response = client.patch(
        admin.url("settings"),
        headers={**admin.headers, "Content-Type": "application/merge-patch+json"},
        json={"blocked_extensions": endings},
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("target", ["m.exe", "M.EXE", "sub/m.exe"])
def test_move_to_blocked_ending_rejected(
    client: httpx.Client, cast: Cast, acme_dav: DavUser, target: str
) -> None:
    client.request("MKCOL", acme_dav.url("sub"), auth=acme_dav.auth)
    client.put(acme_dav.url("x.txt"), content=b"data", auth=acme_dav.auth)
    block_endings(client, cast, ["exe", "bat"])

    moved = client.request(
        "MOVE",
        acme_dav.url("x.txt"),
        headers={"Destination": acme_dav.url(target)},
        auth=acme_dav.auth,
    )

    assert moved.status_code == 415
    assert client.get(acme_dav.url(target), auth=acme_dav.auth).status_code == 404
    assert client.get(acme_dav.url("x.txt"), auth=acme_dav.auth).content == b"data"


def test_blocked_move_keeps_existing_file(
    client: httpx.Client, cast: Cast, acme_dav: DavUser
) -> None:
    client.put(acme_dav.url("x.txt"), content=b"source", auth=acme_dav.auth)
    client.put(acme_dav.url("m.exe"), content=b"stored before the block", auth=acme_dav.auth)
    block_endings(client, cast, ["exe"])

    moved = client.request(
        "MOVE",
        acme_dav.url("x.txt"),
        headers={"Destination": acme_dav.url("m.exe")},
        auth=acme_dav.auth,
    )

    assert moved.status_code == 415
    assert (
        client.get(acme_dav.url("m.exe"), auth=acme_dav.auth).content == b"stored before the block"
    )
    assert client.get(acme_dav.url("x.txt"), auth=acme_dav.auth).content == b"source"


def test_folder_move_to_blocked_ending_allowed(
    client: httpx.Client, cast: Cast, acme_dav: DavUser
) -> None:
    """The rule is about files: the REST API and the web UI move a folder named so."""
    client.request("MKCOL", acme_dav.url("tools"), auth=acme_dav.auth)
    block_endings(client, cast, ["exe"])

    moved = client.request(
        "MOVE",
        acme_dav.url("tools/"),
        headers={"Destination": acme_dav.url("tools.exe/")},
        auth=acme_dav.auth,
    )

    assert moved.status_code == 201


# The root -------------------------------------------------------------------------------

ROOT_CASES = {
    "delete root": ("DELETE", "", None),
    "move root": ("MOVE", "", "newroot/"),
    "copy root": ("COPY", "", "rootcopy/"),
    "copy file onto root": ("COPY", "davf/src.txt", ""),
    "move folder onto root": ("MOVE", "davf/", ""),
    "move file onto root": ("MOVE", "davf/src.txt", ""),
}


@pytest.mark.parametrize("case", ROOT_CASES.values(), ids=list(ROOT_CASES))
def test_root_cannot_change(
    client: httpx.Client, acme_dav: DavUser, case: tuple[str, str, str | None]
) -> None:
    method, path, destination = case
    client.request("MKCOL", acme_dav.url("davf"), auth=acme_dav.auth)
    client.put(acme_dav.url("davf/src.txt"), content=b"src", auth=acme_dav.auth)
    headers = {} if destination is None else {"Destination": acme_dav.url(destination)}

    with capture_logs() as logs:
        response = client.request(method, acme_dav.url(path), headers=headers, auth=acme_dav.auth)

    assert response.status_code == 403
    assert "root folder" in response.json()["detail"]
    assert "exception" not in response.text.lower()
    assert not [entry for entry in logs if entry["log_level"] == "error"]
    assert client.get(acme_dav.url("davf/src.txt"), auth=acme_dav.auth).content == b"src"
    assert listed(client, acme_dav) == ["/t/acme/dav/", "/t/acme/dav/davf/"]


def test_unexpected_error_logged_not_sent(
    client: httpx.Client, acme_dav: DavUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*_args: object) -> None:
        raise RuntimeError("internal detail 7f3a")

    client.request("MKCOL", acme_dav.url("davf"), auth=acme_dav.auth)
    monkeypatch.setattr(files, "list_children", fail)

    with capture_logs() as logs:
        response = listing(client, acme_dav)

    assert response.status_code == 500
    assert "7f3a" not in response.text
    assert "RuntimeError" not in response.text
    errors = [entry for entry in logs if entry["event"] == "webdav_unexpected_error"]
    assert [entry["error_type"] for entry in errors] == ["RuntimeError"]
    assert errors[0]["log_level"] == "error"
    assert "exc_info" in errors[0]


def test_unexpected_error_in_copy_not_sent(
    client: httpx.Client, acme_dav: DavUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """COPY and MOVE put a failure into their own response, not through the error printer."""

    def fail(*_args: object) -> None:
        raise RuntimeError("internal detail 7f3a")

    client.put(acme_dav.url("a.txt"), content=b"a", auth=acme_dav.auth)
    monkeypatch.setattr(files, "access_node", fail)

    with capture_logs() as logs:
        response = client.request(
            "COPY",
            acme_dav.url("a.txt"),
            headers={"Destination": acme_dav.url("b.txt")},
            auth=acme_dav.auth,
        )

    assert response.status_code == 500
    assert "7f3a" not in response.text
    assert "RuntimeError" not in response.text
    assert [entry for entry in logs if entry["event"] == "webdav_unexpected_error"]


def test_unexpected_error_in_proppatch_not_sent(
    client: httpx.Client, acme_dav: DavUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PROPPATCH writes each failed property's error into its multistatus body."""

    def fail(*_args: object) -> None:
        raise RuntimeError("internal detail 7f3a")

    client.put(acme_dav.url("a.txt"), content=b"a", auth=acme_dav.auth)
    monkeypatch.setattr(properties, "set_property", fail)

    with capture_logs() as logs:
        response = client.request(
            "PROPPATCH",
            acme_dav.url("a.txt"),
            content='<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:test">'
            "<D:set><D:prop><Z:colour>green</Z:colour></D:prop></D:set></D:propertyupdate>",
            auth=acme_dav.auth,
        )

    assert response.status_code == 207
    assert "500" in response.text
    assert "7f3a" not in response.text
    assert "RuntimeError" not in response.text
    assert [entry for entry in logs if entry["event"] == "webdav_unexpected_error"]


def test_bad_xml_body_hides_exception(client: httpx.Client, acme_dav: DavUser) -> None:
    response = client.request(
        "PROPFIND", acme_dav.url(), headers={"Depth": "0"}, content=b"<?xml", auth=acme_dav.auth
    )

    assert response.status_code == 400
    assert "exception" not in response.text.lower()
    assert "ParseError" not in response.text


# Paths ----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PROPFIND"])
def test_encoded_parent_gets_complete_400(
    client: httpx.Client, acme_dav: DavUser, method: str
) -> None:
    client.request("MKCOL", acme_dav.url("davf"), auth=acme_dav.auth)

    with capture_logs() as logs:
        response = client.request(
            method,
            acme_dav.url("davf/..%2f..%2fx"),
            content=b"x" if method == "PUT" else None,
            auth=acme_dav.auth,
        )

    # httpx raises RemoteProtocolError if the body is shorter than Content-Length.
    assert response.status_code == 400
    assert len(response.content) == int(response.headers["content-length"])
    assert "'..'" in response.json()["detail"]
    assert not [entry for entry in logs if entry["log_level"] == "error"]


def raw_request(server: LiveServer, user: DavUser, head: bytes) -> bytes:
    """Send one request over a socket, so that header bytes reach the server unchanged."""
    credentials = base64.b64encode(f"{user.email}:{user.password}".encode()).decode()
    request = head + f"\r\nHost: 127.0.0.1\r\nAuthorization: Basic {credentials}\r\n".encode()
    request += b"Content-Length: 0\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port)) as connection:
        connection.sendall(request)
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_raw_utf8_destination_read_as_utf8(
    client: httpx.Client, acme_dav: DavUser, live_server: LiveServer
) -> None:
    client.put(acme_dav.url("a.txt"), content=b"a", auth=acme_dav.auth)
    slug = acme_dav.tenant.slug.encode()

    answer = raw_request(
        live_server,
        acme_dav,
        b"COPY /t/"
        + slug
        + b"/dav/a.txt HTTP/1.1\r\nDestination: /t/"
        + slug
        + b"/dav/caf\xc3\xa9.txt",
    )

    assert answer.startswith(b"HTTP/1.1 201")
    assert client.get(acme_dav.url("caf%C3%A9.txt"), auth=acme_dav.auth).content == b"a"
    assert client.get(acme_dav.url("caf%C3%83%C2%A9.txt"), auth=acme_dav.auth).status_code == 404


def test_raw_latin1_destination_rejected(
    client: httpx.Client, acme_dav: DavUser, live_server: LiveServer
) -> None:
    client.put(acme_dav.url("a.txt"), content=b"a", auth=acme_dav.auth)
    slug = acme_dav.tenant.slug.encode()

    answer = raw_request(
        live_server,
        acme_dav,
        b"COPY /t/"
        + slug
        + b"/dav/a.txt HTTP/1.1\r\nDestination: /t/"
        + slug
        + b"/dav/caf\xe9.txt",
    )

    assert answer.startswith(b"HTTP/1.1 400")
    assert b"UTF-8" in answer


BAD_DESTINATIONS = {
    "CR LF": ("a%0d%0aSet-Cookie:x=1", "U+000D"),
    "LF": ("a%0aSet-Cookie:x=1", "U+000A"),
    "tab": ("a%09b", "U+0009"),
    "percent latin-1": ("caf%e9.txt", "UTF-8"),
    "long name": ("n" * 300, "255"),
    "dot dot": ("%2e%2e", "'..'"),
    "dot dot inside": ("x/%2e%2e/a.txt", "'..'"),
    "query": ("b.txt?x=1", "query"),
    "question mark": ("b%3F.txt", "'?'"),
    "semicolon": ("b%3Bc.txt", "';'"),
}


@pytest.mark.parametrize("case", BAD_DESTINATIONS.values(), ids=list(BAD_DESTINATIONS))
@pytest.mark.parametrize("method", ["COPY", "MOVE"])
def test_bad_destination_gets_400(
    client: httpx.Client, acme_dav: DavUser, method: str, case: tuple[str, str]
) -> None:
    destination, reason = case
    client.put(acme_dav.url("a.txt"), content=b"a", auth=acme_dav.auth)

    response = client.request(
        method,
        acme_dav.url("a.txt"),
        headers={"Destination": acme_dav.url(destination)},
        auth=acme_dav.auth,
    )

    assert response.status_code == 400
    assert reason in response.json()["detail"]
    assert client.get(acme_dav.url("a.txt"), auth=acme_dav.auth).content == b"a"
    assert listed(client, acme_dav) == ["/t/acme/dav/", "/t/acme/dav/a.txt"]


def test_raw_control_character_rejected(
    client: httpx.Client, acme_dav: DavUser, live_server: LiveServer
) -> None:
    client.put(acme_dav.url("a.txt"), content=b"a", auth=acme_dav.auth)
    slug = acme_dav.tenant.slug.encode()

    answer = raw_request(
        live_server,
        acme_dav,
        b"COPY /t/" + slug + b"/dav/a.txt HTTP/1.1\r\nDestination: /t/" + slug + b"/dav/a\tb.txt",
    )

    assert answer.startswith(b"HTTP/1.1 400")
    assert b"U+0009" in answer


def test_percent_encoded_destination_still_works(client: httpx.Client, acme_dav: DavUser) -> None:
    client.put(acme_dav.url("a.txt"), content=b"a", auth=acme_dav.auth)

    client.request("MKCOL", acme_dav.url("new%20folder%3B"), auth=acme_dav.auth)
    moved = client.request(
        "MOVE",
        acme_dav.url("a.txt"),
        headers={"Destination": acme_dav.url("new%20folder%3B/r%C3%A9sum%C3%A9%23%25.txt")},
        auth=acme_dav.auth,
    )

    assert moved.status_code == 201
    member = acme_dav.member
    found = client.get(
        member.url("files/new%20folder%3B/r%C3%A9sum%C3%A9%23%25.txt"), headers=member.headers
    )
    assert found.content == b"a"


# Headers --------------------------------------------------------------------------------


def test_one_date_header(client: httpx.Client, acme_dav: DavUser) -> None:
    client.put(acme_dav.url("a.txt"), content=b"a", auth=acme_dav.auth)

    responses = [
        client.get(acme_dav.url("a.txt"), auth=acme_dav.auth),
        client.get(acme_dav.url("missing.txt"), auth=acme_dav.auth),
        listing(client, acme_dav),
        client.request("OPTIONS", acme_dav.url(), auth=acme_dav.auth),
        client.request("DELETE", acme_dav.url(), auth=acme_dav.auth),
    ]

    assert [len(response.headers.get_list("date")) for response in responses] == [1] * 5
