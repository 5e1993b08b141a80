"""Public links: downloads without credentials, passwords, expiry, limits, revocation, folders."""

from __future__ import annotations

import base64
import datetime as dt
import io
import re
import socket
import threading
import uuid
import zipfile
import zoneinfo
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from strongroom.drive.models import LinkRow
from strongroom.runtime import Runtime
from tests.conftest import SHARED_LEVELS, TEST_CHUNK_SIZE, Cast, LiveServer, Member

# The other levels add nothing to these tests but time: the tenant-facing ones run on all.
SHARED_ONLY = pytest.mark.parametrize("level", SHARED_LEVELS, indirect=True)
HTML = {"Accept": "text/html,application/xhtml+xml"}
JSON = {"Accept": "application/json"}
BIG = bytes(range(256)) * ((3 * TEST_CHUNK_SIZE) // 256 + 7)  # four chunks, the last one short


def put(client: httpx.Client, member: Member, path: str, body: bytes) -> dict[str, Any]:
    response = client.put(member.url(f"files/{path}"), headers=member.headers, content=body)
    assert response.status_code in (200, 201), response.text
    return response.json()


def make_link(client: httpx.Client, member: Member, path: str, **options: Any) -> dict[str, Any]:
    response = client.post(
        member.url("links"), headers=member.headers, json={"path": path, **options}
    )
    assert response.status_code == 201, response.text
    return response.json()


def basic(password: str, user: str = "") -> dict[str, str]:
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


def set_link(runtime: Runtime, member: Member, link_id: str, **values: Any) -> None:
    """Change a link's row directly, for states the API does not reach without waiting."""
    with runtime.stores.session(member.tenant, write=True) as session:
        session.execute(update(LinkRow).where(LinkRow.id == uuid.UUID(link_id)).values(**values))


def in_days(days: int) -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=days)


def token_of(link: dict[str, Any]) -> str:
    return link["url"].rsplit("/", 1)[-1]


# Files ----------------------------------------------------------------------------------


def test_link_downloads_file_without_credentials(client: httpx.Client, cast: Cast) -> None:
    put(client, cast.acme_member, "docs/big.bin", BIG)
    link = make_link(client, cast.acme_member, "docs/big.bin")

    response = client.get(link["url"])

    assert response.status_code == 200
    assert response.content == BIG
    assert link["url"].startswith(f"{client.base_url}/t/acme/s/")
    assert response.headers["content-type"] == "application/octet-stream"
    assert "attachment" in response.headers["content-disposition"]
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-content-type-options"] == "nosniff"


@SHARED_ONLY
def test_link_download_url_is_content(client: httpx.Client, cast: Cast) -> None:
    put(client, cast.acme_member, "a.txt", b"hello")
    link = make_link(client, cast.acme_member, "a.txt")

    response = client.get(link["download_url"], headers=HTML)

    assert response.status_code == 200
    assert response.content == b"hello"


@SHARED_ONLY
def test_link_page_for_browsers(client: httpx.Client, cast: Cast) -> None:
    put(client, cast.acme_member, "docs/plan.txt", b"the plan")
    link = make_link(client, cast.acme_member, "docs/plan.txt")

    response = client.get(link["url"], headers=HTML)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "plan.txt" in response.text
    assert f'href="/t/acme/s/{token_of(link)}/download"' in response.text
    policy = response.headers["content-security-policy"]
    assert "script-src" not in policy
    assert "'unsafe-inline'" not in policy
    assert "frame-ancestors 'none'" in policy
    assert "<script" not in response.text


@SHARED_ONLY
def test_link_on_host_form_of_base_url(client: httpx.Client, cast: Cast) -> None:
    put(client, cast.acme_member, "a.txt", b"hello")
    host = {"Host": "acme.strongroom.test"}
    response = client.post(
        "/api/v1/links", headers={**cast.acme_member.headers, **host}, json={"path": "a.txt"}
    )
    url = response.json()["url"]

    assert url.startswith("http://acme.strongroom.test/s/")
    path = url.removeprefix("http://acme.strongroom.test")
    assert client.get(path, headers=host).content == b"hello"


