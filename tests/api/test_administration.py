"""Tenant settings and modules through the API, and the settings that uploads obey."""

from __future__ import annotations

import asyncio
import json

import httpx
from sqlalchemy import func, select

from strongroom.drive.models import BlobRow, VersionRow
from strongroom.interfaces.api.dependencies import ModuleGate
from strongroom.runtime import Runtime
from strongroom.tenancy import branding
from strongroom.tenancy.configuration import set_modules, update_settings
from strongroom.tenancy.events import OPERATOR
from strongroom.tenancy.plans import set_limit_overrides
from tests.api.test_quota import pieces, stored_files, usage
from tests.conftest import Cast, Member


def put_file(client: httpx.Client, member: Member, path: str, body: object) -> httpx.Response:
    return client.put(member.url(f"files/{path}"), content=body, headers=member.headers)


def count_rows(runtime: Runtime, member: Member, model: type) -> int:
    with runtime.stores.session(member.tenant) as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


# Settings -------------------------------------------------------------------------------------


def test_settings_admin_changes_member_reads(client: httpx.Client, cast: Cast) -> None:
    admin, member = cast.acme_admin, cast.acme_member

    changed = client.patch(
        admin.url("settings"),
        content=json.dumps({"time_zone": "Europe/Berlin", "blocked_extensions": [".EXE"]}),
        headers={**admin.headers, "Content-Type": "application/merge-patch+json"},
    )
    read = client.get(member.url("settings"), headers=member.headers)

    assert changed.status_code == 200
    assert read.status_code == 200
    assert read.json()["time_zone"] == "Europe/Berlin"
    assert read.json()["blocked_extensions"] == ["exe"]
    assert read.json()["display_name"] == "Acme"


def test_settings_patch_needs_admin(client: httpx.Client, cast: Cast) -> None:
    member = cast.acme_member

    response = client.patch(member.url("settings"), json={"locale": "fr"}, headers=member.headers)

    assert response.status_code == 403
    assert client.get(member.url("settings"), headers=member.headers).json()["locale"] == "en"


def test_settings_patch_other_tenant_unauthenticated(client: httpx.Client, cast: Cast) -> None:
    response = client.patch(
        cast.globex_admin.url("settings"), json={"locale": "fr"}, headers=cast.acme_admin.headers
    )

    globex = cast.globex_admin
    assert response.status_code == 401
    assert client.get(globex.url("settings"), headers=globex.headers).json()["locale"] == "en"


def test_settings_patch_invalid_is_problem(client: httpx.Client, cast: Cast) -> None:
    admin = cast.acme_admin

    response = client.patch(
        admin.url("settings"), json={"time_zone": "Mars/Olympus"}, headers=admin.headers
    )

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert "time_zone: 'Mars/Olympus' is not an IANA time zone" in response.json()["detail"]


def test_settings_patch_integers_are_strict(client: httpx.Client, cast: Cast) -> None:
    admin = cast.acme_admin

    replies = {
        (name, repr(value)): client.patch(
            admin.url("settings"), json=patch(name, value), headers=admin.headers
        )
        for name in ("versions_kept", "password_policy.min_length")
        for value in (True, "14")
    }
    settings = client.get(admin.url("settings"), headers=admin.headers).json()

    for (name, value), reply in replies.items():
        assert reply.status_code == 400, (name, value)
        assert reply.json()["detail"].startswith(f"{name}: Input should be a valid integer")
        assert "give an integer such as 30" in reply.json()["detail"]
    assert settings["versions_kept"] == 0
    assert settings["password_policy"]["min_length"] == 12


def test_settings_max_file_size_has_upper_bound(client: httpx.Client, cast: Cast) -> None:
    admin = cast.acme_admin
    largest = 2**53 - 1

    huge = client.patch(
        admin.url("settings"), json={"max_file_size": 10**40}, headers=admin.headers
    )
    above = client.patch(
        admin.url("settings"), json={"max_file_size": largest + 1}, headers=admin.headers
    )
    unchanged = client.get(admin.url("settings"), headers=admin.headers).json()
    exact = client.patch(
        admin.url("settings"), json={"max_file_size": largest}, headers=admin.headers
    )
    schema = client.get(admin.url("openapi.json")).json()["components"]["schemas"]

    assert huge.status_code == 400
    assert huge.json()["detail"] == (
        f"max_file_size: {10**40} is more than the maximum, {largest}; give a smaller number"
    )
    assert above.status_code == 400
    assert above.json()["detail"].startswith(f"max_file_size: {largest + 1} is more than")
    assert unchanged["max_file_size"] is None
    assert exact.status_code == 200, exact.text
    assert exact.json()["max_file_size"] == largest
    [bounded, _null] = schema["TenantSettings"]["properties"]["max_file_size"]["anyOf"]
    assert (bounded["minimum"], bounded["maximum"]) == (0, largest)


