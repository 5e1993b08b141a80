"""Groups through the API: admins create, rename and delete them and choose their members.

Ids of another tenant's groups and users fail exactly like ids that do not
exist, and so does the id of a user who is not active. Those cases run on
every isolation level; the rules inside one tenant run on the shared level
of each backend only.
"""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import update

from strongroom.identity.models import UserRow
from strongroom.runtime import Runtime
from tests.conftest import SHARED_LEVELS, Cast, Member, add_member

ON_SHARED_LEVELS = pytest.mark.parametrize("level", SHARED_LEVELS, indirect=True)


def create_group(client: httpx.Client, admin: Member, name: str) -> dict:
    response = client.post(admin.url("groups"), json={"name": name}, headers=admin.headers)
    assert response.status_code == 201, response.text
    return response.json()


def add_to_group(client: httpx.Client, admin: Member, group: dict, user: Member) -> httpx.Response:
    return client.put(
        admin.url(f"groups/{group['id']}/members/{user.user_id}"), headers=admin.headers
    )


def deactivate(runtime: Runtime, member: Member) -> None:
    with runtime.stores.session(member.tenant, write=True) as session:
        session.execute(update(UserRow).where(UserRow.id == member.user_id).values(status="disabled"))


def problem_shape(response: httpx.Response, named_id: object) -> tuple:
    """The parts of a problem response that must not tell one missing id from another."""
    body = response.json()
    return (
        response.status_code,
        body["type"],
        body["title"],
        body["detail"].replace(str(named_id), "ID"),
    )


# Creating, renaming, deleting -------------------------------------------------------------


def test_group_create_by_admin(client: httpx.Client, cast: Cast) -> None:
    admin = cast.acme_admin

    created = create_group(client, admin, "  Finance ")

    assert created["name"] == "Finance"
    assert created["members"] == []
    listed = client.get(admin.url("groups"), headers=admin.headers).json()["items"]
    assert listed == [{"id": created["id"], "name": "Finance", "members": 0}]


@ON_SHARED_LEVELS
def test_group_create_by_member_is_403(client: httpx.Client, cast: Cast) -> None:
    member = cast.acme_member

    response = client.post(member.url("groups"), json={"name": "Finance"}, headers=member.headers)

    assert response.status_code == 403
    assert "admin" in response.json()["detail"]
    assert client.get(member.url("groups"), headers=member.headers).json()["items"] == []


@ON_SHARED_LEVELS
@pytest.mark.parametrize(
    ("name", "fault"),
    [("", "needs a name"), ("   ", "needs a name"), ("x" * 201, "at most 200"), ("a\u202eb", "U+202E")],
    ids=["empty", "blank", "long", "override"],
)
def test_group_bad_name_is_400(client: httpx.Client, cast: Cast, name: str, fault: str) -> None:
    admin = cast.acme_admin

    response = client.post(admin.url("groups"), json={"name": name}, headers=admin.headers)

    assert response.status_code == 400
    assert fault in response.json()["detail"]


@ON_SHARED_LEVELS
def test_group_duplicate_name_is_409(client: httpx.Client, cast: Cast) -> None:
    admin = cast.acme_admin
    create_group(client, admin, "Finance")

    response = client.post(admin.url("groups"), json={"name": "Finance"}, headers=admin.headers)

    assert response.status_code == 409
    assert "'Finance' already exists" in response.json()["detail"]


def test_group_same_name_in_two_tenants(client: httpx.Client, cast: Cast) -> None:
    acme = create_group(client, cast.acme_admin, "Finance")

    globex = create_group(client, cast.globex_admin, "Finance")

    assert globex["id"] != acme["id"]


@ON_SHARED_LEVELS
def test_group_rename(client: httpx.Client, cast: Cast) -> None:
    admin = cast.acme_admin
    group = create_group(client, admin, "Finance")
    create_group(client, admin, "Legal")

    renamed = client.patch(
        admin.url(f"groups/{group['id']}"), json={"name": "Accounts"}, headers=admin.headers
    )
    taken = client.patch(
        admin.url(f"groups/{group['id']}"), json={"name": "Legal"}, headers=admin.headers
    )
    by_member = client.patch(
        cast.acme_member.url(f"groups/{group['id']}"),
        json={"name": "Mine"},
        headers=cast.acme_member.headers,
    )

    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Accounts"
    assert taken.status_code == 409
    assert by_member.status_code == 403
    shown = client.get(admin.url(f"groups/{group['id']}"), headers=admin.headers).json()
    assert shown["name"] == "Accounts"


@ON_SHARED_LEVELS
def test_group_delete(client: httpx.Client, cast: Cast) -> None:
    admin = cast.acme_admin
    group = create_group(client, admin, "Finance")
    add_to_group(client, admin, group, cast.acme_member)

    response = client.delete(admin.url(f"groups/{group['id']}"), headers=admin.headers)

    assert response.status_code == 200
    assert [m["email"] for m in response.json()["members"]] == [cast.acme_member.email]
    assert client.get(admin.url(f"groups/{group['id']}"), headers=admin.headers).status_code == 404
    assert client.get(admin.url("groups"), headers=admin.headers).json()["items"] == []