@SHARED_ONLY
def test_link_after_expiry_gets_410(runtime: Runtime, client: httpx.Client, cast: Cast) -> None:
    put(client, cast.acme_member, "a.txt", b"hello")
    link = make_link(client, cast.acme_member, "a.txt", expires_at=in_days(30).isoformat())
    set_link(
        runtime, cast.acme_member, link["id"], expires_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    )

    page = client.get(link["url"], headers=HTML)
    problem = client.get(link["url"], headers=JSON)
    plain = client.get(link["url"])

    assert page.status_code == 410
    assert "This link has expired" in page.text
    assert problem.status_code == 410
    assert problem.headers["content-type"] == "application/problem+json"
    assert problem.json()["detail"].startswith("this link has expired; ask")
    assert plain.status_code == 410
    assert b"hello" not in plain.content


@SHARED_ONLY
def test_link_expiry_without_offset_is_tenant_time(client: httpx.Client, cast: Cast) -> None:
    put(client, cast.acme_member, "a.txt", b"hello")

    day = in_days(30).date().isoformat()

    link = make_link(client, cast.acme_member, "a.txt", expires_at=f"{day}T12:00:00")

    assert link["time_zone"] == "UTC"
    assert link["expires_at"] == f"{day}T12:00:00Z"
    assert link["expires_at_local"] == f"{day}T12:00:00+00:00"


@SHARED_ONLY
def test_link_times_in_tenant_time_zone(runtime: Runtime, client: httpx.Client, cast: Cast) -> None:
    admin = cast.acme_admin
    changed = client.patch(
        admin.url("settings"),
        headers={**admin.headers, "Content-Type": "application/merge-patch+json"},
        content=b'{"time_zone": "Europe/Paris"}',
    )
    assert changed.status_code == 200, changed.text
    put(client, cast.acme_member, "a.txt", b"hello")
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    local = in_days(200).replace(hour=12, minute=0, second=0, tzinfo=None)
    expected = local.replace(tzinfo=paris)

    link = make_link(client, cast.acme_member, "a.txt", expires_at=local.isoformat())
    page = client.get(link["url"], headers=HTML)

    assert link["time_zone"] == "Europe/Paris"
    assert link["expires_at"] == expected.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    assert link["expires_at_local"] == expected.isoformat()
    assert f"{local:%Y-%m-%d} 12:00 (Europe/Paris)" in page.text


@SHARED_ONLY
def test_link_expiry_in_past_is_rejected(client: httpx.Client, cast: Cast) -> None:
    put(client, cast.acme_member, "a.txt", b"hello")

    response = client.post(
        cast.acme_member.url("links"),
        headers=cast.acme_member.headers,
        json={"path": "a.txt", "expires_at": "2001-01-01T00:00:00Z"},
    )

    assert response.status_code == 400
    assert "in the past" in response.json()["detail"]


def test_link_past_download_limit(client: httpx.Client, cast: Cast) -> None:
    put(client, cast.acme_member, "a.txt", b"hello")
    link = make_link(client, cast.acme_member, "a.txt", max_downloads=2)

    first, second, third = (client.get(link["url"]) for _ in range(3))

    assert (first.status_code, second.status_code) == (200, 200)
    assert third.status_code == 410
    assert b"download limit" in third.content
    listed = client.get(cast.acme_member.url("links"), headers=cast.acme_member.headers).json()
    assert listed["items"][0]["downloads_used"] == 2
    assert listed["items"][0]["state"] == "exhausted"


@SHARED_ONLY
def test_link_ranges_count_their_share(client: httpx.Client, cast: Cast) -> None:
    put(client, cast.acme_member, "big.bin", BIG)
    link = make_link(client, cast.acme_member, "big.bin", max_downloads=1)
    half = len(BIG) // 2

    head = client.head(link["download_url"])
    start = client.get(link["url"], headers={"Range": f"bytes=0-{half - 1}"})
    rest = client.get(link["url"], headers={"Range": f"bytes={half}-"})
    again = client.get(link["url"], headers={"Range": "bytes=0-0"})

    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(BIG))
    assert start.status_code == 206
    assert rest.status_code == 206
    assert start.content + rest.content == BIG
    assert again.status_code == 410


