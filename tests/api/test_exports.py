"""The exports API: requesting, listing, downloading and deleting, roles, and the other tenant."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from strongroom.exports.models import ExportRow
from strongroom.exports.requests import MAX_HELD, MAX_UNFINISHED
from strongroom.identity import guests
from strongroom.identity.users import access_user
from strongroom.runtime import Runtime
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.events import user_actor
from strongroom.tenancy.models import utcnow
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
from tests.metering.readings import hour_rows

SHARED_ONLY = pytest.mark.parametrize("level", SHARED_LEVELS, indirect=True)
PROBLEM_TYPE = "application/problem+json"
FAILURE = "the export failed after 3 attempts: the database failed"


def export_routes(export_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Every export route, filled with `export_id`, and the body each takes."""
    return [
        ("POST", "admin/exports", {"json": {"kind": "audit"}}),
        ("GET", "admin/exports", {}),
        ("GET", f"admin/exports/{export_id}", {}),
        ("GET", f"admin/exports/{export_id}/content", {}),
        ("DELETE", f"admin/exports/{export_id}", {}),
    ]


def head(client: httpx.Client, member: Member, export_id: str) -> httpx.Response:
    return client.head(member.url(f"admin/exports/{export_id}/content"), headers=member.headers)


def expire(runtime: Runtime, tenant: TenantInfo, export_id: str) -> None:
    """Move the export's expiry a second into the past, as if the sweep had not run yet."""
    with runtime.stores.session(tenant, write=True) as session:
        session.execute(
            update(ExportRow)
            .where(ExportRow.id == uuid.UUID(export_id))
            .values(expires_at=utcnow() - dt.timedelta(seconds=1))
        )


def fail(runtime: Runtime, tenant: TenantInfo, export_id: str) -> None:
    """Mark the export failed, as its job's last attempt would, to expire in a day."""
    now = utcnow()
    with runtime.stores.session(tenant, write=True) as session:
        session.execute(
            update(ExportRow)
            .where(ExportRow.id == uuid.UUID(export_id))
            .values(
                status="failed",
                reason=FAILURE,
                finished_at=now,
                expires_at=now + dt.timedelta(days=1),
            )
        )


def ready_exports(client: httpx.Client, admin: Member, count: int) -> list[dict[str, Any]]:
    """Request `count` audit exports, at most MAX_UNFINISHED at a time, and wait until ready."""
    made: list[dict[str, Any]] = []
    while len(made) < count:
        batch = [
            request_export(client, admin, kind="audit")
            for _ in range(min(MAX_UNFINISHED, count - len(made)))
        ]
        made += [wait_until_done(client, admin, export["id"]) for export in batch]
    return made


def bytes_sent(runtime: Runtime, tenant: TenantInfo) -> int:
    """Return the tenant's metered outgoing bytes, once the server's meter has flushed."""
    assert runtime.meter.flush()
    return sum(row.bytes_out for row in hour_rows(runtime.engine, tenant.id).values())


