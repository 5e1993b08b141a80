"""The exports API: requesting, listing, downloading and deleting, roles, and the other tenant."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from strongroom.exports.requests import MAX_UNFINISHED
from strongroom.identity import guests
from strongroom.identity.users import access_user
from strongroom.runtime import Runtime
from tests.conftest import SHARED_LEVELS, Cast, Member, legacy_guest_token
from tests.exports.conftest import (
    blob_file,
    blob_rows,
    download,
    jobs,  # noqa: F401 - the consumer fixture
    request_export,
    wait_until_done,
)
from tests.metering.conftest import JobWatcher

SHARED_ONLY = pytest.mark.parametrize("level", SHARED_LEVELS, indirect=True)
PROBLEM_TYPE = "application/problem+json"


def export_routes(export_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Every export route, filled with `export_id`, and the body each takes."""
    return [
        ("POST", "admin/exports", {"json": {"kind": "audit"}}),
        ("GET", "admin/exports", {}),
        ("GET", f"admin/exports/{export_id}", {}),
        ("GET", f"admin/exports/{export_id}/content", {}),
        ("DELETE", f"admin/exports/{export_id}", {}),
    ]


def audit_events(client: httpx.Client, admin: Member, action: str) -> list[dict[str, Any]]:
    response = client.get(admin.url("audit"), headers=admin.headers, params={"action": action})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def guest_headers(runtime: Runtime, cast: Cast) -> dict[str, str]:
    """Invite a guest of acme and return bearer headers for them."""
    with runtime.stores.session(cast.acme, write=True) as session:
        inviter = access_user(session, cast.acme_admin.user_id)
        invitation = guests.invite_guest(session, cast.acme, inviter, "guest@partner.example")
        secret = legacy_guest_token(session, invitation.guest)
    return {"Authorization": f"Bearer {secret}"}


# Requesting ------------------------------------------------------------------------------


@SHARED_ONLY
def test_export_request_answers_202_with_location(client: httpx.Client, cast: Cast) -> None:
    admin = cast.acme_admin
    body = {"kind": "audit", "filters": {"action": "login", "since": "2026-12-01T10:00:00+01:00"}}

    response = client.post(admin.url("admin/exports"), headers=admin.headers, json=body)

    export = response.json()
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/t/acme/api/v1/admin/exports/{export['id']}"
    assert export["status"] == "queued"
    assert export["kind"] == "audit"
    assert export["format"] == "jsonl"
    assert export["filters"] == {"action": "login", "since": "2026-12-01T09:00:00+00:00"}
    assert export["requested_by"] == str(admin.user_id)
    assert export["size"] is None
    assert export["finished"] is None
    followed = client.get(response.headers["location"], headers=admin.headers)
    assert followed.json() == export


@SHARED_ONLY
def test_export_filters_in_tenant_time_zone(
    runtime: Runtime, client: httpx.Client, cast: Cast
) -> None:
    admin = cast.acme_admin
    client.patch(admin.url("settings"), headers=admin.headers, json={"time_zone": "Asia/Tokyo"})

    export = request_export(client, admin, kind="audit", filters={"until": "2026-12-01T09:00"})

    assert export["filters"] == {"until": "2026-12-01T00:00:00+00:00"}


@SHARED_ONLY
def test_export_listing_newest_first(client: httpx.Client, cast: Cast) -> None:
    admin = cast.acme_admin
    first = request_export(client, admin, kind="audit")
    second = request_export(client, admin, kind="usage", filters={"month": "2026-11"})
    request_export(client, cast.globex_admin, kind="audit")

    response = client.get(admin.url("admin/exports"), headers=admin.headers)

    assert response.status_code == 200
    assert [item["id"] for item in response.json()["items"]] == [second["id"], first["id"]]


