"""Web sessions presented to another tenant fail exactly like unknown ones, on every level.

Each page of the web UI is called with the session cookie of acme's admin,
on globex's base URL in both its path and host forms. Every reply must be
the one a made-up cookie gets: a redirect to globex's login for a page, a
rejection for a change. Nothing of acme may come back, and nothing of
globex may change.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from fastapi.routing import iter_route_contexts

from strongroom.drive import shares
from strongroom.drive.models import READ
from strongroom.drive.paths import split_path
from strongroom.interfaces.api.app import create_app
from strongroom.interfaces.web.routing import WebRoute
from strongroom.runtime import Runtime
from tests.conftest import Cast, LiveServer, drive_owner
from tests.security.database import store_file
from tests.web.helpers import SESSION_COOKIE, WebUser, sign_in

FILLERS = {
    "path": "docs/plan.txt",
    "item_id": "",
    "user_id": "",
    "name": "app.js",
    "share_id": "",
    "token": "made-up-token",
    "group_id": "",
    "link_id": "",
    "export_id": "",
}
# Pages that anyone may open, signed in or not.
PUBLIC = {"/login", "/static/{name}", "/branding.css", "/branding/logo", "/invite/{token}"}


@pytest.fixture
def acme_admin(live_server: LiveServer, cast: Cast) -> Iterator[WebUser]:
    user = sign_in(live_server.url, cast.acme_admin)
    try:
        yield user
    finally:
        user.client.close()


def web_routes(runtime: Runtime) -> list[tuple[str, str]]:
    # The application's own route list does not show the included routers' WebRoute
    # objects, so the walk goes through FastAPI's route contexts, as routes.py does.
    routes = []
    for context in iter_route_contexts(create_app(runtime).routes):
        if isinstance(context.original_route, WebRoute):
            routes += [(method, context.path) for method in sorted(context.methods or ())]
    return routes


def fill(path: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda match: values[match.group(1)], path)


def test_foreign_session_cookie_fails_like_unknown(
    acme_admin: WebUser, live_server: LiveServer, runtime: Runtime, cast: Cast
) -> None:
    acme_admin.upload("docs/plan.txt", b"acme's secret plan")
    acme_admin.post("/delete/docs/plan.txt")
    acme_item = re.search(r"/trash/([0-9a-f-]{36})/", acme_admin.get("/trash").text).group(1)
    acme_share = share_with(runtime, cast, "docs/shared.txt")
    admin = cast.acme_admin
    acme_group = httpx.post(
        f"{live_server.url}{admin.url('groups')}", headers=admin.headers, json={"name": "Team"}
    ).json()["id"]
    acme_admin.upload("docs/linked.txt", b"acme's linked file")
    acme_link = httpx.post(
        f"{live_server.url}{admin.url('links')}",
        headers=admin.headers,
        json={"path": "docs/linked.txt"},
    ).json()["id"]
    acme_export = httpx.post(
        f"{live_server.url}{admin.url('admin/exports')}",
        headers=admin.headers,
        json={"kind": "audit"},
    ).json()["id"]
    values = {
        **FILLERS,
        "item_id": acme_item,
        "user_id": str(cast.acme_member.user_id),
        "share_id": acme_share,
        "group_id": acme_group,
        "link_id": acme_link,
        "export_id": acme_export,
    }
    forms = [("/t/globex", None), ("", "globex.strongroom.test")]

    pages = web_routes(runtime)
    assert len(pages) >= 30, pages
    with httpx.Client(base_url=live_server.url, timeout=30) as intruder:
        for method, path in pages:
            if path in PUBLIC:
                continue
            for prefix, host in forms:
                replies = []
                for cookie in (acme_admin.cookie, "made-up-cookie-value"):
                    headers = {"Cookie": f"{SESSION_COOKIE}={cookie}"}
                    if host:
                        headers["Host"] = host
                    if method != "GET":
                        headers["X-CSRF-Token"] = acme_admin.csrf
                    reply = intruder.request(method, prefix + fill(path, values), headers=headers)
                    replies.append(reply)
                    assert "secret plan" not in reply.text
                    assert cast.acme_admin.email not in reply.text
                foreign, unknown = replies
                where = f"{method} {path} on {host or prefix}"
                assert foreign.status_code == unknown.status_code, where
                assert foreign.headers.get("location") == unknown.headers.get("location"), where
                assert foreign.status_code in (303, 403, 404), where


def share_with(runtime: Runtime, cast: Cast, path: str) -> str:
    """Share a file of acme's tests' drive with acme's admin; return the share's id."""
    store_file(runtime, cast.acme, path, b"acme's secret plan, shared")
    owner = drive_owner(runtime, cast.acme)
    recipient = shares.Recipient(user_id=cast.acme_admin.user_id)  # type: ignore[arg-type]
    with runtime.stores.session(cast.acme, write=True) as session:
        share = shares.create_share(session, owner, split_path(path), recipient, READ)
    return str(share.id)


def test_session_cookie_works_in_own_tenant(acme_admin: WebUser) -> None:
    # The control of the test above: the same cookie opens acme's pages.
    assert acme_admin.get("/files/").status_code == 200
    assert acme_admin.get("/admin/users").status_code == 200