def largest_send_buffer() -> int:
    """Return the most bytes a Linux kernel queues on a TCP socket for a slow reader."""
    try:
        with open("/proc/sys/net/ipv4/tcp_wmem", encoding="ascii") as limits:
            return int(limits.read().split()[2])
    except (OSError, ValueError, IndexError):
        return 4 * 1024 * 1024


@SHARED_ONLY
def test_link_cut_off_download_is_given_back(
    client: httpx.Client, cast: Cast, live_server: LiveServer
) -> None:
    # The server counts bytes once its kernel takes them, so a client that hangs up is charged
    # for up to a full send buffer it never received. The file is large enough that this
    # stays within the 5 % a resumed download may pass the limit by.
    want = 1024 * 1024
    size = 24 * (largest_send_buffer() + want)
    body = bytes(range(256)) * (size // 256)
    put(client, cast.acme_member, "large.bin", body)
    link = make_link(client, cast.acme_member, "large.bin", max_downloads=1)

    received = read_then_hang_up(live_server.port, link["url"], want=want)
    live_server.wait_until_idle()
    rest = client.get(link["url"], headers={"Range": f"bytes={len(received)}-"})
    listed = client.get(cast.acme_member.url("links"), headers=cast.acme_member.headers).json()

    assert rest.status_code == 206
    assert len(received) + len(rest.content) == len(body)
    assert received + rest.content == body
    assert 1 <= listed["items"][0]["downloads_used"] <= 1.05


def read_then_hang_up(port: int, url: str, want: int) -> bytes:
    """GET `url` on a socket with a small receive buffer, read about `want` bytes of body, close."""
    path = url.split(str(port), 1)[1]
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as connection:
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        connection.connect(("127.0.0.1", port))
        connection.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data or len(data) < want:
            data += connection.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert b"content-length" in head.lower(), head
    return body


@SHARED_ONLY
def test_link_with_password_for_scripts(client: httpx.Client, cast: Cast) -> None:
    put(client, cast.acme_member, "a.txt", b"secret plans")
    link = make_link(client, cast.acme_member, "a.txt", password="correct horse battery")

    missing = client.get(link["url"])
    wrong = client.get(link["url"], headers=basic("wrong password here"))
    right = client.get(link["url"], headers=basic("correct horse battery"))
    named = client.get(link["url"], headers=basic("correct horse battery", user="anyone"))

    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Basic ")
    assert b"secret plans" not in missing.content
    assert wrong.status_code == 401
    assert b"secret plans" not in wrong.content
    assert right.status_code == 200
    assert right.content == b"secret plans"
    assert named.content == b"secret plans"
    assert make_link(client, cast.acme_member, "a.txt")["has_password"] is False
    assert link["has_password"] is True


@SHARED_ONLY
def test_link_with_password_for_browsers(client: httpx.Client, cast: Cast) -> None:
    put(client, cast.acme_member, "a.txt", b"secret plans")
    link = make_link(client, cast.acme_member, "a.txt", password="correct horse battery")
    unlock = f"{link['url']}/unlock"

    form = client.get(link["url"], headers=HTML)
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    forged = client.post(unlock, headers=HTML, data={"password": "correct horse battery"})
    wrong = client.post(unlock, headers=HTML, data={"password": "wrong password!!", "csrf": csrf})
    right = client.post(
        unlock, headers=HTML, data={"password": "correct horse battery", "csrf": csrf}
    )
    page = client.get(link["url"], headers=HTML)

    assert form.status_code == 200
    assert "A password is needed" in form.text
    assert "secret plans" not in form.text
    assert forged.status_code == 403
    assert wrong.status_code == 403
    assert "The password is wrong." in wrong.text
    assert right.status_code == 303
    assert "httponly" in right.headers["set-cookie"].lower()
    assert page.status_code == 200
    assert "a.txt" in page.text
    assert client.get(link["download_url"]).content == b"secret plans"


@SHARED_ONLY
def test_link_unlock_cookie_opens_no_other_link(client: httpx.Client, cast: Cast) -> None:
    put(client, cast.acme_member, "a.txt", b"first")
    put(client, cast.acme_member, "b.txt", b"second")
    first = make_link(client, cast.acme_member, "a.txt", password="correct horse battery")
    second = make_link(client, cast.acme_member, "b.txt", password="correct horse battery")
    form = client.get(first["url"], headers=HTML)
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    unlocked = client.post(
        f"{first['url']}/unlock", data={"password": "correct horse battery", "csrf": csrf}
    )
    cookie = unlocked.cookies["sr_unlock"]
    client.cookies.clear()
    client.cookies.set("sr_unlock", cookie)

    replayed = client.get(second["url"])

    assert replayed.status_code == 401


@SHARED_ONLY
def test_link_wrong_passwords_are_limited(client: httpx.Client, cast: Cast) -> None:
    put(client, cast.acme_member, "a.txt", b"hello")
    link = make_link(client, cast.acme_member, "a.txt", password="correct horse battery")

    statuses = [
        client.get(link["url"], headers=basic(f"guess number {n}")).status_code for n in range(11)
    ]
    blocked = client.get(link["url"], headers=basic("correct horse battery"))

    assert statuses == [401] * 10 + [429]
    assert blocked.status_code == 429
    assert blocked.headers["retry-after"] == "60"


@SHARED_ONLY
def test_link_guesser_cannot_lock_others_out(client: httpx.Client, cast: Cast) -> None:
    put(client, cast.acme_member, "a.txt", b"hello")
    link = make_link(client, cast.acme_member, "a.txt", password="correct horse battery")
    guesser = {"X-Forwarded-For": "198.51.100.9"}

    for number in range(11):
        client.get(link["url"], headers={**guesser, **basic(f"guess number {number}")})
    blocked = client.get(link["url"], headers={**guesser, **basic("correct horse battery")})
    visitor = client.get(
        f"{link['url']}/download",
        headers={"X-Forwarded-For": "203.0.113.5", **basic("correct horse battery")},
    )

    assert blocked.status_code == 429
    assert visitor.status_code == 200
    assert visitor.content == b"hello"


@SHARED_ONLY
def test_link_revoked_gets_410(client: httpx.Client, cast: Cast) -> None:
    put(client, cast.acme_member, "a.txt", b"hello")
    link = make_link(client, cast.acme_member, "a.txt")

    revoked = client.delete(
        cast.acme_member.url(f"links/{link['id']}"), headers=cast.acme_member.headers
    )
    response = client.get(link["url"], headers=HTML)

    assert revoked.json()["state"] == "revoked"
    assert response.status_code == 410
    assert "turned off" in response.text


@SHARED_ONLY
def test_link_to_trashed_file_is_not_found(client: httpx.Client, cast: Cast) -> None:
    put(client, cast.acme_member, "a.txt", b"hello")
    link = make_link(client, cast.acme_member, "a.txt")
    client.delete(cast.acme_member.url("files/a.txt"), headers=cast.acme_member.headers)

    response = client.get(link["url"])

    assert response.status_code == 404
    assert b"hello" not in response.content


@SHARED_ONLY
def test_link_follows_moved_file(client: httpx.Client, cast: Cast) -> None:
    put(client, cast.acme_member, "a.txt", b"hello")
    link = make_link(client, cast.acme_member, "a.txt")
    client.post(
        cast.acme_member.url("move"),
        headers=cast.acme_member.headers,
        json={"from": "a.txt", "to": "b/c.txt"},
    )

    listed = client.get(cast.acme_member.url("links"), headers=cast.acme_member.headers).json()

    assert client.get(link["url"]).content == b"hello"
    assert listed["items"][0]["path"] == "b/c.txt"


def test_link_token_of_other_tenant_fails_like_unknown(client: httpx.Client, cast: Cast) -> None:
    put(client, cast.acme_member, "a.txt", b"hello")
    link = make_link(client, cast.acme_member, "a.txt")
    made_up = "A" * len(token_of(link))

    foreign = client.get(f"/t/globex/s/{token_of(link)}", headers=JSON)
    unknown = client.get(f"/t/globex/s/{made_up}", headers=JSON)
    foreign_page = client.get(f"/t/globex/s/{token_of(link)}", headers=HTML)
    unknown_page = client.get(f"/t/globex/s/{made_up}", headers=HTML)

    assert foreign.status_code == unknown.status_code == 404
    assert _without_request_id(foreign.json()) == _without_request_id(unknown.json())
    assert foreign_page.status_code == unknown_page.status_code == 404
    assert foreign_page.text == unknown_page.text


def _without_request_id(problem: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in problem.items() if key != "request_id"}


def test_link_list_and_revoke_are_per_user(client: httpx.Client, cast: Cast) -> None:
    put(client, cast.acme_member, "a.txt", b"hello")
    link = make_link(client, cast.acme_member, "a.txt")
    admin = cast.acme_admin

    listed = client.get(admin.url("links"), headers=admin.headers).json()
    revoked = client.delete(admin.url(f"links/{link['id']}"), headers=admin.headers)

    assert listed["items"] == []
    assert revoked.status_code == 404
    assert client.get(link["url"]).status_code == 200


@SHARED_ONLY
def test_link_to_root_or_missing_path_is_rejected(client: httpx.Client, cast: Cast) -> None:
    member = cast.acme_member

    root = client.post(member.url("links"), headers=member.headers, json={"path": ""})
    missing = client.post(member.url("links"), headers=member.headers, json={"path": "nope.txt"})
    limit = client.post(
        member.url("links"), headers=member.headers, json={"path": "x", "max_downloads": 0}
    )

    assert root.status_code == 400
    assert missing.status_code == 404
    assert limit.status_code in (400, 404)


@SHARED_ONLY
def test_link_concurrent_last_downloads(client: httpx.Client, cast: Cast) -> None:
    put(client, cast.acme_member, "a.txt", b"only once")
    link = make_link(client, cast.acme_member, "a.txt", max_downloads=1)
    start = threading.Barrier(2)
    statuses: list[int] = []

    def download() -> None:
        with httpx.Client(base_url=str(client.base_url), timeout=30) as own:
            start.wait()
            statuses.append(own.get(link["url"]).status_code)

    threads = [threading.Thread(target=download) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [200, 410]


# Folders --------------------------------------------------------------------------------


def build_folder(client: httpx.Client, member: Member) -> dict[str, bytes]:
    contents = {
        "report/summary.txt": b"summary",
        "report/data/big.bin": BIG,
        "report/data/empty.txt": b"",
        "report/\u00e9t\u00e9 notes.md": "caf\u00e9".encode(),
    }
    for path, body in contents.items():
        put(client, member, path, body)
    client.post(member.url("folders/report/empty"), headers=member.headers)
    put(client, member, "outside.txt", b"not shared")
    return contents


@SHARED_ONLY
def test_folder_link_zip_contents(client: httpx.Client, cast: Cast) -> None:
    contents = build_folder(client, cast.acme_member)
    link = make_link(client, cast.acme_member, "report")

    response = client.get(link["download_url"])
    archive = zipfile.ZipFile(io.BytesIO(response.content))

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert "report.zip" in response.headers["content-disposition"]
    assert archive.testzip() is None
    assert sorted(archive.namelist()) == sorted(
        ["report/", "report/data/", "report/empty/", *contents]
    )
    for path, body in contents.items():
        assert archive.read(path) == body, path
    assert "outside.txt" not in response.text


@SHARED_ONLY
def test_folder_link_for_scripts_is_zip(client: httpx.Client, cast: Cast) -> None:
    build_folder(client, cast.acme_member)
    link = make_link(client, cast.acme_member, "report", max_downloads=1)

    first = client.get(link["url"])
    second = client.get(link["url"])

    assert zipfile.ZipFile(io.BytesIO(first.content)).read("report/summary.txt") == b"summary"
    assert second.status_code == 410


@SHARED_ONLY
def test_folder_link_listing_pages(client: httpx.Client, cast: Cast) -> None:
    build_folder(client, cast.acme_member)
    link = make_link(client, cast.acme_member, "report")
    base = f"/t/acme/s/{token_of(link)}"

    top = client.get(link["url"], headers=HTML)
    inner = client.get(f"{link['url']}/folders/data", headers=HTML)
    listing = client.get(f"{link['url']}/folders/data", headers=JSON).json()
    file = client.get(f"{link['url']}/files/data/big.bin")
    outside = client.get(f"{link['url']}/files/../outside.txt")

    assert top.status_code == 200
    assert f'href="{base}/folders/data"' in top.text
    assert "summary.txt" in top.text
    assert "outside.txt" not in top.text
    assert "big.bin" in inner.text
    assert [item["name"] for item in listing["items"]] == ["big.bin", "empty.txt"]
    assert file.content == BIG
    assert outside.status_code in (400, 404)
    assert b"not shared" not in outside.content


@SHARED_ONLY
def test_folder_link_file_link_has_nothing_below(client: httpx.Client, cast: Cast) -> None:
    put(client, cast.acme_member, "a.txt", b"hello")
    link = make_link(client, cast.acme_member, "a.txt")

    response = client.get(f"{link['url']}/files/a.txt")

    assert response.status_code == 404


# Tenant settings and modules ------------------------------------------------------------


def patch_tenant(client: httpx.Client, admin: Member, route: str, change: dict[str, Any]) -> None:
    content_type = "application/merge-patch+json" if route == "settings" else "application/json"
    response = client.patch(
        admin.url(route), headers={**admin.headers, "Content-Type": content_type}, json=change
    )
    assert response.status_code == 200, response.text


@SHARED_ONLY
def test_link_expiry_capped_by_tenant_setting(client: httpx.Client, cast: Cast) -> None:
    patch_tenant(client, cast.acme_admin, "settings", {"link_max_expiry_days": 7})
    put(client, cast.acme_member, "a.txt", b"hello")

    unset = make_link(client, cast.acme_member, "a.txt")
    too_far = client.post(
        cast.acme_member.url("links"),
        headers=cast.acme_member.headers,
        json={"path": "a.txt", "expires_at": in_days(8).isoformat()},
    )
    within = make_link(client, cast.acme_member, "a.txt", expires_at=in_days(6).isoformat())

    given = dt.datetime.fromisoformat(unset["expires_at"].replace("Z", "+00:00"))
    assert abs(given - in_days(7)) < dt.timedelta(minutes=5)
    assert too_far.status_code == 400
    assert "link_max_expiry_days" in too_far.json()["detail"]
    assert within["expires_at"] is not None


@SHARED_ONLY
def test_link_module_off_stops_links_and_their_pages(client: httpx.Client, cast: Cast) -> None:
    put(client, cast.acme_member, "a.txt", b"hello")
    link = make_link(client, cast.acme_member, "a.txt")

    patch_tenant(client, cast.acme_admin, "modules", {"public_links": False})
    created = client.post(
        cast.acme_member.url("links"), headers=cast.acme_member.headers, json={"path": "a.txt"}
    )
    listed = client.get(cast.acme_member.url("links"), headers=cast.acme_member.headers)
    download = client.get(f"{link['url']}/download")
    page = client.get(link["url"], headers=HTML)
    patch_tenant(client, cast.acme_admin, "modules", {"public_links": True})
    again = client.get(f"{link['url']}/download")

    assert created.status_code == 403
    assert "public_links" in created.json()["detail"]
    assert listed.status_code == 403
    assert download.status_code == 403
    assert b"hello" not in download.content
    assert page.status_code == 403
    assert "text/html" in page.headers["content-type"]
    assert again.status_code == 200
    assert again.content == b"hello"


@SHARED_ONLY
def test_folder_zip_names_have_no_backslash(client: httpx.Client, cast: Cast) -> None:
    put(client, cast.acme_member, "zipme/..%5C..%5Cevil.txt", b"evil")
    link = make_link(client, cast.acme_member, "zipme")

    archive = zipfile.ZipFile(io.BytesIO(client.get(link["download_url"]).content))

    assert archive.namelist() == ["zipme/", "zipme/.._.._evil.txt"]
    assert archive.read("zipme/.._.._evil.txt") == b"evil"


@SHARED_ONLY
def test_link_expiry_out_of_range_is_400(client: httpx.Client, cast: Cast) -> None:
    put(client, cast.acme_member, "a.txt", b"hello")

    replies = [
        client.post(
            cast.acme_member.url("links"),
            headers=cast.acme_member.headers,
            json={"path": "a.txt", "expires_at": moment},
        )
        for moment in ("9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00")
    ]

    assert [reply.status_code for reply in replies] == [400, 400]
    assert "out of range" in replies[0].json()["detail"]


@SHARED_ONLY
def test_link_max_downloads_bounds_match_openapi(client: httpx.Client, cast: Cast) -> None:
    member = cast.acme_member
    put(client, member, "a.txt", b"hello")
    schema = client.get(member.url("openapi.json")).json()["components"]["schemas"]
    [bounds, _null] = schema["LinkCreate"]["properties"]["max_downloads"]["anyOf"]
    lowest, highest = int(bounds["minimum"]), int(bounds["maximum"])

    replies = {
        value: client.post(
            member.url("links"),
            headers=member.headers,
            json={"path": "a.txt", "max_downloads": value},
        )
        for value in (lowest - 1, lowest, highest, highest + 1)
    }

    assert (lowest, highest) == (1, 1_000_000)
    assert replies[lowest - 1].status_code == 400
    assert replies[lowest - 1].json()["detail"].startswith("max_downloads: ")
    assert replies[lowest].status_code == 201, replies[lowest].text
    assert replies[highest].status_code == 201, replies[highest].text
    assert replies[highest + 1].status_code == 400
    assert replies[highest + 1].json()["detail"].startswith("max_downloads: ")


@SHARED_ONLY
def test_link_password_of_spaces_is_400(client: httpx.Client, cast: Cast) -> None:
    member = cast.acme_member
    put(client, member, "a.txt", b"hello")
    client.post(member.url("folders/inbox"), headers=member.headers)

    for blank in (" " * 12, "\t" * 12, " \n\u00a0" * 5):
        link = client.post(
            member.url("links"), headers=member.headers, json={"path": "a.txt", "password": blank}
        )
        drop = client.post(
            member.url("upload-requests"),
            headers=member.headers,
            json={"path": "inbox", "password": blank},
        )

        for reply in (link, drop):
            assert reply.status_code == 400, repr(blank)
            assert reply.headers["content-type"] == "application/problem+json"
            assert reply.json()["detail"].startswith("the password contains only white space")
    links = client.get(member.url("links"), headers=member.headers).json()["items"]
    drops = client.get(member.url("upload-requests"), headers=member.headers).json()["items"]
    assert (links, drops) == ([], [])
    padded = make_link(client, member, "a.txt", password="  twelve chars ok  ")
    assert padded["has_password"] is True


@SHARED_ONLY
def test_link_max_downloads_must_be_integer(client: httpx.Client, cast: Cast) -> None:
    member = cast.acme_member
    put(client, member, "a.txt", b"hello")

    replies = {
        repr(value): client.post(
            member.url("links"),
            headers=member.headers,
            json={"path": "a.txt", "max_downloads": value},
        )
        for value in (True, "3", 2.0, 2.5)
    }
    made = client.get(member.url("links"), headers=member.headers).json()["items"]

    for value, reply in replies.items():
        assert reply.status_code == 400, value
        assert reply.headers["content-type"] == "application/problem+json", value
        assert reply.json()["detail"].startswith("max_downloads: Input should be a valid integer")
        assert "send a JSON integer such as 3" in reply.json()["detail"], value
    assert made == []
    assert make_link(client, member, "a.txt", max_downloads=3)["max_downloads"] == 3


@SHARED_ONLY
def test_link_empty_password_is_400(client: httpx.Client, cast: Cast) -> None:
    member = cast.acme_member
    put(client, member, "a.txt", b"hello")

    empty = client.post(
        member.url("links"), headers=member.headers, json={"path": "a.txt", "password": ""}
    )
    made = client.get(member.url("links"), headers=member.headers).json()["items"]

    assert empty.status_code == 400
    assert empty.json()["detail"] == (
        "the password is empty; give one of at least 12 characters, or leave the "
        "password field out for no password"
    )
    assert made == []
    assert make_link(client, member, "a.txt")["has_password"] is False
