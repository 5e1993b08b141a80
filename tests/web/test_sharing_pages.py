"""The sharing page and version restore in the web UI, through the forms a browser sends."""

from __future__ import annotations

import base64
import datetime as dt
import re

import httpx
import pytest

from tests.conftest import Cast, LiveServer
from tests.web.helpers import WebUser, error_detail

pytestmark = pytest.mark.parametrize("level", ["sqlite-shared", "postgres-shared"], indirect=True)


def new_link_url(html: str) -> str:
    found = re.search(r'id="new-link-url" value="([^"]+)"', html)
    assert found is not None, "the page shows no new link"
    return found.group(1)


def test_share_and_unshare_from_page(
    acme_member: WebUser, cast: Cast, live_server: LiveServer
) -> None:
    acme_member.upload("plan.txt", b"the plan")
    admin = cast.acme_admin
    page = acme_member.get("/sharing/plan.txt")

    shared = acme_member.post(
        "/sharing/plan.txt/share", {"recipient": f"user:{admin.user_id}", "permission": "read"}
    )
    listing = httpx.get(f"{live_server.url}{admin.url('shared-with-me')}", headers=admin.headers)
    after = acme_member.get("/sharing/plan.txt?done=shared")
    share_id = listing.json()["items"][0]["id"]
    unshared = acme_member.post(f"/sharing/plan.txt/unshare/{share_id}")
    gone = httpx.get(f"{live_server.url}{admin.url('shared-with-me')}", headers=admin.headers)

    assert page.status_code == 200
    assert f'value="user:{admin.user_id}"' in page.text
    assert f'value="user:{cast.acme_member.user_id}"' not in page.text
    assert shared.status_code == 303
    assert [item["name"] for item in listing.json()["items"]] == ["plan.txt"]
    assert admin.email in after.text
    assert unshared.status_code == 303
    assert gone.json()["items"] == []


def test_share_page_rejects_bad_recipient(acme_member: WebUser, cast: Cast) -> None:
    acme_member.upload("plan.txt", b"the plan")

    nobody = acme_member.post("/sharing/plan.txt/share", {"recipient": "someone"})
    foreign = acme_member.post(
        "/sharing/plan.txt/share", {"recipient": f"user:{cast.globex_member.user_id}"}
    )
    top = acme_member.get("/sharing/")

    assert nobody.status_code == 400
    assert foreign.status_code == 404
    assert top.status_code == 400


def test_link_from_page_downloads_with_password(acme_member: WebUser) -> None:
    acme_member.upload("report.txt", b"quarterly numbers")
    password = "a long link password"
    soon = dt.datetime.now() + dt.timedelta(days=30)

    created = acme_member.post(
        "/sharing/report.txt/link",
        {"password": password, "expires": f"{soon:%Y-%m-%dT%H:%M}", "max_downloads": "2"},
    )
    url = new_link_url(created.text)
    secret = base64.b64encode(f":{password}".encode()).decode()
    without = httpx.get(f"{url}/download")
    downloaded = httpx.get(f"{url}/download", headers={"Authorization": f"Basic {secret}"})
    later = acme_member.get("/sharing/report.txt")

    assert created.status_code == 201
    assert without.status_code == 401
    assert downloaded.content == b"quarterly numbers"
    assert url not in later.text
    assert "1 of 2" in later.text


def test_link_revoked_from_page_is_gone(acme_member: WebUser, live_server: LiveServer) -> None:
    acme_member.upload("report.txt", b"numbers")
    url = new_link_url(acme_member.post("/sharing/report.txt/link").text)
    links = httpx.get(
        f"{live_server.url}{acme_member.member.url('links')}", headers=acme_member.member.headers
    ).json()["items"]

    revoked = acme_member.post(f"/sharing/report.txt/revoke-link/{links[0]['id']}")

    assert revoked.status_code == 303
    assert httpx.get(f"{url}/download").status_code == 410


def test_link_form_rejects_bad_fields(acme_member: WebUser) -> None:
    acme_member.upload("report.txt", b"numbers")

    bad_date = acme_member.post("/sharing/report.txt/link", {"expires": "next week"})
    bad_count = acme_member.post("/sharing/report.txt/link", {"max_downloads": "many"})
    short = acme_member.post("/sharing/report.txt/link", {"password": "short"})

    assert bad_date.status_code == 400
    assert "2030-01-31T18:00" in bad_date.text
    assert bad_count.status_code == 400
    assert short.status_code == 400


