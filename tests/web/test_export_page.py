"""Export jobs from the audit and usage pages: the buttons, the list, downloads, deletion, roles."""

from __future__ import annotations

import datetime as dt
import re
import uuid

import httpx
import pytest
from sqlalchemy import update

from strongroom.exports.models import ExportRow
from strongroom.runtime import Runtime
from strongroom.tenancy.models import utcnow
from tests.conftest import Cast, LiveServer
from tests.exports.conftest import (
    blob_file,
    decrypt,
    jobs,  # noqa: F401 - the consumer fixture
    wait_until_done,
)
from tests.metering.conftest import JobWatcher
from tests.web.helpers import WebUser, error_detail, sign_in

EXPORT_ROW = re.compile(r'data-export="([0-9a-f-]{36})"')
EXPORT_STATUS = re.compile(r'data-export="([0-9a-f-]{36})" data-status="(\w+)"')


def listed_exports(page: str) -> list[str]:
    return EXPORT_ROW.findall(page)


def listed_statuses(page: str) -> dict[str, str]:
    return dict(EXPORT_STATUS.findall(page))


def get_export(client: httpx.Client, cast: Cast, export_id: str) -> dict[str, object]:
    admin = cast.acme_admin
    response = client.get(admin.url(f"admin/exports/{export_id}"), headers=admin.headers)
    assert response.status_code == 200, response.text
    return response.json()


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
        ("POST", "/admin/usage/exports"),
        ("GET", "/admin/exports"),
        ("GET", "/admin/exports/{id}/content"),
        ("HEAD", "/admin/exports/{id}/content"),
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
        response = acme_member.post(url, {"month": "2026-11"})
    else:
        response = acme_member.client.request(method, f"{acme_member.base}{url}")

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


# The usage page ---------------------------------------------------------------------------


def test_usage_page_has_export_button(acme_admin: WebUser) -> None:
    page = acme_admin.get("/admin/usage").text

    assert 'id="usage-export-job"' in page
    assert 'action="/t/acme/admin/usage/exports"' in page
    assert f'name="month" type="month" value="{utcnow():%Y-%m}"' in page
    assert '<option value="csv">csv</option>' in page
    assert '<option value="json">json</option>' in page
    assert 'id="exports"' in page


def test_usage_export_button_requests_job(
    acme_admin: WebUser, client: httpx.Client, cast: Cast
) -> None:
    response = acme_admin.post("/admin/usage/exports", {"month": "2026-11", "format": "json"})

    assert response.status_code == 303
    assert response.headers["location"] == "/t/acme/admin/usage?done=export-requested"
    page = acme_admin.get("/admin/usage?done=export-requested").text
    [export_id] = listed_exports(page)
    export = get_export(client, cast, export_id)
    assert export["kind"] == "usage"
    assert export["format"] == "json"
    assert export["filters"] == {"month": "2026-11"}
    assert export["requested_by"] == str(cast.acme_admin.user_id)
    assert "Export requested." in page
    assert 'hx-get="/t/acme/admin/exports?page=usage"' in page


def test_usage_export_button_with_htmx_returns_list(acme_admin: WebUser) -> None:
    response = acme_admin.post(
        "/admin/usage/exports", {"month": "2026-11"}, headers={"HX-Request": "true"}
    )

    assert response.status_code == 200
    assert 'id="exports"' in response.text
    assert len(listed_exports(response.text)) == 1
    assert "<html" not in response.text
    assert 'name="page" value="usage"' in response.text


@pytest.mark.parametrize(
    ("form", "named"),
    [
        ({"month": ""}, "usage exports need the filter month"),
        ({"month": "2026-13"}, "month '2026-13' is not in the form"),
        ({"month": "2026-11", "format": "xml"}, "format 'xml' is not a format of usage exports"),
    ],
)
def test_usage_export_button_bad_input_is_400(
    acme_admin: WebUser, form: dict[str, str], named: str
) -> None:
    response = acme_admin.post("/admin/usage/exports", form)

    assert response.status_code == 400
    assert named.lower() in error_detail(response.text).lower()
    assert listed_exports(acme_admin.get("/admin/usage").text) == []


def test_usage_export_delete_returns_to_usage(
    acme_admin: WebUser, runtime: Runtime, client: httpx.Client, cast: Cast
) -> None:
    acme_admin.post("/admin/usage/exports", {"month": "2026-11"})
    [export_id] = listed_exports(acme_admin.get("/admin/usage").text)

    response = acme_admin.post(f"/admin/exports/{export_id}/delete", {"page": "usage"})

    assert response.status_code == 303
    assert response.headers["location"] == "/t/acme/admin/usage?done=export-deleted"
    assert listed_exports(acme_admin.get("/admin/usage").text) == []


def test_export_list_bad_page_is_400(acme_admin: WebUser) -> None:
    acme_admin.post("/admin/usage/exports", {"month": "2026-11"})
    [export_id] = listed_exports(acme_admin.get("/admin/usage").text)

    listing = acme_admin.get("/admin/exports", params={"page": "files"})
    deleted = acme_admin.post(f"/admin/exports/{export_id}/delete", {"page": "files"})

    assert listing.status_code == 400
    assert "Page 'files' is not a page with exports" in error_detail(listing.text)
    assert deleted.status_code == 400
    assert listed_exports(acme_admin.get("/admin/usage").text) == [export_id]


def test_export_list_shows_expired(
    acme_admin: WebUser,
    runtime: Runtime,
    client: httpx.Client,
    cast: Cast,
    jobs: JobWatcher,  # noqa: F811
) -> None:
    acme_admin.post("/admin/usage/exports", {"month": "2026-11"})
    [export_id] = listed_exports(acme_admin.get("/admin/usage").text)
    wait_until_done(client, cast.acme_admin, export_id)
    with runtime.stores.session(cast.acme, write=True) as session:
        session.execute(
            update(ExportRow)
            .where(ExportRow.id == uuid.UUID(export_id))
            .values(expires_at=utcnow() - dt.timedelta(seconds=1))
        )

    page = acme_admin.get("/admin/usage").text
    download = acme_admin.get(f"/admin/exports/{export_id}/content")

    assert listed_statuses(page) == {export_id: "expired"}
    assert f"/admin/exports/{export_id}/content" not in page
    assert download.status_code == 409
    assert "expired at" in error_detail(download.text)


def test_export_page_head_matches_get(
    acme_admin: WebUser,
    client: httpx.Client,
    cast: Cast,
    jobs: JobWatcher,  # noqa: F811
) -> None:
    acme_admin.post("/admin/usage/exports", {"month": "2026-11"})
    [export_id] = listed_exports(acme_admin.get("/admin/usage").text)
    done = wait_until_done(client, cast.acme_admin, export_id)

    headed = acme_admin.client.head(f"{acme_admin.base}/admin/exports/{export_id}/content")
    got = acme_admin.get(f"/admin/exports/{export_id}/content")

    assert headed.status_code == 200
    assert headed.content == b""
    assert headed.headers["content-length"] == str(done["size"])
    assert headed.headers["content-type"] == got.headers["content-type"] == "text/csv; charset=utf-8"