def patch(name: str, value: object) -> dict[str, object]:
    """Return the merge patch that sets a setting, whose dotted name may reach into a section."""
    *sections, last = name.split(".")
    document: dict[str, object] = {last: value}
    for section in reversed(sections):
        document = {section: document}
    return document


# Modules --------------------------------------------------------------------------------------


def test_disabled_module_routes_answer_403(
    client: httpx.Client, cast: Cast, runtime: Runtime
) -> None:
    admin = cast.acme_admin
    put_file(client, admin, "a.txt", b"one")

    switched = client.patch(admin.url("modules"), json={"versioning": False}, headers=admin.headers)
    response = client.get(admin.url("versions/a.txt"), headers=admin.headers)
    other = client.get(
        cast.globex_admin.url("versions/none.txt"), headers=cast.globex_admin.headers
    )

    assert switched.status_code == 200
    assert response.status_code == 403
    assert response.json()["type"].endswith("module-disabled")
    assert "the tenant administrator disabled it" in response.json()["detail"]
    assert other.status_code == 404


def test_versioning_off_replaces_content(
    client: httpx.Client, cast: Cast, runtime: Runtime
) -> None:
    member = cast.acme_member
    set_modules(runtime.catalog, runtime.stores, "acme", {"versioning": False}, OPERATOR)

    for body in (b"first", b"second!", b"third"):
        assert put_file(client, member, "a.txt", body).status_code in (200, 201)

    assert client.get(member.url("files/a.txt"), headers=member.headers).content == b"third"
    assert count_rows(runtime, member, VersionRow) == 1
    assert count_rows(runtime, member, BlobRow) == 1
    assert usage(client, member)["used_bytes"] == 5
    assert len(stored_files(runtime)) == 1


def test_versions_kept_prunes_oldest(client: httpx.Client, cast: Cast, runtime: Runtime) -> None:
    member = cast.acme_member
    update_settings(runtime.catalog, runtime.stores, "acme", {"versions_kept": 2}, OPERATOR)

    for body in (b"1", b"22", b"333"):
        put_file(client, member, "a.txt", body)
    versions = client.get(member.url("versions/a.txt"), headers=member.headers).json()["items"]

    assert [version["number"] for version in versions] == [2, 3]
    assert usage(client, member)["used_bytes"] == 5
    assert len(stored_files(runtime)) == 2


# Uploads --------------------------------------------------------------------------------------


def test_blocked_extension_upload_is_415(
    client: httpx.Client, cast: Cast, runtime: Runtime
) -> None:
    member = cast.acme_member
    update_settings(
        runtime.catalog, runtime.stores, "acme", {"blocked_extensions": ["exe", "tar.gz"]}, OPERATOR
    )

    blocked = put_file(client, member, "tools/Setup.EXE", b"MZ")
    nested = put_file(client, member, "backup.tar.gz", b"gz")
    allowed = put_file(client, cast.globex_member, "tools/setup.exe", b"MZ")

    assert blocked.status_code == 415
    assert "files ending in .exe are blocked in tenant 'acme'" in blocked.json()["detail"]
    assert blocked.json()["extension"] == "exe"
    assert nested.status_code == 415
    assert allowed.status_code == 201
    assert count_rows(runtime, member, VersionRow) == 0


def test_rename_to_blocked_extension_is_415(
    client: httpx.Client, cast: Cast, runtime: Runtime
) -> None:
    member = cast.acme_member
    put_file(client, member, "notes.txt", b"text")
    update_settings(
        runtime.catalog, runtime.stores, "acme", {"blocked_extensions": ["exe"]}, OPERATOR
    )

    response = client.post(
        member.url("move"), json={"from": "notes.txt", "to": "notes.exe"}, headers=member.headers
    )

    assert response.status_code == 415
    assert client.get(member.url("files/notes.txt"), headers=member.headers).status_code == 200