def test_link_form_errors_name_labels(acme_member: WebUser) -> None:
    acme_member.upload("report.txt", b"numbers")
    page = acme_member.get("/sharing/report.txt")

    past = acme_member.post("/sharing/report.txt/link", {"expires": "2020-01-31T18:00"})
    far = acme_member.post("/sharing/report.txt/link", {"expires": "2999-01-31T18:00"})
    zero = acme_member.post("/sharing/report.txt/link", {"max_downloads": "0"})
    long = acme_member.post("/sharing/report.txt/link", {"max_downloads": "1" * 13})

    assert "Expiry date (optional" in page.text
    assert "Maximum downloads (optional)" in page.text
    for response in (past, far, zero, long):
        detail = error_detail(response.text)
        assert response.status_code == 400, detail
        assert "expires_at" not in detail.lower(), detail
        assert "max_downloads" not in detail.lower(), detail
    assert error_detail(past.text).startswith("Expiry date 2020-01-31 18:00 is in the past")
    assert "choose a later date" in error_detail(past.text)
    assert error_detail(far.text).startswith("Expiry date 2999-01-31 18:00 is more than")
    assert "choose an earlier date" in error_detail(far.text)
    assert error_detail(zero.text) == (
        "Maximum downloads must be at least 1, not 0; enter a number from 1 to 1000000."
    )
    assert error_detail(long.text).startswith("Maximum downloads is longer than 12 characters")


def test_link_form_words_negatives_blanks_and_years(acme_member: WebUser) -> None:
    acme_member.upload("report.txt", b"numbers")

    negative = acme_member.post("/sharing/report.txt/link", {"max_downloads": "-3"})
    too_many = acme_member.post("/sharing/report.txt/link", {"max_downloads": "1000001"})
    spaces = acme_member.post("/sharing/report.txt/link", {"password": " " * 12})
    year_one = acme_member.post("/sharing/report.txt/link", {"expires": "0001-01-01T00:00"})

    for response in (negative, too_many, spaces, year_one):
        assert response.status_code == 400, error_detail(response.text)
    assert error_detail(negative.text) == (
        "Maximum downloads must be at least 1, not -3; enter a number from 1 to 1000000."
    )
    assert error_detail(too_many.text) == (
        "Maximum downloads 1000001 is out of range; enter a number from 1 to 1000000."
    )
    assert error_detail(spaces.text).startswith("Password contains only spaces; enter one of")
    assert "leave the field empty for no password" in error_detail(spaces.text)
    assert error_detail(year_one.text).startswith("Expiry date 0001-01-01 00:00 is in the past")


def test_link_form_empty_password_means_none(acme_member: WebUser, live_server: LiveServer) -> None:
    """An empty password field makes a link without a password.

    Browsers send every field of a form, so a person who leaves the optional
    password blank sends an empty one. The API, where a client chooses what to
    send, rejects an empty password and tells the client to omit the field.
    """
    acme_member.upload("report.txt", b"numbers")

    created = acme_member.post("/sharing/report.txt/link", {"password": ""})
    url = new_link_url(created.text)
    links = httpx.get(
        f"{live_server.url}{acme_member.member.url('links')}", headers=acme_member.member.headers
    ).json()["items"]

    assert created.status_code == 201
    assert [link["has_password"] for link in links] == [False]
    assert httpx.get(f"{url}/download").content == b"numbers"


def test_version_restore_from_file_page(acme_member: WebUser) -> None:
    acme_member.upload("notes.txt", b"first")
    acme_member.upload("notes.txt", b"second")

    page = acme_member.get("/files/notes.txt")
    restored = acme_member.post("/restore-version/notes.txt", {"number": "1"})

    assert 'aria-label="Restore version 1"' in page.text
    assert 'aria-label="Restore version 2"' not in page.text
    assert restored.status_code == 303
    assert acme_member.get("/download/notes.txt").content == b"first"
    assert "3 (current)" in acme_member.get("/files/notes.txt").text


def test_versioning_off_hides_old_versions(
    acme_member: WebUser, cast: Cast, live_server: LiveServer
) -> None:
    acme_member.upload("notes.txt", b"first")
    acme_member.upload("notes.txt", b"second")
    admin = cast.acme_admin
    off = httpx.patch(
        f"{live_server.url}{admin.url('modules')}",
        headers=admin.headers,
        json={"versioning": False},
    )

    page = acme_member.get("/files/notes.txt")
    old = acme_member.get("/download/notes.txt?version=1")
    huge = acme_member.get("/download/notes.txt?version=99999999999999999999")

    assert off.status_code == 200
    assert "Download version 1" not in page.text
    assert old.status_code == 403
    assert huge.status_code == 400
    assert acme_member.get("/download/notes.txt").content == b"second"
