"""Export jobs from the audit page: the button, the list, downloads, deletion and roles."""

from __future__ import annotations

import re

import httpx
import pytest

from strongroom.runtime import Runtime
from tests.conftest import Cast, LiveServer
from tests.exports.conftest import (
    blob_file,
    decrypt,
    jobs,  # noqa: F401 - the consumer fixture
    wait_until_done,
)
from tests.metering.conftest import JobWatcher
from tests.web.helpers import WebUser, sign_in

EXPORT_ROW = re.compile(r'data-export="([0-9a-f-]{36})"')


def listed_exports(page: str) -> list[str]:
    return EXPORT_ROW.findall(page)


def test_export_button_requests_job(acme_admin: WebUser, client: httpx.Client, cast: Cast) -> None:
    response = acme_admin.post("/admin/audit/exports", {"action": "login", "since": ""})

    assert response.status_code == 303
    assert response.headers["location"] == "/t/acme/admin/audit?done=export-requested"
    page = acme_admin.get("/admin/audit?done=export-requested").text
    [export_id] = listed_exports(page)
    admin = cast.acme_admin
    export = client.get(admin.url(f"admin/exports/{export_id}"), headers=admin.headers).json()
    assert export["kind"] == "audit"
    assert export["filters"] == {"action": "login"}
    assert export["requested_by"] == str(admin.user_id)
    assert "Export requested." in page
    # The list polls while the export waits for its job.
    assert 'hx-trigger="every 5s"' in page


def test_export_button_with_htmx_returns_list(acme_admin: WebUser) -> None:
    response = acme_admin.post(
        "/admin/audit/exports", {"action": "login"}, headers={"HX-Request": "true"}
    )

    assert response.status_code == 200
    assert 'id="exports"' in response.text
    assert len(listed_exports(response.text)) == 1
    assert "<html" not in response.text


def test_export_button_bad_filter_is_400(acme_admin: WebUser) -> None:
    response = acme_admin.post("/admin/audit/exports", {"since": "yesterday"})

    assert response.status_code == 400
    assert "From 'yesterday' is not a time" in response.text.replace("&#39;", "'")


def test_export_page_download_link(
    acme_admin: WebUser,
    runtime: Runtime,
    client: httpx.Client,
    cast: Cast,
    jobs: JobWatcher,  # noqa: F811
) -> None:
    acme_admin.post("/admin/audit/exports", {})
    [export_id] = listed_exports(acme_admin.get("/admin/audit").text)
    wait_until_done(client, cast.acme_admin, export_id)

    page = acme_admin.get("/admin/audit").text
    download = acme_admin.get(f"/admin/exports/{export_id}/content")

    assert f'href="/t/acme/admin/exports/{export_id}/content"' in page
    assert 'hx-trigger="every 5s"' not in page
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/x-ndjson"
    assert download.content == decrypt(runtime, cast.acme, export_id)


def test_export_page_delete(
    acme_admin: WebUser,
    runtime: Runtime,
    client: httpx.Client,
    cast: Cast,
    jobs: JobWatcher,  # noqa: F811
) -> None:
    acme_admin.post("/admin/audit/exports", {})
    [export_id] = listed_exports(acme_admin.get("/admin/audit").text)
    wait_until_done(client, cast.acme_admin, export_id)

    response = acme_admin.post(f"/admin/exports/{export_id}/delete")

    assert response.status_code == 303
    assert listed_exports(acme_admin.get("/admin/audit").text) == []
    assert not blob_file(runtime, cast.acme, export_id).exists()


def test_export_page_download_not_ready_is_409(acme_admin: WebUser) -> None:
    # No consumer runs in this test, so the export stays queued.
    acme_admin.post("/admin/audit/exports", {})
    [export_id] = listed_exports(acme_admin.get("/admin/audit").text)

    response = acme_admin.get(f"/admin/exports/{export_id}/content")

    assert response.status_code == 409
    assert "is queued, not ready" in response.text


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/admin/audit/exports"),
        ("GET", "/admin/audit/exports"),
        ("GET", "/admin/exports/{id}/content"),
        ("POST", "/admin/exports/{id}/delete"),
    ],
)
def test_export_pages_member_gets_403(
    acme_admin: WebUser, acme_member: WebUser, method: str, path: str
) -> None:
    acme_admin.post("/admin/audit/exports", {})
    [export_id] = listed_exports(acme_admin.get("/admin/audit").text)
    url = path.replace("{id}", export_id)

    if method == "POST":
        response = acme_member.post(url, {})
    else:
        response = acme_member.get(url)

    assert response.status_code == 403
    assert listed_exports(acme_admin.get("/admin/audit").text) == [export_id]


def test_export_page_other_tenant_id_is_404(
    live_server: LiveServer, cast: Cast, acme_admin: WebUser
) -> None:
    acme_admin.post("/admin/audit/exports", {})
    [export_id] = listed_exports(acme_admin.get("/admin/audit").text)
    globex_admin = sign_in(live_server.url, cast.globex_admin)
    try:
        download = globex_admin.get(f"/admin/exports/{export_id}/content")
        deleted = globex_admin.post(f"/admin/exports/{export_id}/delete")
        listing = globex_admin.get("/admin/audit").text
    finally:
        globex_admin.client.close()

    assert download.status_code == 404
    assert deleted.status_code == 404
    assert listed_exports(listing) == []
    assert listed_exports(acme_admin.get("/admin/audit").text) == [export_id]
