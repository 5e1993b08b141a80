"""JSON request bodies: an unknown key is a 400 that names it and lists the valid keys."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import SHARED_LEVELS, Cast, Member

SHARED_ONLY = pytest.mark.parametrize("level", SHARED_LEVELS, indirect=True)
PROBLEM = "application/problem+json"
# JSON merge patches, whose keys the routes check themselves against the settings and modules.
MERGE_PATCH_ROUTES = {("PATCH", "/api/v1/settings"), ("PATCH", "/api/v1/modules")}
SOME_ID = "00000000-0000-4000-8000-000000000001"

# Every route with a JSON body model. Made-up ids suffice: the body is checked before the route
# looks anything up.
BODY_ROUTES = [
    ("POST", "tokens"),
    ("POST", "me/app-passwords"),
    ("POST", "webhooks"),
    ("PATCH", f"webhooks/{SOME_ID}"),
    ("POST", f"webhooks/{SOME_ID}/secret"),
    ("POST", "groups"),
    ("PATCH", f"groups/{SOME_ID}"),
    ("POST", "shares"),
    ("PATCH", f"shares/{SOME_ID}"),
    ("POST", "links"),
    ("POST", "upload-requests"),
    ("POST", "guests"),
    ("POST", "admin/exports"),
    ("POST", "move"),
    ("POST", "versions/notes.txt"),
]


def json_bodies(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Yield the method, path and schema of each operation's JSON request body."""
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                yield method.upper(), path, content["application/json"]["schema"]


def referenced(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any] | None:
    """Return the component a body schema refers to, directly or as the first of anyOf."""
    for candidate in (schema, *schema.get("anyOf", [])):
        if "$ref" in candidate:
            return document["components"]["schemas"][candidate["$ref"].rsplit("/", 1)[-1]]
    return None


def send(client: httpx.Client, member: Member, method: str, path: str, body: Any) -> httpx.Response:
    return client.request(method, member.url(path), headers=member.headers, json=body)


@pytest.mark.parametrize("level", ["sqlite-shared"], indirect=True)
def test_every_body_model_forbids_unknown_keys(client: httpx.Client, cast: Cast) -> None:
    document = client.get(cast.acme_member.url("openapi.json")).json()
    checked = []
    for method, path, schema in json_bodies(document):
        model = referenced(schema, document)
        if model is None:
            assert (method, path) in MERGE_PATCH_ROUTES, f"{method} {path} takes no body model"
            continue
        assert model.get("additionalProperties") is False, f"{method} {path} accepts unknown keys"
        checked.append(path)

    assert len(checked) >= len(BODY_ROUTES)


@SHARED_ONLY
def test_token_with_unknown_expiry_key_is_400(client: httpx.Client, cast: Cast) -> None:
    admin = cast.acme_admin
    before = send(client, admin, "GET", "tokens", None).json()["items"]
    body = {"name": "ci", "expires": "2027-01-01T00:00:00Z"}

    response = send(client, admin, "POST", "tokens", body)

    after = send(client, admin, "GET", "tokens", None).json()["items"]
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["detail"] == "expires: no such field; use one of: name, expires_in_days"
    assert len(after) == len(before)


@SHARED_ONLY
def test_several_unknown_keys_named(client: httpx.Client, cast: Cast) -> None:
    admin = cast.acme_admin
    body = {"name": "ci", "expires_at": "2027-01-01T00:00:00Z", "expires_days": 30}

    response = send(client, admin, "POST", "tokens", body)

    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith("expires_at, expires_days: no such fields;")


@SHARED_ONLY
@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
def test_unknown_key_is_400_on_every_route(
    client: httpx.Client, cast: Cast, method: str, path: str
) -> None:
    admin = cast.acme_admin

    response = send(client, admin, method, path, {"bogus": 1})

    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["detail"].startswith("bogus: no such field; use one of: ")


@SHARED_ONLY
def test_move_accepts_aliases_and_names(client: httpx.Client, cast: Cast) -> None:
    member = cast.acme_member
    created = client.put(member.url("files/a.txt"), headers=member.headers, content=b"abc")
    assert created.status_code in (200, 201), created.text

    by_alias = send(client, member, "POST", "move", {"from": "a.txt", "to": "b.txt"})
    by_name = send(client, member, "POST", "move", {"source": "b.txt", "destination": "c.txt"})
    unknown = send(client, member, "POST", "move", {"from": "c.txt", "target": "d.txt"})

    assert by_alias.status_code == 200, by_alias.text
    assert by_name.status_code == 200, by_name.text
    assert by_name.json()["path"] == "c.txt"
    assert unknown.status_code == 400, unknown.text
    assert unknown.json()["detail"] == "target: no such field; use one of: from, to, overwrite"
