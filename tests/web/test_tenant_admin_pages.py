"""The admin pages for the tenant's rules, modules and groups, through the forms a browser sends."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import Cast, LiveServer
from tests.web.helpers import WebUser, error_detail

pytestmark = pytest.mark.parametrize("level", ["sqlite-shared", "postgres-shared"], indirect=True)

RULES = {
    "time_zone": "Europe/Paris",
    "locale": "fr-FR",
    "password_min_length": "14",
    "second_factor_required": "true",
    "max_file_size": "5000000",
    "blocked_extensions": "exe, bat",
    "link_max_expiry_days": "30",
    "versions_kept": "5",
    "trash_retention_days": "14",
}


def api_get(server: LiveServer, cast: Cast, route: str) -> dict:
    admin = cast.acme_admin
    response = httpx.get(f"{server.url}{admin.url(route)}", headers=admin.headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_rules_form_changes_settings(
    acme_admin: WebUser, cast: Cast, live_server: LiveServer
) -> None:
    page = acme_admin.get("/admin/rules")
    saved = acme_admin.post("/admin/rules/settings", RULES)
    settings = api_get(live_server, cast, "settings")

    assert page.status_code == 200
    assert saved.status_code == 303
    assert settings["time_zone"] == "Europe/Paris"
    assert settings["password_policy"]["min_length"] == 14
    assert settings["second_factor_required"] is True
    assert settings["max_file_size"] == 5000000
    assert settings["blocked_extensions"] == ["exe", "bat"]
    assert settings["link_max_expiry_days"] == 30
    assert settings["versions_kept"] == 5
    assert settings["trash_retention_days"] == 14
    assert 'value="Europe/Paris"' in acme_admin.get("/admin/rules").text


def test_rules_form_rejects_bad_values(
    acme_admin: WebUser, cast: Cast, live_server: LiveServer
) -> None:
    zone = acme_admin.post("/admin/rules/settings", {**RULES, "time_zone": "Mars/Olympus"})
    count = acme_admin.post("/admin/rules/settings", {**RULES, "versions_kept": "all"})
    short = acme_admin.post("/admin/rules/settings", {**RULES, "password_min_length": "4"})

    assert zone.status_code == 400
    assert "Mars/Olympus" in zone.text
    assert count.status_code == 400
    assert short.status_code == 400
    assert api_get(live_server, cast, "settings")["time_zone"] == "UTC"


def test_rules_form_errors_name_labels(acme_admin: WebUser) -> None:
    short = acme_admin.post("/admin/rules/settings", {**RULES, "password_min_length": "4"})
    zone = acme_admin.post("/admin/rules/settings", {**RULES, "time_zone": "Mars/Olympus"})
    count = acme_admin.post("/admin/rules/settings", {**RULES, "versions_kept": "all"})
    lifetime = acme_admin.post("/admin/rules/settings", {**RULES, "link_max_expiry_days": "0"})

    for response in (short, zone, count, lifetime):
        assert response.status_code == 400
        assert "_" not in error_detail(response.text), error_detail(response.text)
    assert error_detail(short.text) == (
        "Shortest password must be at least 12; enter a larger number."
    )
    assert error_detail(zone.text).startswith("Time zone: 'Mars/Olympus' is not an IANA time zone")
    assert error_detail(count.text).startswith("Versions kept per file 'all' is not a whole number")
    assert error_detail(lifetime.text) == (
        "Longest link lifetime must be at least 1; enter a larger number."
    )


def test_rules_form_file_size_bound(
    acme_admin: WebUser, cast: Cast, live_server: LiveServer
) -> None:
    largest = 2**53 - 1
    admin = cast.acme_admin
    stored = httpx.patch(
        f"{live_server.url}{admin.url('settings')}",
        json={"max_file_size": largest},
        headers=admin.headers,
    )
    page = acme_admin.get("/admin/rules")
    resaved = acme_admin.post("/admin/rules/settings", {**RULES, "max_file_size": str(largest)})
    above = acme_admin.post("/admin/rules/settings", {**RULES, "max_file_size": str(largest + 1)})
    nineteen = acme_admin.post("/admin/rules/settings", {**RULES, "max_file_size": "1" + "0" * 18})

    assert stored.status_code == 200, stored.text
    assert f'value="{largest}"' in page.text
    assert resaved.status_code == 303
    assert api_get(live_server, cast, "settings")["max_file_size"] == largest
    for response in (above, nineteen):
        assert response.status_code == 400
        assert error_detail(response.text) == (
            f"Largest file must be at most {largest}; enter a smaller number."
        )


def test_rules_form_negative_numbers_named(acme_admin: WebUser) -> None:
    cases = {
        "versions_kept": "Versions kept per file must be zero or more; enter a larger number.",
        "trash_retention_days": "Days in the trash must be zero or more; enter a larger number.",
        "max_file_size": "Largest file must be zero or more; enter a larger number.",
        "link_max_expiry_days": "Longest link lifetime must be at least 1; enter a larger number.",
        "password_min_length": "Shortest password must be at least 12; enter a larger number.",
    }

    for field, expected in cases.items():
        response = acme_admin.post("/admin/rules/settings", {**RULES, field: "-5"})

        assert response.status_code == 400, field
        assert error_detail(response.text) == expected


def test_rules_form_second_factor_label(acme_admin: WebUser) -> None:
    response = acme_admin.post(
        "/admin/rules/settings", {**RULES, "second_factor_required": "perhaps"}
    )

    assert response.status_code == 400
    assert error_detail(response.text).startswith("Require two-step verification: ")
    assert "second" not in error_detail(response.text).lower()


def test_modules_form_switches_modules(
    acme_admin: WebUser, cast: Cast, live_server: LiveServer
) -> None:
    on = {"public_links": "on", "upload_requests": "on", "versioning": "on", "guests": "on"}

    saved = acme_admin.post("/admin/rules/modules", on)
    modules = {
        item["name"]: item["enabled"] for item in api_get(live_server, cast, "modules")["items"]
    }

    assert saved.status_code == 303
    assert modules["webdav"] is False
    assert modules["webhooks"] is False
    assert modules["public_links"] is True


def test_member_cannot_open_admin_rules(acme_member: WebUser) -> None:
    assert acme_member.get("/admin/rules").status_code == 403
    assert acme_member.post("/admin/rules/settings", RULES).status_code == 403
    assert acme_member.get("/admin/groups").status_code == 403


def test_groups_page_manages_members(
    acme_admin: WebUser, cast: Cast, live_server: LiveServer
) -> None:
    created = acme_admin.post("/admin/groups", {"name": "Finance"})
    group_id = api_get(live_server, cast, "groups")["items"][0]["id"]
    member = str(cast.acme_member.user_id)
    added = acme_admin.post(f"/admin/groups/{group_id}/members", {"user_id": member})
    page = acme_admin.get("/admin/groups")
    renamed = acme_admin.post(f"/admin/groups/{group_id}/rename", {"name": "Accounts"})
    removed = acme_admin.post(f"/admin/groups/{group_id}/members/{member}/remove")
    details = api_get(live_server, cast, f"groups/{group_id}")
    foreign = acme_admin.post(
        f"/admin/groups/{group_id}/members", {"user_id": str(cast.globex_member.user_id)}
    )
    deleted = acme_admin.post(f"/admin/groups/{group_id}/delete")

    assert created.status_code == 303
    assert added.status_code == 303
    assert cast.acme_member.email in page.text
    assert renamed.status_code == 303
    assert removed.status_code == 303
    assert details["name"] == "Accounts"
    assert details["members"] == []
    assert foreign.status_code == 404
    assert deleted.status_code == 303
    assert api_get(live_server, cast, "groups")["items"] == []