def test_max_file_size_rejects_large_uploads(
    client: httpx.Client, cast: Cast, runtime: Runtime
) -> None:
    member = cast.acme_member
    update_settings(runtime.catalog, runtime.stores, "acme", {"max_file_size": 1000}, OPERATOR)

    declared = put_file(client, member, "big.bin", b"x" * 1001)
    streamed = put_file(client, member, "big.bin", pieces(5000, size=400))
    fits = put_file(client, member, "small.bin", b"x" * 1000)

    assert declared.status_code == 413
    assert (
        "the upload declares 1001 bytes, more than the maximum file size of 1000"
        in (declared.json()["detail"])
    )
    assert "ask a tenant admin to raise the max_file_size setting" in declared.json()["detail"]
    assert streamed.status_code == 413
    assert streamed.json()["limit"] == 1000
    assert fits.status_code == 201
    assert usage(client, member)["used_bytes"] == 1000
    assert len(stored_files(runtime)) == 1


def test_plan_max_file_size_names_operator(
    client: httpx.Client, cast: Cast, runtime: Runtime
) -> None:
    member = cast.acme_member
    set_limit_overrides(runtime.catalog, runtime.stores, "acme", {"max_file_size": 10}, OPERATOR)

    response = put_file(client, member, "big.bin", b"x" * 11)

    assert response.status_code == 413
    assert (
        "ask the operator for a plan with a larger maximum file size" in response.json()["detail"]
    )


# Mounts outside FastAPI -----------------------------------------------------------------------


def test_module_gate_blocks_disabled_module(runtime: Runtime, cast: Cast) -> None:
    served: list[str] = []

    async def mounted(scope: dict, receive: object, send: object) -> None:
        served.append(scope["path"])

    gate = ModuleGate(mounted, "webdav")
    switched_off = set_modules(runtime.catalog, runtime.stores, "acme", {"webdav": False}, OPERATOR)
    replies = [asyncio.run(call_asgi(gate, tenant)) for tenant in (switched_off, cast.globex)]

    assert replies[0]["status"] == 403
    assert b"the tenant administrator disabled it" in replies[0]["body"]
    assert replies[1] == {}
    assert served == ["/dav/"]


async def call_asgi(app: object, tenant: object) -> dict:
    """Call an ASGI app with a GET of /dav/ for the tenant; return the status and body it sent."""
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/dav/",
        "headers": [],
        "state": {"tenant": tenant},
    }
    reply: dict = {}

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            reply["status"] = message["status"]
        elif message["type"] == "http.response.body":
            reply["body"] = reply.get("body", b"") + message.get("body", b"")

    await app(scope, receive, send)  # type: ignore[operator]
    return reply


def test_settings_change_keeps_branding(client: httpx.Client, cast: Cast, runtime: Runtime) -> None:
    admin = cast.acme_admin
    branding.set_branding(
        runtime.catalog, runtime.stores, cast.acme, OPERATOR, "Acme Legal", "#2f5d50"
    )

    response = client.patch(
        admin.url("settings"),
        headers={**admin.headers, "Content-Type": "application/merge-patch+json"},
        content=json.dumps({"versions_kept": 3}),
    )
    stored = runtime.catalog.tenant_settings(cast.acme.id)

    assert response.status_code == 200, response.text
    assert response.json()["versions_kept"] == 3
    assert stored["branding"]["colour"] == "#2f5d50"
    assert runtime.catalog.get_tenant_by_id(cast.acme.id).settings.versions_kept == 3


def test_blocked_extension_with_trailing_dot_is_415(
    client: httpx.Client, cast: Cast, runtime: Runtime
) -> None:
    member = cast.acme_member
    update_settings(
        runtime.catalog, runtime.stores, "acme", {"blocked_extensions": ["exe"]}, OPERATOR
    )

    replies = [
        put_file(client, member, f"tools/{name}", b"MZ")
        for name in ("b.exe.", "b.exe%20", "b.exe..", "b.exe::$DATA")
    ]

    assert [reply.status_code for reply in replies] == [415, 415, 415, 415]
    assert count_rows(runtime, member, VersionRow) == 0