@SHARED_ONLY
@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"kind": "everything"}, "kind 'everything' is not a kind of export; use one of: audit"),
        ({"kind": "audit", "format": "csv"}, "format 'csv' is not a format of audit exports"),
        ({"kind": "audit", "filters": {"colour": "red"}}, "take no filter 'colour'"),
        ({"kind": "audit", "filters": {"action": "dance"}}, "action 'dance' is not an audit"),
        ({"kind": "audit", "filters": {"since": "yesterday"}}, "since 'yesterday' is not a time"),
        ({"kind": "audit", "filters": {"actor": 7}}, "filter 'actor' must be a string, not int"),
        ({"kind": "usage"}, "usage exports need the filter month"),
        ({"kind": "usage", "filters": {"month": "2026-13"}}, "month '2026-13' is not in the form"),
        ({"kind": "usage", "format": "xml", "filters": {"month": "2026-11"}}, "'xml' is not"),
    ],
)
def test_export_bad_request_named(
    client: httpx.Client, cast: Cast, body: dict[str, Any], named: str
) -> None:
    admin = cast.acme_admin

    response = client.post(admin.url("admin/exports"), headers=admin.headers, json=body)

    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == PROBLEM_TYPE
    assert named in response.json()["detail"]
    assert client.get(admin.url("admin/exports"), headers=admin.headers).json()["items"] == []


@SHARED_ONLY
def test_export_requests_limited_while_unfinished(client: httpx.Client, cast: Cast) -> None:
    # No consumer runs in this test, so every export stays queued.
    admin = cast.acme_admin
    made = [request_export(client, admin, kind="audit") for _ in range(MAX_UNFINISHED)]

    refused = client.post(admin.url("admin/exports"), headers=admin.headers, json={"kind": "audit"})
    other = client.post(
        cast.globex_admin.url("admin/exports"),
        headers=cast.globex_admin.headers,
        json={"kind": "audit"},
    )
    client.delete(admin.url(f"admin/exports/{made[0]['id']}"), headers=admin.headers)
    again = client.post(admin.url("admin/exports"), headers=admin.headers, json={"kind": "audit"})

    assert refused.status_code == 409
    assert refused.json()["detail"].startswith(
        f"the tenant has {MAX_UNFINISHED} exports queued or running"
    )
    assert other.status_code == 202
    assert again.status_code == 202


@SHARED_ONLY
def test_export_without_kind_is_400(client: httpx.Client, cast: Cast) -> None:
    admin = cast.acme_admin

    response = client.post(admin.url("admin/exports"), headers=admin.headers, json={})

    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM_TYPE
    assert response.json()["detail"].startswith("kind: ")


# Content ---------------------------------------------------------------------------------


@SHARED_ONLY
def test_export_content_conflicts_while_queued(client: httpx.Client, cast: Cast) -> None:
    # No consumer runs in this test, so the export stays queued.
    export = request_export(client, cast.acme_admin, kind="audit")

    response = download(client, cast.acme_admin, export["id"])

    assert response.status_code == 409
    assert response.headers["content-type"] == PROBLEM_TYPE
    assert response.json()["detail"] == (
        f"export '{export['id']}' is queued, not ready; wait until its status is ready, as GET "
        "on the export shows"
    )


@SHARED_ONLY
def test_export_delete_removes_row_and_blob(
    runtime: Runtime, client: httpx.Client, cast: Cast, jobs: JobWatcher  # noqa: F811
) -> None:
    admin = cast.acme_admin
    export = request_export(client, admin, kind="audit")
    wait_until_done(client, admin, export["id"])
    stored = blob_file(runtime, cast.acme, export["id"])
    assert stored.exists()

    response = client.delete(admin.url(f"admin/exports/{export['id']}"), headers=admin.headers)

    assert response.status_code == 204
    assert not stored.exists()
    assert blob_rows(runtime, cast.acme) == []
    gone = client.get(admin.url(f"admin/exports/{export['id']}"), headers=admin.headers)
    assert gone.status_code == 404
    assert download(client, admin, export["id"]).status_code == 404


