"""The audit trail: which actions record events, reading and filtering them, the JSON Lines
export, the admin role, and the other tenant."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import httpx
import pytest

from strongroom.runtime import Runtime
from strongroom.tenancy import audit
from strongroom.tenancy.events import OPERATOR, Target, record_event, user_actor
from strongroom.tenancy.isolation import DATABASE, SHARED
from strongroom.tenancy.moves import move_tenant
from strongroom.tenancy.plans import create_plan, set_limit_overrides, set_tenant_plan
from tests.conftest import SHARED_LEVELS, Cast, Level, Member

# Every level runs the isolation tests; the rest add nothing there but time.
SHARED_ONLY = pytest.mark.parametrize("level", SHARED_LEVELS, indirect=True)
LOOPBACK = "127.0.0.1"


def call(
    client: httpx.Client, member: Member, method: str, path: str, **options: Any
) -> httpx.Response:
    response = client.request(method, member.url(path), headers=member.headers, **options)
    assert response.is_success, f"{method} {path}: {response.status_code} {response.text}"
    return response


def events(client: httpx.Client, admin: Member, **filters: str) -> list[dict[str, Any]]:
    """Return the events the admin reads with these filters, newest first."""
    response = client.get(admin.url("audit"), headers=admin.headers, params=filters)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def only(client: httpx.Client, admin: Member, action: str) -> dict[str, Any]:
    [event] = events(client, admin, action=action)
    return event


def export(client: httpx.Client, admin: Member, **filters: str) -> httpx.Response:
    return client.get(admin.url("audit/export"), headers=admin.headers, params=filters)


# What is recorded ---------------------------------------------------------------------


@SHARED_ONLY
def test_audit_token_created_and_revoked(client: httpx.Client, cast: Cast) -> None:
    member, admin = cast.acme_member, cast.acme_admin
    created = call(client, member, "POST", "tokens", json={"name": "laptop"}).json()
    call(client, member, "DELETE", f"tokens/{created['id']}")

    made = only(client, admin, "token_created")
    revoked = only(client, admin, "token_revoked")

    assert made["actor"] == str(member.user_id)
    assert made["address"] == LOOPBACK
    assert made["target"] == {"type": "token", "id": created["id"]}
    assert made["new"]["name"] == "laptop"
    assert revoked["target"] == {"type": "token", "id": created["id"]}
    assert created["token"] not in export(client, admin).text


@SHARED_ONLY
def test_audit_app_password_created_and_revoked(client: httpx.Client, cast: Cast) -> None:
    member, admin = cast.acme_member, cast.acme_admin
    created = call(client, member, "POST", "me/app-passwords", json={"name": "phone"}).json()
    call(client, member, "DELETE", f"me/app-passwords/{created['id']}")

    made = only(client, admin, "app_password_created")
    revoked = only(client, admin, "app_password_revoked")

    assert made["actor"] == str(member.user_id)
    assert made["target"] == {"type": "app_password", "id": created["id"]}
    assert revoked["old"] == {"user": str(member.user_id), "name": "phone"}
    assert created["password"] not in export(client, admin).text


@SHARED_ONLY
def test_audit_group_changes(client: httpx.Client, cast: Cast) -> None:
    admin, member = cast.acme_admin, cast.acme_member
    group = call(client, admin, "POST", "groups", json={"name": "finance"}).json()
    call(client, admin, "PATCH", f"groups/{group['id']}", json={"name": "treasury"})
    call(client, admin, "PUT", f"groups/{group['id']}/members/{member.user_id}")
    call(client, admin, "DELETE", f"groups/{group['id']}/members/{member.user_id}")
    call(client, admin, "DELETE", f"groups/{group['id']}")

    found = events(client, admin)

    assert [event["action"] for event in found] == [
        "group_deleted",
        "group_member_removed",
        "group_member_added",
        "group_renamed",
        "group_created",
    ]
    assert {event["target"]["id"] for event in found} == {group["id"]}
    assert {event["actor"] for event in found} == {str(admin.user_id)}
    renamed = found[3]
    assert (renamed["old"], renamed["new"]) == ({"name": "finance"}, {"name": "treasury"})
    assert found[2]["new"] == {"user": str(member.user_id)}


@SHARED_ONLY
def test_audit_share_changes(client: httpx.Client, cast: Cast) -> None:
    owner, admin = cast.acme_member, cast.acme_admin
    call(client, owner, "PUT", "files/docs/plan.txt", content=b"plan")
    body = {"path": "docs", "user_id": str(admin.user_id), "permission": "read"}
    share = call(client, owner, "POST", "shares", json=body).json()
    call(client, owner, "PATCH", f"shares/{share['id']}", json={"permission": "write"})
    call(client, owner, "DELETE", f"shares/{share['id']}")

    created = only(client, admin, "share_created")
    changed = only(client, admin, "share_changed")
    deleted = only(client, admin, "share_deleted")

    assert created["target"] == {"type": "share", "id": share["id"]}
    assert created["new"]["user"] == str(admin.user_id)
    assert created["new"]["permission"] == "read"
    assert changed["old"]["permission"] == "read"
    assert changed["new"]["permission"] == "write"
    assert deleted["old"]["permission"] == "write"
    assert {created["actor"], changed["actor"], deleted["actor"]} == {str(owner.user_id)}


@SHARED_ONLY
def test_audit_link_created_downloaded_revoked(client: httpx.Client, cast: Cast) -> None:
    owner, admin = cast.acme_member, cast.acme_admin
    node = call(client, owner, "PUT", "files/docs/plan.txt", content=b"the plan").json()
    secret = "correct horse battery staple"
    body = {"path": "docs/plan.txt", "password": secret, "max_downloads": 3}
    link = call(client, owner, "POST", "links", json=body).json()

    download = client.get(f"{link['download_url']}", auth=("", secret))
    call(client, owner, "DELETE", f"links/{link['id']}")

    assert download.status_code == 200
    created = only(client, admin, "link_created")
    downloaded = only(client, admin, "link_downloaded")
    revoked = only(client, admin, "link_revoked")
    assert created["target"] == {"type": "link", "id": link["id"]}
    assert created["new"]["has_password"] is True
    assert created["new"]["max_downloads"] == 3
    assert downloaded["actor"] == "anonymous"
    assert downloaded["address"] == LOOPBACK
    assert downloaded["target"] == {"type": "link", "id": link["id"]}
    assert downloaded["new"] == {"node": node["id"], "range": "bytes 0-7/8"}
    assert revoked["actor"] == str(owner.user_id)
    trail = export(client, admin).text
    assert secret not in trail
    assert link["url"].rsplit("/", 1)[-1] not in trail


@SHARED_ONLY
def test_audit_upload_request_and_received_file(client: httpx.Client, cast: Cast) -> None:
    owner, admin = cast.acme_member, cast.acme_admin
    call(client, owner, "POST", "folders/inbox")
    drop = call(client, owner, "POST", "upload-requests", json={"path": "inbox"}).json()

    sent = client.put(f"{drop['url']}/files/scan.pdf", content=b"%PDF scanned")
    call(client, owner, "DELETE", f"upload-requests/{drop['id']}")

    assert sent.status_code == 201
    created = only(client, admin, "upload_request_created")
    received = only(client, admin, "upload_request_file_received")
    revoked = only(client, admin, "upload_request_revoked")
    assert created["target"] == {"type": "upload_request", "id": drop["id"]}
    assert received["actor"] == "anonymous"
    assert received["address"] == LOOPBACK
    assert received["target"] == {"type": "upload_request", "id": drop["id"]}
    assert received["new"]["size"] == len(b"%PDF scanned")
    assert received["new"]["sha256"] == sent.json()["received"][0]["sha256"]
    stored = call(client, owner, "GET", "folders/inbox").json()["items"][0]
    assert received["new"]["node"] == stored["id"]
    assert revoked["actor"] == str(owner.user_id)


@SHARED_ONLY
def test_audit_settings_and_modules_by_admin(client: httpx.Client, cast: Cast) -> None:
    admin = cast.acme_admin
    call(client, admin, "PATCH", "settings", json={"time_zone": "Europe/Paris"})
    call(client, admin, "PATCH", "modules", json={"webdav": False})

    settings = only(client, admin, "settings_changed")
    modules = only(client, admin, "modules_changed")

    assert settings["actor"] == str(admin.user_id)
    assert settings["address"] == LOOPBACK
    assert settings["target"] == {"type": "tenant", "id": str(cast.acme.id)}
    assert (settings["old"], settings["new"]) == (
        {"time_zone": "UTC"},
        {"time_zone": "Europe/Paris"},
    )
    assert (modules["old"], modules["new"]) == ({"webdav": True}, {"webdav": False})


@SHARED_ONLY
def test_audit_plan_and_limits_by_operator(
    client: httpx.Client, runtime: Runtime, cast: Cast
) -> None:
    create_plan(runtime.catalog, "small", limits={"storage_bytes": 10_000})
    set_tenant_plan(runtime.catalog, runtime.stores, "acme", "small", OPERATOR)
    set_limit_overrides(runtime.catalog, runtime.stores, "acme", {"max_users": 5}, OPERATOR)

    plan = only(client, cast.acme_admin, "plan_changed")
    limits = only(client, cast.acme_admin, "limits_changed")

    assert plan["actor"] == "operator"
    assert plan["address"] is None
    assert (plan["old"], plan["new"]) == ({"plan": "default"}, {"plan": "small"})
    assert limits["new"] == {"max_users": 5}


# Reading ------------------------------------------------------------------------------


@SHARED_ONLY
def test_audit_filters_by_action_and_actor(
    client: httpx.Client, runtime: Runtime, cast: Cast
) -> None:
    admin = cast.acme_admin
    write_events(runtime, cast, 6)

    by_action = events(client, admin, action="plan_changed")
    by_actor = events(client, admin, actor=str(admin.user_id))
    by_both = events(client, admin, action="plan_changed", actor="operator")

    assert [event["new"]["number"] for event in by_action] == [5, 3, 1]
    assert [event["new"]["number"] for event in by_actor] == [4, 2, 0]
    assert by_both == by_action


@SHARED_ONLY
def test_audit_filters_by_time(client: httpx.Client, runtime: Runtime, cast: Cast) -> None:
    admin = cast.acme_admin
    write_events(runtime, cast, 3)
    middle = events(client, admin)[1]
    moment = dt.datetime.fromisoformat(middle["time"])

    since = events(client, admin, since=moment.isoformat())
    until = events(client, admin, until=moment.isoformat())
    in_paris = moment.astimezone(dt.timezone(dt.timedelta(hours=1))).isoformat()

    assert [event["new"]["number"] for event in since] == [2, 1]
    assert [event["new"]["number"] for event in until] == [0]
    assert events(client, admin, since=in_paris) == since


@SHARED_ONLY
def test_audit_time_without_offset_in_tenant_zone(
    client: httpx.Client, runtime: Runtime, cast: Cast
) -> None:
    admin = cast.acme_admin
    write_events(runtime, cast, 1)
    call(client, admin, "PATCH", "settings", json={"time_zone": "Asia/Tokyo"})
    first = dt.datetime.fromisoformat(events(client, admin)[-1]["time"])
    # Nine hours ahead of UTC: the same wall-clock time read as UTC would be 9 hours later.
    local = first.astimezone(dt.timezone(dt.timedelta(hours=9))).replace(tzinfo=None)

    found = events(client, admin, since=local.isoformat())

    assert len(found) == 2


@SHARED_ONLY
def test_audit_pages_with_cursor(client: httpx.Client, runtime: Runtime, cast: Cast) -> None:
    admin = cast.acme_admin
    write_events(runtime, cast, 5)
    seen: list[int] = []
    cursor = None

    for _ in range(3):
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = client.get(admin.url("audit"), headers=admin.headers, params=params).json()
        seen += [event["new"]["number"] for event in page["items"]]
        cursor = page["next_cursor"]

    assert seen == [4, 3, 2, 1, 0]
    assert cursor is None


@SHARED_ONLY
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("action", "delete_everything"),
        ("actor", "root"),
        ("since", "yesterday"),
        ("until", "2026-13-45"),
        ("limit", "0"),
        ("limit", "1001"),
        ("limit", "ten"),
        ("cursor", "not-a-cursor"),
        # Times whose UTC conversion falls outside the years a datetime supports.
        ("since", "9999-12-31T23:59:59-01:00"),
        ("until", "0001-01-01T00:00:00+01:00"),
        (
            "cursor",
            "MDAwMS0wMS0wMVQwMDowMDowMCswNTowMHw2ZjFjMmE0ZS0wZDdiLTRhMzgtOWU1NS0xZjBmM2MyYjdhMTA",
        ),
    ],
)
def test_audit_bad_filter_is_400_naming_value(
    client: httpx.Client, cast: Cast, name: str, value: str
) -> None:
    admin = cast.acme_admin

    response = client.get(admin.url("audit"), headers=admin.headers, params={name: value})

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert f"{name} {value!r}" in response.json()["detail"]


@SHARED_ONLY
def test_audit_since_after_until_is_400(client: httpx.Client, cast: Cast) -> None:
    admin = cast.acme_admin
    params = {"since": "2026-12-02T00:00:00+00:00", "until": "2026-12-01T00:00:00+00:00"}

    response = client.get(admin.url("audit"), headers=admin.headers, params=params)

    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "since '2026-12-02T00:00:00+00:00' is not earlier than until" in detail


# Export -------------------------------------------------------------------------------


@SHARED_ONLY
def test_audit_export_json_lines_oldest_first(
    client: httpx.Client, runtime: Runtime, cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Batches of two, so that five events take three reads.
    monkeypatch.setattr(audit, "EXPORT_BATCH", 2)
    admin = cast.acme_admin
    write_events(runtime, cast, 5)

    response = export(client, admin)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    assert "attachment" in response.headers["content-disposition"]
    lines = response.text.splitlines()
    parsed = [json.loads(line) for line in lines]
    assert [event["new"]["number"] for event in parsed] == [0, 1, 2, 3, 4]
    assert parsed == list(reversed(events(client, admin)))


@SHARED_ONLY
def test_audit_export_filters(client: httpx.Client, runtime: Runtime, cast: Cast) -> None:
    write_events(runtime, cast, 4)

    response = export(client, cast.acme_admin, action="settings_changed")

    numbers = [json.loads(line)["new"]["number"] for line in response.text.splitlines()]
    assert numbers == [0, 2]


@SHARED_ONLY
def test_audit_export_bad_filter_is_400(client: httpx.Client, cast: Cast) -> None:
    response = export(client, cast.acme_admin, since="last week")

    assert response.status_code == 400
    assert "since 'last week'" in response.json()["detail"]


# Who may read -------------------------------------------------------------------------


@SHARED_ONLY
@pytest.mark.parametrize("path", ["audit", "audit/export"])
def test_audit_member_gets_403(client: httpx.Client, cast: Cast, path: str) -> None:
    member = cast.acme_member

    response = client.get(member.url(path), headers=member.headers)

    assert response.status_code == 403
    assert "admin role" in response.json()["detail"]


def test_audit_other_tenant_sees_none(client: httpx.Client, runtime: Runtime, cast: Cast) -> None:
    acme_admin, globex_admin = cast.acme_admin, cast.globex_admin
    group = call(client, acme_admin, "POST", "groups", json={"name": "acme only"}).json()
    write_events(runtime, cast, 2)
    acme_ids = {event["id"] for event in events(client, acme_admin)}

    own = events(client, globex_admin)
    exported = export(client, globex_admin).text
    foreign = client.get("/t/acme/api/v1/audit", headers=globex_admin.headers)

    assert len(acme_ids) == 3
    assert own == []
    assert exported == ""
    assert group["id"] not in exported
    assert foreign.status_code == 401


def test_audit_rows_stay_in_own_store(runtime: Runtime, cast: Cast) -> None:
    record_event(runtime.stores, cast.globex, "plan_changed", OPERATOR, new={"plan": "small"})

    with runtime.stores.session(cast.acme) as session:
        acme_rows = audit.read_batch(session, audit.AuditFilter(), None, 100)
    with runtime.stores.session(cast.globex) as session:
        globex_rows = audit.read_batch(session, audit.AuditFilter(), None, 100)

    assert acme_rows == []
    assert [row.tenant_id for row in globex_rows] == [cast.globex.id]
    assert [row.action for row in globex_rows] == ["plan_changed"]


@SHARED_ONLY
def test_audit_trail_moves_with_tenant(
    client: httpx.Client, runtime: Runtime, cast: Cast, level: Level
) -> None:
    admin = cast.acme_admin
    call(client, admin, "PATCH", "settings", json={"time_zone": "Europe/Paris"})
    write_events(runtime, cast, 2)
    before = events(client, admin)
    destination = DATABASE if level.isolation == SHARED else SHARED

    move_tenant(runtime.catalog, runtime.stores, "acme", destination)
    call(client, admin, "PATCH", "settings", json={"time_zone": "UTC"})

    after = events(client, admin)
    assert runtime.catalog.get_tenant("acme").isolation == destination
    assert after[1:] == before
    assert after[0]["old"] == {"time_zone": "Europe/Paris"}


def write_events(runtime: Runtime, cast: Cast, count: int) -> None:
    """Write `count` events of acme numbered from 0, alternating the admin and the operator.

    Even numbers are settings changes by the admin, odd ones plan changes by the operator.
    """
    actors = (user_actor(cast.acme_admin.user_id, LOOPBACK), OPERATOR)
    for number in range(count):
        record_event(
            runtime.stores,
            cast.acme,
            "settings_changed" if number % 2 == 0 else "plan_changed",
            actors[number % 2],
            target=Target("tenant", uuid.uuid4()),
            new={"number": number},
        )
