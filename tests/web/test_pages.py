"""The file browser, trash and admin pages of the web UI, driven over plain HTTP."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import select

from strongroom.identity.models import UserRow
from strongroom.runtime import Runtime
from tests.conftest import Cast, LiveServer
from tests.web.helpers import WebUser, post_login

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def trash_ids(user: WebUser) -> list[str]:
    return re.findall(r"/trash/([0-9a-f-]{36})/restore", user.get("/trash").text)


# Files ----------------------------------------------------------------------------------


def test_upload_then_download(acme_member: WebUser) -> None:
    body = bytes(range(256)) * 300

    stored = acme_member.upload("docs/table.bin", body)

    assert stored.status_code == 201
    assert stored.json() == {"path": "docs/table.bin", "version": 1, "size": len(body)}
    download = acme_member.get("/download/docs/table.bin")
    assert download.content == body
    assert "table.bin" in acme_member.get("/files/docs").text


def test_versions_listed_and_downloadable(acme_member: WebUser) -> None:
    acme_member.upload("notes.txt", b"first")
    acme_member.upload("notes.txt", b"second, longer")

    page = acme_member.get("/files/notes.txt")

    assert page.status_code == 200
    assert "2 (current)" in page.text
    assert acme_member.get("/download/notes.txt?version=1").content == b"first"
    assert acme_member.get("/download/notes.txt").content == b"second, longer"
    assert acme_member.get("/download/notes.txt?version=9").status_code == 404


def test_download_keeps_unicode_name(acme_member: WebUser) -> None:
    acme_member.upload("Résumé 2026.txt", b"cv")

    response = acme_member.get("/download/Résumé 2026.txt")

    assert "filename*=UTF-8''R%C3%A9sum%C3%A9%202026.txt" in response.headers["content-disposition"]


def test_listing_sorts_by_size(acme_member: WebUser) -> None:
    acme_member.upload("big.txt", b"x" * 3000)
    acme_member.upload("small.txt", b"x")
    acme_member.upload("middle.txt", b"x" * 200)

    ascending = acme_member.get("/files/?sort=size&order=asc").text
    descending = acme_member.get("/files/?sort=size&order=desc").text

    names = re.compile(r"(\w+)\.txt</a>")
    assert names.findall(ascending) == ["small", "middle", "big"]
    assert names.findall(descending) == ["big", "middle", "small"]


def test_new_folder_rename_move(acme_member: WebUser) -> None:
    acme_member.upload("draft.txt", b"text")

    assert acme_member.post("/new-folder/", {"name": "archive"}).status_code == 303
    assert acme_member.post("/rename/draft.txt", {"name": "final.txt"}).status_code == 303
    moved = acme_member.post("/move/final.txt", {"destination": "archive"})

    assert moved.headers["location"] == "/t/acme/files/?done=moved"
    assert acme_member.get("/download/archive/final.txt").content == b"text"
    assert acme_member.get("/files/draft.txt").status_code == 404


def test_rename_with_slash_is_refused(acme_member: WebUser) -> None:
    acme_member.upload("a.txt", b"text")

    response = acme_member.post("/rename/a.txt", {"name": "../b.txt"})

    assert response.status_code == 400
    assert "which separates folders" in response.text


def test_delete_restore_purge(acme_member: WebUser) -> None:
    acme_member.upload("old.txt", b"old")

    assert acme_member.post("/delete/old.txt").status_code == 303
    assert acme_member.get("/files/old.txt").status_code == 404
    [item] = trash_ids(acme_member)
    assert acme_member.post(f"/trash/{item}/restore").status_code == 303
    assert acme_member.get("/download/old.txt").content == b"old"
    acme_member.post("/delete/old.txt")
    assert acme_member.post(f"/trash/{item}/purge").status_code == 303
    assert trash_ids(acme_member) == []


def test_member_cannot_purge_others_items(acme_member: WebUser, acme_admin: WebUser) -> None:
    acme_admin.upload("admin.txt", b"mine")
    acme_admin.post("/delete/admin.txt")
    [item] = trash_ids(acme_admin)

    response = acme_member.post(f"/trash/{item}/purge")

    # Each user has a drive and a trash of their own, so the admin's item is unknown here.
    assert trash_ids(acme_member) == []
    assert response.status_code == 404
    assert trash_ids(acme_admin) == [item]


def test_unknown_trash_id_is_not_found(acme_member: WebUser) -> None:
    for item in ["00000000-0000-0000-0000-000000000000", "not-an-id", "%00"]:
        assert acme_member.post(f"/trash/{item}/restore").status_code == 404


def test_bad_paths_never_fail_the_server(acme_member: WebUser) -> None:
    for path in ["/files/%00", "/files/a/../..", "/files/" + "x" * 300, "/download/", "/files/%E2%80%AE"]:
        response = acme_member.get(path)
        assert response.status_code < 500, path


# Admin ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/admin/users", "/admin/settings", "/admin/usage", "/admin/audit"])
def test_member_gets_403_on_admin_pages(acme_member: WebUser, path: str) -> None:
    assert acme_member.get(path).status_code == 403


def test_member_cannot_create_users(acme_member: WebUser, runtime: Runtime, cast: Cast) -> None:
    response = acme_member.post("/admin/users", {"email": "new@acme.test", "role": "admin"})

    assert response.status_code == 403
    with runtime.stores.session(cast.acme) as session:
        assert session.scalars(select(UserRow).where(UserRow.email == "new@acme.test")).first() is None


def test_admin_creates_user_who_logs_in(
    acme_admin: WebUser, client: httpx.Client, cast: Cast
) -> None:
    response = acme_admin.post("/admin/users", {"email": "new@acme.test", "role": "member"})

    assert response.status_code == 201
    password = re.search(r'id="created-password">([^<]+)<', response.text).group(1)
    assert post_login(client, "/t/acme", "new@acme.test", password).status_code == 303


def test_admin_disables_user_and_ends_sessions(
    acme_admin: WebUser, acme_member: WebUser, cast: Cast
) -> None:
    target = f"/admin/users/{cast.acme_member.user_id}/status"

    assert acme_admin.post(target, {"status": "disabled"}).status_code == 303

    assert acme_member.get("/files/").status_code == 303
    api = acme_admin.client.get("/t/acme/api/v1/me", headers=cast.acme_member.headers)
    assert api.status_code == 401


def test_admin_changes_role(acme_admin: WebUser, acme_member: WebUser, cast: Cast) -> None:
    target = f"/admin/users/{cast.acme_member.user_id}/role"

    assert acme_admin.post(target, {"role": "admin"}).status_code == 303

    assert acme_member.get("/admin/users").status_code == 200


def test_admin_cannot_demote_self(acme_admin: WebUser, cast: Cast) -> None:
    response = acme_admin.post(f"/admin/users/{cast.acme_admin.user_id}/role", {"role": "member"})

    assert response.status_code == 403
    assert acme_admin.get("/admin/users").status_code == 200


def test_admin_cannot_change_other_tenants_user(acme_admin: WebUser, cast: Cast) -> None:
    response = acme_admin.post(
        f"/admin/users/{cast.globex_member.user_id}/status", {"status": "disabled"}
    )

    assert response.status_code == 404


def test_branding_shows_on_every_page(
    acme_admin: WebUser, live_server: LiveServer, cast: Cast
) -> None:
    saved = acme_admin.client.post(
        "/t/acme/admin/settings",
        data={"csrf_token": acme_admin.csrf, "display_name": "Acme Files", "colour": "#AA3300"},
        files={"logo": ("logo.png", PNG, "image/png")},
    )
    assert saved.status_code == 303

    login = httpx.get(f"{live_server.url}/t/acme/login")
    assert "Acme Files" in login.text
    assert "/branding.css?v=aa3300" in login.text
    assert "#aa3300" in httpx.get(f"{live_server.url}/t/acme/branding.css").text
    logo = re.search(r'src="(/t/acme/branding/logo\?v=[0-9a-f]+)"', acme_admin.get("/files/").text)
    assert httpx.get(f"{live_server.url}{logo.group(1)}").content == PNG
    other = httpx.get(f"{live_server.url}/t/globex/login").text
    assert "Acme Files" not in other
    assert "branding/logo" not in other


@pytest.mark.parametrize(
    ("fields", "logo", "message"),
    [
        ({"display_name": "Acme", "colour": "red"}, None, "not a colour"),
        ({"display_name": " ", "colour": "#112233"}, None, "display name is empty"),
        ({"display_name": "Acme", "colour": "#112233"}, b"<svg onload=alert(1)>", "not a PNG"),
        ({"display_name": "Acme", "colour": "#112233"}, PNG + b"\x00" * 200_000, "at most"),
    ],
)
def test_branding_rejects_bad_values(
    acme_admin: WebUser, fields: dict, logo: bytes | None, message: str
) -> None:
    files = {"logo": ("logo.png", logo, "image/png")} if logo else None

    response = acme_admin.client.post(
        "/t/acme/admin/settings", data={"csrf_token": acme_admin.csrf, **fields}, files=files
    )

    assert response.status_code in (400, 413)
    assert message in response.text


def test_usage_page_counts(acme_admin: WebUser) -> None:
    acme_admin.upload("a.txt", b"x" * 10)
    acme_admin.upload("a.txt", b"y" * 20)

    page = acme_admin.get("/admin/usage").text

    assert "30 bytes used" in page
    assert "<dt>File versions stored</dt><dd>2</dd>" in page