def audit_events(client: httpx.Client, admin: Member, action: str) -> list[dict[str, Any]]:
    response = client.get(admin.url("audit"), headers=admin.headers, params={"action": action})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def guest_headers(runtime: Runtime, cast: Cast) -> dict[str, str]:
    """Invite a guest of acme and return bearer headers for them."""
    with runtime.stores.session(cast.acme, write=True) as session:
        inviter = access_user(session, cast.acme_admin.user_id)
        invitation = guests.invite_guest(
            session, cast.acme, inviter, "guest@partner.example", user_actor(inviter.id)
        )
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
def test_export_ready_ones_capped(
    runtime: Runtime, client: httpx.Client, cast: Cast, jobs: JobWatcher  # noqa: F811
) -> None:
    admin = cast.acme_admin
    made = ready_exports(client, admin, MAX_HELD)

    refused = client.post(admin.url("admin/exports"), headers=admin.headers, json={"kind": "audit"})
    other = client.post(
        cast.globex_admin.url("admin/exports"),
        headers=cast.globex_admin.headers,
        json={"kind": "audit"},
    )
    client.delete(admin.url(f"admin/exports/{made[0]['id']}"), headers=admin.headers)
    after_delete = request_export(client, admin, kind="audit")
    expire(runtime, cast.acme, made[1]["id"])
    after_expiry = request_export(client, admin, kind="audit")

    problem = refused.json()
    assert refused.status_code == 409
    assert refused.headers["content-type"] == PROBLEM_TYPE
    assert problem["type"] == "urn:strongroom:problem:export-limit-reached"
    assert problem["detail"].startswith(
        f"the tenant has {MAX_HELD} exports queued, running or ready, the maximum it may keep; "
        "delete an export you no longer need (DELETE {base}/api/v1/admin/exports/{id}"
    )
    assert problem["held"] == MAX_HELD
    assert problem["max_held"] == MAX_HELD
    assert problem["held_bytes"] == sum(export["size"] for export in made)
    assert other.status_code == 202
    assert after_delete["status"] == "queued"
    assert after_expiry["status"] == "queued"


@SHARED_ONLY
def test_export_ready_bytes_capped(
    runtime: Runtime, client: httpx.Client, cast: Cast, jobs: JobWatcher  # noqa: F811
) -> None:
    admin = cast.acme_admin
    [first] = ready_exports(client, admin, 1)
    runtime.settings.export_max_held_bytes = first["size"]

    refused = client.post(admin.url("admin/exports"), headers=admin.headers, json={"kind": "audit"})
    client.delete(admin.url(f"admin/exports/{first['id']}"), headers=admin.headers)
    again = client.post(admin.url("admin/exports"), headers=admin.headers, json={"kind": "audit"})

    problem = refused.json()
    assert refused.status_code == 409
    assert problem["detail"].startswith(
        f"the tenant's ready exports take {first['size']} bytes, and the maximum is "
        f"{first['size']} bytes; delete an export you no longer need"
    )
    assert problem["held_bytes"] == first["size"]
    assert problem["max_held_bytes"] == first["size"]
    assert again.status_code == 202


@SHARED_ONLY
def test_export_failed_ones_not_held(
    runtime: Runtime, client: httpx.Client, cast: Cast
) -> None:
    admin = cast.acme_admin
    for _ in range(MAX_HELD):
        fail(runtime, cast.acme, request_export(client, admin, kind="audit")["id"])

    more = [request_export(client, admin, kind="audit") for _ in range(MAX_UNFINISHED)]

    assert [export["status"] for export in more] == ["queued"] * MAX_UNFINISHED


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
def test_export_reads_expired_before_sweep(
    runtime: Runtime, client: httpx.Client, cast: Cast, jobs: JobWatcher  # noqa: F811
) -> None:
    admin = cast.acme_admin
    export = request_export(client, admin, kind="audit")
    wait_until_done(client, admin, export["id"])
    expire(runtime, cast.acme, export["id"])

    one = client.get(admin.url(f"admin/exports/{export['id']}"), headers=admin.headers).json()
    [listed] = client.get(admin.url("admin/exports"), headers=admin.headers).json()["items"]
    content = download(client, admin, export["id"])

    assert one["status"] == "expired"
    assert listed["status"] == "expired"
    assert content.status_code == 409
    assert "expired at" in content.json()["detail"]
    # The stored status stays ready until the sweep deletes the row.
    with runtime.stores.session(cast.acme) as session:
        stored = session.get(ExportRow, (cast.acme.id, uuid.UUID(export["id"])))
        assert stored is not None
        assert stored.status == "ready"