# Members ----------------------------------------------------------------------------------


@ON_SHARED_LEVELS
def test_group_add_and_remove_member(client: httpx.Client, cast: Cast) -> None:
    admin, member = cast.acme_admin, cast.acme_member
    group = create_group(client, admin, "Finance")

    added = add_to_group(client, admin, group, member)
    again = add_to_group(client, admin, group, member)
    removed = client.delete(
        admin.url(f"groups/{group['id']}/members/{member.user_id}"), headers=admin.headers
    )

    assert added.status_code == 200
    assert [m["id"] for m in added.json()["members"]] == [str(member.user_id)]
    assert [m["id"] for m in again.json()["members"]] == [str(member.user_id)]
    assert removed.status_code == 200
    assert removed.json()["members"] == []


@ON_SHARED_LEVELS
def test_group_member_changes_need_admin(client: httpx.Client, cast: Cast) -> None:
    admin, member = cast.acme_admin, cast.acme_member
    group = create_group(client, admin, "Finance")

    response = add_to_group(client, member, group, member)

    assert response.status_code == 403
    shown = client.get(member.url(f"groups/{group['id']}"), headers=member.headers).json()
    assert shown["members"] == []


@ON_SHARED_LEVELS
def test_group_remove_non_member_is_404(client: httpx.Client, cast: Cast) -> None:
    admin = cast.acme_admin
    group = create_group(client, admin, "Finance")

    response = client.delete(
        admin.url(f"groups/{group['id']}/members/{cast.acme_member.user_id}"),
        headers=admin.headers,
    )

    assert response.status_code == 404
    assert "no member" in response.json()["detail"]


def test_group_other_tenant_user_fails_like_unknown(client: httpx.Client, cast: Cast) -> None:
    admin = cast.acme_admin
    group = create_group(client, admin, "Finance")
    foreign, unknown = cast.globex_member.user_id, uuid.uuid4()

    foreign_reply = client.put(
        admin.url(f"groups/{group['id']}/members/{foreign}"), headers=admin.headers
    )
    unknown_reply = client.put(
        admin.url(f"groups/{group['id']}/members/{unknown}"), headers=admin.headers
    )

    assert foreign_reply.status_code == 404
    assert problem_shape(foreign_reply, foreign) == problem_shape(unknown_reply, unknown)
    shown = client.get(admin.url(f"groups/{group['id']}"), headers=admin.headers).json()
    assert shown["members"] == []


def test_group_inactive_user_fails_like_unknown(
    client: httpx.Client, runtime: Runtime, cast: Cast
) -> None:
    admin = cast.acme_admin
    group = create_group(client, admin, "Finance")
    gone = add_member(runtime, cast.acme, "gone@acme.test", "member")
    deactivate(runtime, gone)
    unknown = uuid.uuid4()

    inactive_reply = add_to_group(client, admin, group, gone)
    unknown_reply = client.put(
        admin.url(f"groups/{group['id']}/members/{unknown}"), headers=admin.headers
    )

    assert inactive_reply.status_code == 404
    assert problem_shape(inactive_reply, gone.user_id) == problem_shape(unknown_reply, unknown)


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("PATCH", "", {"name": "Taken"}),
        ("DELETE", "", None),
        ("PUT", "/members/USER", None),
        ("DELETE", "/members/USER", None),
    ],
    ids=["get", "rename", "delete", "add-member", "remove-member"],
)
def test_group_other_tenant_id_fails_like_unknown(
    client: httpx.Client, cast: Cast, method: str, suffix: str, body: dict | None
) -> None:
    theirs = create_group(client, cast.globex_admin, "Finance")
    admin = cast.acme_admin
    unknown = str(uuid.uuid4())
    path = suffix.replace("USER", str(admin.user_id))

    foreign_reply = client.request(
        method, admin.url(f"groups/{theirs['id']}{path}"), json=body, headers=admin.headers
    )
    unknown_reply = client.request(
        method, admin.url(f"groups/{unknown}{path}"), json=body, headers=admin.headers
    )

    assert foreign_reply.status_code == 404
    assert problem_shape(foreign_reply, theirs["id"]) == problem_shape(unknown_reply, unknown)
    kept = client.get(
        cast.globex_admin.url(f"groups/{theirs['id']}"), headers=cast.globex_admin.headers
    )
    assert kept.json()["name"] == "Finance"
    assert kept.json()["members"] == []


# The directory ----------------------------------------------------------------------------


@ON_SHARED_LEVELS
def test_users_lists_active_users(client: httpx.Client, runtime: Runtime, cast: Cast) -> None:
    gone = add_member(runtime, cast.acme, "gone@acme.test", "member")
    deactivate(runtime, gone)
    member = cast.acme_member

    response = client.get(member.url("users"), headers=member.headers)

    assert response.status_code == 200
    emails = [user["email"] for user in response.json()["items"]]
    assert emails == ["admin@acme.test", "member@acme.test"]