@SHARED_ONLY
def test_export_actions_audited(
    client: httpx.Client, cast: Cast, jobs: JobWatcher  # noqa: F811
) -> None:
    admin = cast.acme_admin
    export = request_export(client, admin, kind="usage", filters={"month": "2026-11"})
    done = wait_until_done(client, admin, export["id"])
    assert download(client, admin, export["id"]).status_code == 200
    client.delete(admin.url(f"admin/exports/{export['id']}"), headers=admin.headers)

    [requested] = audit_events(client, admin, "export_requested")
    [downloaded] = audit_events(client, admin, "export_downloaded")
    [deleted] = audit_events(client, admin, "export_deleted")

    target = {"type": "export", "id": export["id"]}
    for event in (requested, downloaded, deleted):
        assert event["actor"] == str(admin.user_id)
        assert event["target"] == target
        assert event["address"] == "127.0.0.1"
    assert requested["new"] == {"kind": "usage", "format": "csv", "filters": {"month": "2026-11"}}
    assert downloaded["new"] == {"kind": "usage", "size": done["size"]}
    assert deleted["old"] == {"kind": "usage", "status": "ready"}


# Roles -----------------------------------------------------------------------------------


@SHARED_ONLY
def test_export_routes_forbidden_to_members(client: httpx.Client, cast: Cast) -> None:
    export = request_export(client, cast.acme_admin, kind="audit")
    member = cast.acme_member

    for method, path, body in export_routes(export["id"]):
        response = client.request(method, member.url(path), headers=member.headers, **body)

        assert response.status_code == 403, f"{method} {path}"
        assert response.json()["type"].endswith(":forbidden"), f"{method} {path}"
    exports = client.get(cast.acme_admin.url("admin/exports"), headers=cast.acme_admin.headers)
    assert [item["id"] for item in exports.json()["items"]] == [export["id"]]


@SHARED_ONLY
def test_export_routes_forbidden_to_guests(
    runtime: Runtime, client: httpx.Client, cast: Cast
) -> None:
    export = request_export(client, cast.acme_admin, kind="audit")
    headers = guest_headers(runtime, cast)

    for method, path, body in export_routes(export["id"]):
        response = client.request(method, f"/t/acme/api/v1/{path}", headers=headers, **body)

        assert response.status_code == 403, f"{method} {path}"
        assert response.json()["type"].endswith(":guest-confined"), f"{method} {path}"


# The other tenant ------------------------------------------------------------------------


def comparable(response: httpx.Response, export_id: str) -> tuple[Any, ...]:
    """The response with the request id and the id asked for left out."""
    body = response.json()
    body.pop("request_id", None)
    body["detail"] = body["detail"].replace(export_id, "ID")
    return response.status_code, response.headers["content-type"], body


def test_export_of_other_tenant_is_not_found(
    runtime: Runtime, client: httpx.Client, cast: Cast
) -> None:
    victim = request_export(client, cast.acme_admin, kind="audit")
    made_up = str(uuid.uuid4())
    intruder = cast.globex_admin

    for method, path, _body in export_routes(victim["id"])[2:]:
        foreign = client.request(method, intruder.url(path), headers=intruder.headers)
        unknown_path = path.replace(victim["id"], made_up)
        unknown = client.request(method, intruder.url(unknown_path), headers=intruder.headers)

        where = f"{method} {path}"
        assert foreign.status_code == 404, where
        assert comparable(foreign, victim["id"]) == comparable(unknown, made_up), where
    still = client.get(
        cast.acme_admin.url(f"admin/exports/{victim['id']}"), headers=cast.acme_admin.headers
    )
    assert still.status_code == 200
    assert still.json() == victim


@SHARED_ONLY
def test_export_ready_content_stays_with_tenant(
    client: httpx.Client, cast: Cast, jobs: JobWatcher  # noqa: F811
) -> None:
    victim = request_export(client, cast.acme_admin, kind="audit")
    wait_until_done(client, cast.acme_admin, victim["id"])

    stolen = download(client, cast.globex_admin, victim["id"])
    own = download(client, cast.acme_admin, victim["id"])

    assert stolen.status_code == 404
    assert own.status_code == 200
    assert own.content not in stolen.content
    assert str(cast.acme_admin.user_id).encode() not in stolen.content
