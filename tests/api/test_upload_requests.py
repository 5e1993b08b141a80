"""Upload requests: outsiders put files into one folder, and can never list, read or overwrite it."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from strongroom.base.config import Settings
from strongroom.drive.models import UploadRequestRow
from strongroom.runtime import Runtime
from tests.conftest import SHARED_LEVELS, Cast, Member
from tests.services.smtp import Mailbox, SmtpServer

SHARED_ONLY = pytest.mark.parametrize("level", SHARED_LEVELS, indirect=True)
HTML = {"Accept": "text/html"}


@pytest.fixture
def settings(settings: Settings, smtp_server: SmtpServer) -> Settings:
    """The test settings, with notifications sent to the test SMTP server."""
    return settings.model_copy(
        update={
            "smtp_host": smtp_server.host,
            "smtp_port": smtp_server.port,
            "smtp_starttls": False,
        }
    )


def put(client: httpx.Client, member: Member, path: str, body: bytes) -> dict[str, Any]:
    response = client.put(member.url(f"files/{path}"), headers=member.headers, content=body)
    assert response.status_code in (200, 201), response.text
    return response.json()


def listing(client: httpx.Client, member: Member, path: str) -> dict[str, dict[str, Any]]:
    response = client.get(member.url(f"folders/{path}"), headers=member.headers)
    return {item["name"]: item for item in response.json()["items"]}


def content_of(client: httpx.Client, member: Member, path: str) -> bytes:
    return client.get(member.url(f"files/{path}"), headers=member.headers).content


def make_request(client: httpx.Client, member: Member, path: str, **options: Any) -> dict[str, Any]:
    response = client.post(
        member.url("upload-requests"), headers=member.headers, json={"path": path, **options}
    )
    assert response.status_code == 201, response.text
    return response.json()


def send(
    client: httpx.Client, drop: dict[str, Any], name: str, body: bytes, **headers: str
) -> httpx.Response:
    return client.put(f"{drop['url']}/files/{name}", content=body, headers=headers)


def basic(password: str) -> str:
    return "Basic " + base64.b64encode(f":{password}".encode()).decode()


def token_of(drop: dict[str, Any]) -> str:
    return drop["url"].rsplit("/", 1)[-1]


def test_upload_request_stores_file(client: httpx.Client, cast: Cast) -> None:
    owner = cast.acme_member
    client.post(owner.url("folders/inbox"), headers=owner.headers)
    drop = make_request(client, owner, "inbox", title="Tax papers")

    response = send(client, drop, "scan.pdf", b"%PDF scanned")

    assert response.status_code == 201
    assert response.json()["received"] == [
        {"size": len(b"%PDF scanned"), "sha256": hashlib.sha256(b"%PDF scanned").hexdigest()}
    ]
    assert content_of(client, owner, "inbox/scan.pdf") == b"%PDF scanned"
    assert drop["url"].startswith(f"{client.base_url}/t/acme/r/")
    listed = client.get(owner.url("upload-requests"), headers=owner.headers).json()["items"]
    assert listed[0]["files_received"] == 1
    assert listed[0]["bytes_received"] == len(b"%PDF scanned")


def test_upload_request_never_overwrites(client: httpx.Client, cast: Cast) -> None:
    owner = cast.acme_member
    put(client, owner, "inbox/report.pdf", b"the owner's report")
    drop = make_request(client, owner, "inbox")

    first = send(client, drop, "report.pdf", b"outsider one")
    second = send(client, drop, "report.pdf", b"outsider two")
    files = listing(client, owner, "inbox")

    assert first.status_code == second.status_code == 201
    assert content_of(client, owner, "inbox/report.pdf") == b"the owner's report"
    assert files["report.pdf"]["version"] == 1
    assert content_of(client, owner, "inbox/report (2).pdf") == b"outsider one"
    assert content_of(client, owner, "inbox/report (3).pdf") == b"outsider two"
    # The reply names no file, because the stored name would reveal that the name was
    # taken, and the name as sent would be false.
    for reply, body in ((first, b"outsider one"), (second, b"outsider two")):
        assert reply.json()["received"] == [
            {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}
        ]
        assert "report" not in reply.text


def test_upload_request_cannot_list_or_read(client: httpx.Client, cast: Cast) -> None:
    owner = cast.acme_member
    put(client, owner, "private-inbox/secret-plan.txt", b"top secret contents")
    drop = make_request(client, owner, "private-inbox")
    base = drop["url"]

    page = client.get(base, headers=HTML)
    info = client.get(base, headers={"Accept": "application/json"})
    read = client.get(f"{base}/files/secret-plan.txt")
    folder = client.get(f"{base}/folders/")
    climb = send(client, drop, "..%2Fescaped.txt", b"x")
    dots = send(client, drop, "..", b"x")

    for response in (page, info):
        assert response.status_code == 200
        assert "secret-plan" not in response.text
        assert "private-inbox" not in response.text
    assert read.status_code == 405
    assert b"top secret" not in read.content
    assert folder.status_code in (404, 405)
    assert climb.status_code in (400, 404)
    assert dots.status_code in (400, 404, 405)
    assert set(listing(client, owner, "private-inbox")) == {"secret-plan.txt"}
    assert "escaped.txt" not in listing(client, owner, "")


def test_upload_request_bad_paths_explained(client: httpx.Client, cast: Cast) -> None:
    owner = cast.acme_member
    client.post(owner.url("folders/inbox"), headers=owner.headers)
    drop = make_request(client, owner, "inbox")
    base = drop["url"]

    nested = send(client, drop, "reports/q1.pdf", b"x", Accept="application/json")
    unnamed = client.put(f"{base}/files/", content=b"x", headers=HTML)
    read = client.get(f"{base}/files/q1.pdf", headers=HTML)
    elsewhere = client.get(f"{base}/folders/reports", headers=HTML)
    scripted = client.post(f"{base}/anything", headers={"Accept": "application/json"})

    assert nested.status_code == 400
    assert "send the file under its name alone, such as 'q1.pdf'" in nested.json()["detail"]
    assert unnamed.status_code == 400
    assert "no file name after /files/" in unnamed.text
    assert read.status_code == 405
    assert read.headers["allow"] == "PUT"
    assert "cannot be read or changed here" in read.text
    assert elsewhere.status_code == 404
    assert "not part of the upload request" in elsewhere.text
    assert elsewhere.headers["content-type"].startswith("text/html")
    assert scripted.status_code == 404
    assert "not part of the upload request" in scripted.json()["detail"]
    for response in (nested, unnamed, read, elsewhere, scripted):
        assert "openapi" not in response.text.lower()
    assert listing(client, owner, "inbox") == {}


@SHARED_ONLY
def test_upload_request_rejects_loose_values(client: httpx.Client, cast: Cast) -> None:
    owner = cast.acme_member
    client.post(owner.url("folders/inbox"), headers=owner.headers)

    def create(**options: Any) -> httpx.Response:
        return client.post(
            owner.url("upload-requests"), headers=owner.headers, json={"path": "inbox", **options}
        )

    empty = create(password="")
    flag = create(max_file_size=True)
    text = create(max_total_size="1000")
    made = client.get(owner.url("upload-requests"), headers=owner.headers).json()["items"]

    assert empty.status_code == 400
    assert empty.json()["detail"].startswith("the password is empty")
    assert "leave the password field out for no password" in empty.json()["detail"]
    assert flag.status_code == 400
    assert flag.json()["detail"].startswith("max_file_size: Input should be a valid integer")
    assert text.status_code == 400
    assert text.json()["detail"].startswith("max_total_size: Input should be a valid integer")
    assert made == []


@SHARED_ONLY
def test_upload_request_size_bounds_match_openapi(client: httpx.Client, cast: Cast) -> None:
    owner = cast.acme_member
    client.post(owner.url("folders/inbox"), headers=owner.headers)
    schema = client.get(owner.url("openapi.json")).json()["components"]["schemas"]
    fields = schema["UploadRequestCreate"]["properties"]

    for name in ("max_file_size", "max_total_size"):
        [bounds, _null] = fields[name]["anyOf"]
        # FastAPI writes bounds as floats, which represent integers up to 2**53 exactly.
        lowest, highest = int(bounds["minimum"]), int(bounds["maximum"])
        replies = {
            value: client.post(
                owner.url("upload-requests"),
                headers=owner.headers,
                json={"path": "inbox", name: value},
            )
            for value in (lowest - 1, lowest, highest, highest + 1)
        }

        assert (lowest, highest) == (1, 2**53 - 1), name
        assert float(highest) == bounds["maximum"], name
        assert replies[lowest - 1].status_code == 400, name
        assert name in replies[lowest - 1].json()["detail"]
        assert replies[lowest].status_code == 201, replies[lowest].text
        assert replies[lowest].json()[name] == lowest
        assert replies[highest].status_code == 201, replies[highest].text
        assert replies[highest].json()[name] == highest
        assert replies[highest + 1].status_code == 400, name


@SHARED_ONLY
def test_upload_request_file_size_limit(client: httpx.Client, cast: Cast) -> None:
    owner = cast.acme_member
    client.post(owner.url("folders/inbox"), headers=owner.headers)
    drop = make_request(client, owner, "inbox", max_file_size=100)

    too_large = send(client, drop, "big.bin", b"x" * 101, Accept="application/json")
    fits = send(client, drop, "small.bin", b"x" * 100)

    assert too_large.status_code == 413
    assert "at most 100 bytes" in too_large.json()["detail"]
    assert fits.status_code == 201
    assert set(listing(client, owner, "inbox")) == {"small.bin"}


@SHARED_ONLY
def test_upload_request_size_limit_without_length(client: httpx.Client, cast: Cast) -> None:
    owner = cast.acme_member
    client.post(owner.url("folders/inbox"), headers=owner.headers)
    drop = make_request(client, owner, "inbox", max_file_size=50_000)

    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(20):
            yield b"y" * 10_000

    response = client.put(f"{drop['url']}/files/streamed.bin", content=chunks())

    assert response.status_code == 413
    assert listing(client, owner, "inbox") == {}


@SHARED_ONLY
def test_upload_request_total_size_limit(client: httpx.Client, cast: Cast) -> None:
    owner = cast.acme_member
    client.post(owner.url("folders/inbox"), headers=owner.headers)
    drop = make_request(client, owner, "inbox", max_total_size=150)

    first = send(client, drop, "one.bin", b"1" * 100)
    second = send(client, drop, "two.bin", b"2" * 100, Accept="application/json")
    third = send(client, drop, "three.bin", b"3" * 50)
    full = send(client, drop, "four.bin", b"4")

    assert first.status_code == 201
    assert second.status_code == 413
    assert "room for 50 more bytes" in second.json()["detail"]
    assert third.status_code == 201
    assert full.status_code == 410
    assert set(listing(client, owner, "inbox")) == {"one.bin", "three.bin"}


def test_upload_request_mail_received(
    runtime: Runtime, client: httpx.Client, cast: Cast, mailbox: Mailbox
) -> None:
    owner = cast.acme_member
    client.post(owner.url("folders/inbox"), headers=owner.headers)
    drop = make_request(client, owner, "inbox", title="Holiday photos")

    send(client, drop, "beach.jpg", b"\xff\xd8 jpeg bytes")
    [mail] = mailbox.wait_for(1)

    assert mail.recipients == [owner.email]
    assert mail.message["To"] == owner.email
    assert mail.message["Subject"] == "New files: Holiday photos"
    body = mail.message.get_content()
    assert "beach.jpg" in body
    assert "/inbox" in body


@SHARED_ONLY
def test_upload_request_without_notify_sends_no_mail(
    runtime: Runtime, client: httpx.Client, cast: Cast, mailbox: Mailbox
) -> None:
    owner = cast.acme_member
    client.post(owner.url("folders/inbox"), headers=owner.headers)
    quiet = make_request(client, owner, "inbox", notify=False)
    loud = make_request(client, owner, "inbox", title="loud")

    send(client, quiet, "a.txt", b"a")
    send(client, loud, "b.txt", b"b")
    runtime.mailer.wait()

    assert [mail.message["Subject"] for mail in mailbox.messages] == ["New files: loud"]


@SHARED_ONLY
def test_upload_request_form_upload(client: httpx.Client, cast: Cast) -> None:
    owner = cast.acme_member
    client.post(owner.url("folders/inbox"), headers=owner.headers)
    drop = make_request(client, owner, "inbox")
    page = client.get(drop["url"], headers=HTML)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)

    response = client.post(
        drop["url"],
        headers=HTML,
        data={"csrf": csrf},
        files=[("files", ("one.txt", b"first file")), ("files", ("two.txt", b"second file"))],
    )

    assert page.status_code == 200
    assert 'enctype="multipart/form-data"' in page.text
    assert response.status_code == 201
    assert "one.txt" in response.text
    assert "two.txt" in response.text
    assert content_of(client, owner, "inbox/one.txt") == b"first file"
    assert content_of(client, owner, "inbox/two.txt") == b"second file"


def test_upload_request_form_without_csrf(client: httpx.Client, cast: Cast) -> None:
    owner = cast.acme_member
    client.post(owner.url("folders/inbox"), headers=owner.headers)
    drop = make_request(client, owner, "inbox")
    client.get(drop["url"], headers=HTML)  # sets this browser's CSRF cookie

    missing = client.post(drop["url"], headers=HTML, files=[("files", ("a.txt", b"forged"))])
    wrong = client.post(
        drop["url"], headers=HTML, data={"csrf": "x" * 43}, files=[("files", ("b.txt", b"forged"))]
    )

    assert missing.status_code == 403
    assert wrong.status_code == 403
    assert listing(client, owner, "inbox") == {}


@SHARED_ONLY
def test_upload_request_with_password(client: httpx.Client, cast: Cast) -> None:
    owner = cast.acme_member
    client.post(owner.url("folders/inbox"), headers=owner.headers)
    drop = make_request(client, owner, "inbox", password="correct horse battery")

    missing = send(client, drop, "a.txt", b"a")
    wrong = send(client, drop, "b.txt", b"b", Authorization=basic("wrong password!!"))
    right = send(client, drop, "c.txt", b"c", Authorization=basic("correct horse battery"))

    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Basic ")
    assert wrong.status_code == 401
    assert right.status_code == 201
    assert set(listing(client, owner, "inbox")) == {"c.txt"}


def test_upload_request_expired_or_revoked_gets_410(
    runtime: Runtime, client: httpx.Client, cast: Cast
) -> None:
    owner = cast.acme_member
    client.post(owner.url("folders/inbox"), headers=owner.headers)
    expired = make_request(client, owner, "inbox")
    revoked = make_request(client, owner, "inbox")
    with runtime.stores.session(owner.tenant, write=True) as session:
        session.execute(
            update(UploadRequestRow)
            .where(UploadRequestRow.id == uuid.UUID(expired["id"]))
            .values(expires_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
        )
    client.delete(owner.url(f"upload-requests/{revoked['id']}"), headers=owner.headers)

    late = send(client, expired, "a.txt", b"a")
    page = client.get(revoked["url"], headers=HTML)

    assert late.status_code == 410
    assert "expired" in late.text
    assert page.status_code == 410
    assert "turned off" in page.text
    assert listing(client, owner, "inbox") == {}


def test_upload_request_foreign_token_like_unknown(client: httpx.Client, cast: Cast) -> None:
    owner = cast.acme_member
    client.post(owner.url("folders/inbox"), headers=owner.headers)
    drop = make_request(client, owner, "inbox")
    made_up = "B" * len(token_of(drop))

    foreign = client.put(f"/t/globex/r/{token_of(drop)}/files/a.txt", content=b"a")
    unknown = client.put(f"/t/globex/r/{made_up}/files/a.txt", content=b"a")

    assert foreign.status_code == unknown.status_code == 404
    assert foreign.text.replace(token_of(drop), "") == unknown.text.replace(made_up, "")
    assert listing(client, owner, "inbox") == {}


@SHARED_ONLY
def test_upload_request_needs_a_folder(client: httpx.Client, cast: Cast) -> None:
    owner = cast.acme_member
    put(client, owner, "a.txt", b"a")

    on_file = client.post(
        owner.url("upload-requests"), headers=owner.headers, json={"path": "a.txt"}
    )
    missing = client.post(
        owner.url("upload-requests"), headers=owner.headers, json={"path": "nope"}
    )

    assert on_file.status_code == 409
    assert missing.status_code == 404


@SHARED_ONLY
def test_upload_request_counts_against_quota(
    runtime: Runtime, client: httpx.Client, cast: Cast
) -> None:
    owner = cast.acme_member
    client.post(owner.url("folders/inbox"), headers=owner.headers)
    drop = make_request(client, owner, "inbox")

    send(client, drop, "a.bin", b"a" * 1000)
    usage = client.get(owner.url("usage"), headers=owner.headers).json()

    assert usage["used_bytes"] == 1000


# Tenant settings and modules ------------------------------------------------------------


def patch_tenant(client: httpx.Client, admin: Member, route: str, change: dict[str, Any]) -> None:
    content_type = "application/merge-patch+json" if route == "settings" else "application/json"
    response = client.patch(
        admin.url(route), headers={**admin.headers, "Content-Type": content_type}, json=change
    )
    assert response.status_code == 200, response.text


@SHARED_ONLY
def test_upload_request_keeps_tenant_file_rules(client: httpx.Client, cast: Cast) -> None:
    owner = cast.acme_member
    client.post(owner.url("folders/inbox"), headers=owner.headers)
    drop = make_request(client, owner, "inbox")
    patch_tenant(
        client, cast.acme_admin, "settings", {"blocked_extensions": ["exe"], "max_file_size": 10}
    )

    blocked = send(client, drop, "setup.exe", b"MZ")
    declared = send(client, drop, "big.txt", b"x" * 11)
    small = send(client, drop, "ok.txt", b"fine")

    assert blocked.status_code == 415
    assert declared.status_code == 413
    assert small.status_code in (200, 201), small.text
    assert sorted(listing(client, owner, "inbox")) == ["ok.txt"]


@SHARED_ONLY
def test_upload_request_module_off_refuses_files(client: httpx.Client, cast: Cast) -> None:
    owner = cast.acme_member
    client.post(owner.url("folders/inbox"), headers=owner.headers)
    drop = make_request(client, owner, "inbox")

    patch_tenant(client, cast.acme_admin, "modules", {"upload_requests": False})
    sent = send(client, drop, "a.txt", b"while off")
    created = client.post(
        owner.url("upload-requests"), headers=owner.headers, json={"path": "inbox"}
    )
    patch_tenant(client, cast.acme_admin, "modules", {"upload_requests": True})
    later = send(client, drop, "b.txt", b"back on")

    assert sent.status_code == 403
    assert created.status_code == 403
    assert later.status_code in (200, 201), later.text
    assert sorted(listing(client, owner, "inbox")) == ["b.txt"]


@SHARED_ONLY
def test_upload_request_full_quota_hides_figures(
    runtime: Runtime, client: httpx.Client, cast: Cast
) -> None:
    owner = cast.acme_member
    client.post(owner.url("folders/inbox"), headers=owner.headers)
    drop = make_request(client, owner, "inbox")
    runtime.catalog.set_quota("acme", 100)
    client.put(owner.url("files/mine.txt"), headers=owner.headers, content=b"m" * 13)

    declared = send(client, drop, "big.bin", b"b" * 500, Accept="application/json")
    streamed = client.put(
        f"{drop['url']}/files/streamed.bin",
        content=iter([b"s" * 60, b"s" * 60]),
        headers={"Accept": "application/json"},
    )

    for response in (declared, streamed):
        assert response.status_code == 507
        problem = response.json()
        assert "used" not in problem
        assert "limit" not in problem
        assert "13" not in problem["detail"]
        assert "100" not in problem["detail"]
    assert sorted(listing(client, owner, "inbox")) == []