@SHARED_ONLY
def test_export_failed_and_expired_reads_expired(
    runtime: Runtime, client: httpx.Client, cast: Cast
) -> None:
    admin = cast.acme_admin
    export = request_export(client, admin, kind="audit")
    fail(runtime, cast.acme, export["id"])
    expire(runtime, cast.acme, export["id"])

    shown = client.get(admin.url(f"admin/exports/{export['id']}"), headers=admin.headers).json()
    content = download(client, admin, export["id"])

    assert shown["status"] == "expired"
    assert shown["reason"] == FAILURE
    assert content.status_code == 409
    assert "expired at" in content.json()["detail"]


@SHARED_ONLY
def test_export_head_matches_get(
    runtime: Runtime, client: httpx.Client, cast: Cast, jobs: JobWatcher  # noqa: F811
) -> None:
    admin = cast.acme_admin
    export = request_export(client, admin, kind="usage", filters={"month": "2026-11"})
    done = wait_until_done(client, admin, export["id"])

    headed = head(client, admin, export["id"])
    got = download(client, admin, export["id"])

    assert headed.status_code == 200
    assert headed.content == b""
    assert headed.headers["content-length"] == str(done["size"])
    for name in ("content-type", "content-length", "content-disposition", "etag"):
        assert headed.headers[name] == got.headers[name], name
    # A HEAD downloads nothing, so it records no download event.
    assert len(audit_events(client, admin, "export_downloaded")) == 1


@SHARED_ONLY
def test_export_head_errors_match_get(runtime: Runtime, client: httpx.Client, cast: Cast) -> None:
    # No consumer runs in this test, so the exports stay queued until the test changes them.
    admin = cast.acme_admin
    queued = request_export(client, admin, kind="audit")
    expired = request_export(client, admin, kind="audit")
    fail(runtime, cast.acme, expired["id"])
    expire(runtime, cast.acme, expired["id"])
    cases = {"queued": queued["id"], "expired": expired["id"], "unknown": str(uuid.uuid4())}

    for case, export_id in cases.items():
        headed = head(client, admin, export_id)
        got = download(client, admin, export_id)

        assert headed.status_code == got.status_code, case
        assert headed.status_code == (404 if case == "unknown" else 409), case
        assert headed.headers["content-type"] == PROBLEM_TYPE, case
        assert headed.content == b"", case


@SHARED_ONLY
def test_export_download_metered_as_transfer(
    runtime: Runtime, client: httpx.Client, cast: Cast, jobs: JobWatcher  # noqa: F811
) -> None:
    admin = cast.acme_admin
    export = request_export(client, admin, kind="usage", filters={"month": "2026-11"})
    done = wait_until_done(client, admin, export["id"])
    before = bytes_sent(runtime, cast.acme)

    assert download(client, admin, export["id"]).status_code == 200
    after_get = bytes_sent(runtime, cast.acme)
    assert head(client, admin, export["id"]).status_code == 200
    after_head = bytes_sent(runtime, cast.acme)

    assert after_get - before == done["size"]
    assert after_head == after_get
    assert bytes_sent(runtime, cast.globex) == 0


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


@SHARED_ONLY
def test_export_head_forbidden_to_others(
    runtime: Runtime, client: httpx.Client, cast: Cast
) -> None:
    export = request_export(client, cast.acme_admin, kind="audit")
    content_path = f"/t/acme/api/v1/admin/exports/{export['id']}/content"

    member = head(client, cast.acme_member, export["id"])
    guest = client.head(content_path, headers=guest_headers(runtime, cast))
    foreign = head(client, cast.globex_admin, export["id"])
    unknown = head(client, cast.globex_admin, str(uuid.uuid4()))

    assert member.status_code == 403
    assert guest.status_code == 403
    assert foreign.status_code == 404
    assert unknown.status_code == 404
    assert foreign.headers["content-length"] == unknown.headers["content-length"]


def test_export_content_methods_in_openapi(client: httpx.Client) -> None:
    response = client.get("/api/v1/openapi.json")

    assert response.status_code == 200
    methods = response.json()["paths"]["/api/v1/admin/exports/{export_id}/content"]
    assert sorted(methods) == ["get", "head"]


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
