"""Internal shares through the API: sharing, "shared with me", and files reached through a share.

Acme's member, Alice, shares from her drive; acme's admin, Bob, receives. A
third acme user, Carol, receives nothing. Paths through a share start at
the shared item, and every share route looks the share up again, so revoking,
leaving the group and trashing the item stop access with the next request.
Tests that involve another tenant, and the main paths, run on every isolation
level. The other rules inside one tenant run on the shared level of each
backend only.
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


def put_file(client: httpx.Client, member: Member, path: str, body: bytes) -> dict:
    response = client.put(member.url(f"files/{path}"), content=body, headers=member.headers)
    assert response.status_code in (200, 201), response.text
    return response.json()


def share(
    client: httpx.Client, owner: Member, path: str, permission: str = "read", **recipient: object
) -> httpx.Response:
    body = {"path": path, "permission": permission, **{k: str(v) for k, v in recipient.items()}}
    return client.post(owner.url("shares"), json=body, headers=owner.headers)


def shared(client: httpx.Client, owner: Member, path: str, to: Member, permission: str = "read") -> dict:
    response = share(client, owner, path, permission, user_id=to.user_id)
    assert response.status_code == 201, response.text
    return response.json()


def via(member: Member, share_id: str, rest: str) -> str:
    return member.url(f"shares/{share_id}/{rest}")


def shared_with(client: httpx.Client, member: Member) -> list[dict]:
    response = client.get(member.url("shared-with-me"), headers=member.headers)
    assert response.status_code == 200
    return response.json()["items"]


def problem_shape(response: httpx.Response, named_id: object) -> tuple:
    body = response.json()
    detail = body["detail"].replace(str(named_id), "ID")
    return response.status_code, body["type"], body["title"], detail


@pytest.fixture
def carol(runtime: Runtime, cast: Cast) -> Member:
    return add_member(runtime, cast.acme, "carol@acme.test", "member")


# Sharing and "shared with me" -------------------------------------------------------------


def test_share_folder_read(client: httpx.Client, cast: Cast) -> None:
    alice, bob = cast.acme_member, cast.acme_admin
    put_file(client, alice, "docs/plan.txt", b"the plan")

    created = shared(client, alice, "docs", bob)

    assert created["path"] == "docs"
    assert created["permission"] == "read"
    assert created["recipient"] == {"type": "user", "id": str(bob.user_id), "name": bob.email}
    [item] = shared_with(client, bob)
    assert item["id"] == created["id"]
    assert item["name"] == "docs"
    assert item["owner"]["email"] == alice.email
    listing = client.get(via(bob, created["id"], "folders/"), headers=bob.headers)
    assert [entry["path"] for entry in listing.json()["items"]] == ["plan.txt"]
    content = client.get(via(bob, created["id"], "files/plan.txt"), headers=bob.headers)
    assert content.content == b"the plan"


@ON_SHARED_LEVELS
def test_share_read_only_rejects_writes(client: httpx.Client, cast: Cast) -> None:
    alice, bob = cast.acme_member, cast.acme_admin
    put_file(client, alice, "docs/plan.txt", b"the plan")
    share_id = shared(client, alice, "docs", bob)["id"]

    replies = [
        client.put(via(bob, share_id, "files/plan.txt"), content=b"bob's", headers=bob.headers),
        client.put(via(bob, share_id, "files/new.txt"), content=b"bob's", headers=bob.headers),
        client.delete(via(bob, share_id, "files/plan.txt"), headers=bob.headers),
        client.post(via(bob, share_id, "folders/sub"), headers=bob.headers),
    ]

    assert [reply.status_code for reply in replies] == [403, 403, 403, 403]
    assert "read only" in replies[0].json()["detail"]
    assert client.get(alice.url("files/docs/plan.txt"), headers=alice.headers).content == b"the plan"
    names = [i["name"] for i in client.get(alice.url("folders/docs"), headers=alice.headers).json()["items"]]
    assert names == ["plan.txt"]


def test_share_write_changes_owners_drive(client: httpx.Client, cast: Cast) -> None:
    alice, bob = cast.acme_member, cast.acme_admin
    put_file(client, alice, "docs/plan.txt", b"the plan")
    share_id = shared(client, alice, "docs", bob, "write")["id"]

    replaced = client.put(via(bob, share_id, "files/plan.txt"), content=b"v2", headers=bob.headers)
    created = client.put(via(bob, share_id, "files/sub/new.txt"), content=b"n", headers=bob.headers)
    folder = client.post(via(bob, share_id, "folders/empty"), headers=bob.headers)

    assert replaced.status_code == 200
    assert replaced.json()["version"] == 2
    assert created.status_code == 201
    assert created.json()["path"] == "sub/new.txt"
    assert folder.status_code == 201
    assert client.get(alice.url("files/docs/plan.txt"), headers=alice.headers).content == b"v2"
    assert client.get(alice.url("files/docs/sub/new.txt"), headers=alice.headers).content == b"n"
    assert client.get(bob.url("files/sub/new.txt"), headers=bob.headers).status_code == 404


@ON_SHARED_LEVELS
def test_share_write_delete_goes_to_owners_trash(client: httpx.Client, cast: Cast) -> None:
    alice, bob = cast.acme_member, cast.acme_admin
    created = put_file(client, alice, "docs/plan.txt", b"the plan")
    share_id = shared(client, alice, "docs", bob, "write")["id"]

    response = client.delete(via(bob, share_id, "files/plan.txt"), headers=bob.headers)

    assert response.status_code == 200
    alice_trash = client.get(alice.url("trash"), headers=alice.headers).json()["items"]
    assert [item["id"] for item in alice_trash] == [created["id"]]
    assert client.get(bob.url("trash"), headers=bob.headers).json()["items"] == []


@ON_SHARED_LEVELS
def test_share_item_itself_cannot_be_deleted(client: httpx.Client, cast: Cast) -> None:
    alice, bob = cast.acme_member, cast.acme_admin
    put_file(client, alice, "docs/plan.txt", b"the plan")
    share_id = shared(client, alice, "docs", bob, "write")["id"]

    response = client.delete(via(bob, share_id, "folders/"), headers=bob.headers)

    assert response.status_code == 403
    assert "ask its owner" in response.json()["detail"]
    assert client.get(alice.url("folders/docs"), headers=alice.headers).status_code == 200


@ON_SHARED_LEVELS
def test_share_file_read_and_write(client: httpx.Client, cast: Cast) -> None:
    alice, bob = cast.acme_member, cast.acme_admin
    put_file(client, alice, "plan.txt", b"0123456789")
    share_id = shared(client, alice, "plan.txt", bob, "write")["id"]

    ranged = client.get(via(bob, share_id, "files/"), headers={**bob.headers, "Range": "bytes=2-4"})
    listing = client.get(via(bob, share_id, "folders/"), headers=bob.headers)
    replaced = client.put(via(bob, share_id, "files/"), content=b"new", headers=bob.headers)
    inside = client.put(via(bob, share_id, "files/x.txt"), content=b"x", headers=bob.headers)

    assert ranged.status_code == 206
    assert ranged.content == b"234"
    assert listing.status_code == 409
    assert replaced.status_code == 200
    assert inside.status_code == 409
    assert client.get(alice.url("files/plan.txt"), headers=alice.headers).content == b"new"


@ON_SHARED_LEVELS
def test_share_paths_stay_inside_item(client: httpx.Client, cast: Cast) -> None:
    alice, bob = cast.acme_member, cast.acme_admin
    put_file(client, alice, "private.txt", b"alice's secret")
    put_file(client, alice, "docs/plan.txt", b"the plan")
    share_id = shared(client, alice, "docs", bob)["id"]

    sibling = client.get(via(bob, share_id, "files/private.txt"), headers=bob.headers)
    dotted = client.get(via(bob, share_id, "files/%2E%2E/private.txt"), headers=bob.headers)

    assert sibling.status_code == 404
    assert dotted.status_code == 400
    assert b"alice's secret" not in sibling.content + dotted.content


# Who reaches a share ----------------------------------------------------------------------


@ON_SHARED_LEVELS
def test_share_non_recipient_is_404(client: httpx.Client, cast: Cast, carol: Member) -> None:
    alice, bob = cast.acme_member, cast.acme_admin
    put_file(client, alice, "docs/plan.txt", b"the plan")
    share_id = shared(client, alice, "docs", bob)["id"]

    content = client.get(via(carol, share_id, "files/plan.txt"), headers=carol.headers)
    listing = client.get(via(carol, share_id, "folders/"), headers=carol.headers)
    managed = client.get(carol.url(f"shares/{share_id}"), headers=carol.headers)

    assert [content.status_code, listing.status_code, managed.status_code] == [404, 404, 404]
    assert shared_with(client, carol) == []
    assert b"the plan" not in content.content


def test_share_revoke_stops_access(client: httpx.Client, cast: Cast) -> None:
    alice, bob = cast.acme_member, cast.acme_admin
    put_file(client, alice, "docs/plan.txt", b"the plan")
    share_id = shared(client, alice, "docs", bob)["id"]
    assert client.get(via(bob, share_id, "files/plan.txt"), headers=bob.headers).status_code == 200

    revoked = client.delete(alice.url(f"shares/{share_id}"), headers=alice.headers)

    assert revoked.status_code == 200
    assert client.get(via(bob, share_id, "files/plan.txt"), headers=bob.headers).status_code == 404
    assert shared_with(client, bob) == []
    assert client.get(alice.url("shares"), headers=alice.headers).json()["items"] == []


@ON_SHARED_LEVELS
def test_share_trash_stops_access_until_restored(client: httpx.Client, cast: Cast) -> None:
    alice, bob = cast.acme_member, cast.acme_admin
    put_file(client, alice, "top/docs/plan.txt", b"the plan")
    share_id = shared(client, alice, "top/docs", bob)["id"]

    top = client.delete(alice.url("folders/top"), headers=alice.headers).json()
    while_trashed = client.get(via(bob, share_id, "files/plan.txt"), headers=bob.headers)
    listed_trashed = shared_with(client, bob)
    owners_view = client.get(alice.url(f"shares/{share_id}"), headers=alice.headers).json()
    client.post(alice.url(f"trash/{top['id']}/restore"), headers=alice.headers)
    restored = client.get(via(bob, share_id, "files/plan.txt"), headers=bob.headers)

    assert while_trashed.status_code == 404
    assert listed_trashed == []
    assert owners_view["trashed"] is True
    assert restored.content == b"the plan"


def test_share_move_keeps_share(client: httpx.Client, cast: Cast) -> None:
    alice, bob = cast.acme_member, cast.acme_admin
    put_file(client, alice, "docs/plan.txt", b"the plan")
    share_id = shared(client, alice, "docs", bob)["id"]

    moved = client.post(
        alice.url("move"), json={"from": "docs", "to": "archive/old-docs"}, headers=alice.headers
    )

    assert moved.status_code == 200
    content = client.get(via(bob, share_id, "files/plan.txt"), headers=bob.headers)
    assert content.content == b"the plan"
    assert [item["name"] for item in shared_with(client, bob)] == ["old-docs"]
    owners_view = client.get(alice.url(f"shares/{share_id}"), headers=alice.headers).json()
    assert owners_view["path"] == "archive/old-docs"


@ON_SHARED_LEVELS
def test_share_purge_removes_share(client: httpx.Client, cast: Cast) -> None:
    alice, bob = cast.acme_member, cast.acme_admin
    put_file(client, alice, "docs/plan.txt", b"the plan")
    share_id = shared(client, alice, "docs", bob)["id"]
    folder = client.delete(alice.url("folders/docs"), headers=alice.headers).json()

    purged = client.delete(alice.url(f"trash/{folder['id']}"), headers=alice.headers)

    assert purged.status_code == 200
    assert client.get(alice.url("shares"), headers=alice.headers).json()["items"] == []
    assert client.get(via(bob, share_id, "folders/"), headers=bob.headers).status_code == 404


@ON_SHARED_LEVELS
def test_share_permission_update(client: httpx.Client, cast: Cast) -> None:
    alice, bob = cast.acme_member, cast.acme_admin
    put_file(client, alice, "docs/plan.txt", b"the plan")
    share_id = shared(client, alice, "docs", bob)["id"]

    by_recipient = client.patch(
        bob.url(f"shares/{share_id}"), json={"permission": "write"}, headers=bob.headers
    )
    by_owner = client.patch(
        alice.url(f"shares/{share_id}"), json={"permission": "write"}, headers=alice.headers
    )
    written = client.put(via(bob, share_id, "files/plan.txt"), content=b"v2", headers=bob.headers)

    assert by_recipient.status_code == 404
    assert by_owner.status_code == 200
    assert by_owner.json()["permission"] == "write"
    assert written.status_code == 200


# Groups -----------------------------------------------------------------------------------


def test_share_with_group(client: httpx.Client, cast: Cast, carol: Member) -> None:
    alice, bob = cast.acme_member, cast.acme_admin
    group = client.post(bob.url("groups"), json={"name": "Finance"}, headers=bob.headers).json()
    for member in (carol, alice):
        client.put(bob.url(f"groups/{group['id']}/members/{member.user_id}"), headers=bob.headers)
    put_file(client, alice, "docs/plan.txt", b"the plan")

    created = share(client, alice, "docs", group_id=group["id"])

    assert created.status_code == 201
    assert created.json()["recipient"] == {"type": "group", "id": group["id"], "name": "Finance"}
    [item] = shared_with(client, carol)
    assert item["group"] == {"id": group["id"], "name": "Finance"}
    share_id = created.json()["id"]
    assert client.get(via(carol, share_id, "files/plan.txt"), headers=carol.headers).status_code == 200
    assert shared_with(client, bob) == []
    assert shared_with(client, alice) == []  # her own share, through her own group


@ON_SHARED_LEVELS
def test_share_leaving_group_stops_access(client: httpx.Client, cast: Cast, carol: Member) -> None:
    alice, bob = cast.acme_member, cast.acme_admin
    group = client.post(bob.url("groups"), json={"name": "Finance"}, headers=bob.headers).json()
    client.put(bob.url(f"groups/{group['id']}/members/{carol.user_id}"), headers=bob.headers)
    put_file(client, alice, "docs/plan.txt", b"the plan")
    share_id = share(client, alice, "docs", group_id=group["id"]).json()["id"]

    client.delete(bob.url(f"groups/{group['id']}/members/{carol.user_id}"), headers=bob.headers)

    assert client.get(via(carol, share_id, "files/plan.txt"), headers=carol.headers).status_code == 404
    assert shared_with(client, carol) == []


@ON_SHARED_LEVELS
def test_share_group_deleted_removes_share(
    client: httpx.Client, cast: Cast, carol: Member
) -> None:
    alice, bob = cast.acme_member, cast.acme_admin
    group = client.post(bob.url("groups"), json={"name": "Finance"}, headers=bob.headers).json()
    client.put(bob.url(f"groups/{group['id']}/members/{carol.user_id}"), headers=bob.headers)
    put_file(client, alice, "docs/plan.txt", b"the plan")
    share_id = share(client, alice, "docs", group_id=group["id"]).json()["id"]

    client.delete(bob.url(f"groups/{group['id']}"), headers=bob.headers)

    assert client.get(via(carol, share_id, "files/plan.txt"), headers=carol.headers).status_code == 404
    assert client.get(alice.url("shares"), headers=alice.headers).json()["items"] == []


# Recipients that cannot be named ----------------------------------------------------------


@pytest.mark.parametrize("kind", ["user_id", "group_id"])
def test_share_other_tenant_recipient_fails_like_unknown(
    client: httpx.Client, cast: Cast, kind: str
) -> None:
    alice = cast.acme_member
    put_file(client, alice, "docs/plan.txt", b"the plan")
    if kind == "user_id":
        foreign = str(cast.globex_member.user_id)
    else:
        admin = cast.globex_admin
        foreign = client.post(admin.url("groups"), json={"name": "G"}, headers=admin.headers).json()["id"]
    unknown = str(uuid.uuid4())

    foreign_reply = share(client, alice, "docs", **{kind: foreign})
    unknown_reply = share(client, alice, "docs", **{kind: unknown})

    assert foreign_reply.status_code == 404
    assert problem_shape(foreign_reply, foreign) == problem_shape(unknown_reply, unknown)
    assert client.get(alice.url("shares"), headers=alice.headers).json()["items"] == []


def test_share_inactive_user_fails_like_unknown(
    client: httpx.Client, runtime: Runtime, cast: Cast, carol: Member
) -> None:
    alice = cast.acme_member
    put_file(client, alice, "docs/plan.txt", b"the plan")
    with runtime.stores.session(cast.acme, write=True) as session:
        session.execute(update(UserRow).where(UserRow.id == carol.user_id).values(status="disabled"))
    unknown = uuid.uuid4()

    inactive_reply = share(client, alice, "docs", user_id=carol.user_id)
    unknown_reply = share(client, alice, "docs", user_id=unknown)

    assert inactive_reply.status_code == 404
    assert problem_shape(inactive_reply, carol.user_id) == problem_shape(unknown_reply, unknown)


@ON_SHARED_LEVELS
@pytest.mark.parametrize(
    ("path", "recipient", "status", "fault"),
    [
        ("", "bob", 400, "root folder"),
        ("docs", "alice", 400, "another user"),
        ("nothing", "bob", 404, "nothing exists"),
        ("docs", "both", 400, "one user or one group"),
        ("docs", "none", 400, "one user or one group"),
    ],
    ids=["root", "self", "missing-path", "both-recipients", "no-recipient"],
)
def test_share_bad_request_is_rejected(
    client: httpx.Client, cast: Cast, path: str, recipient: str, status: int, fault: str
) -> None:
    alice, bob = cast.acme_member, cast.acme_admin
    put_file(client, alice, "docs/plan.txt", b"the plan")
    recipients = {
        "bob": {"user_id": bob.user_id},
        "alice": {"user_id": alice.user_id},
        "both": {"user_id": bob.user_id, "group_id": uuid.uuid4()},
        "none": {},
    }

    response = share(client, alice, path, **recipients[recipient])

    assert response.status_code == status
    assert fault in response.json()["detail"]


@ON_SHARED_LEVELS
def test_share_twice_is_409(client: httpx.Client, cast: Cast) -> None:
    alice, bob = cast.acme_member, cast.acme_admin
    put_file(client, alice, "docs/plan.txt", b"the plan")
    shared(client, alice, "docs", bob)

    again = share(client, alice, "docs", "write", user_id=bob.user_id)

    assert again.status_code == 409
    assert "shared with this recipient already" in again.json()["detail"]
    assert len(client.get(alice.url("shares"), headers=alice.headers).json()["items"]) == 1


def test_share_ids_of_other_tenant_are_404(client: httpx.Client, cast: Cast) -> None:
    alice, bob = cast.acme_member, cast.acme_admin
    put_file(client, alice, "docs/plan.txt", b"the plan")
    share_id = shared(client, alice, "docs", bob, "write")["id"]
    intruder = cast.globex_admin

    replies = [
        client.get(via(intruder, share_id, "files/plan.txt"), headers=intruder.headers),
        client.put(via(intruder, share_id, "files/x.txt"), content=b"x", headers=intruder.headers),
        client.get(intruder.url(f"shares/{share_id}"), headers=intruder.headers),
        client.delete(intruder.url(f"shares/{share_id}"), headers=intruder.headers),
    ]

    assert [reply.status_code for reply in replies] == [404, 404, 404, 404]
    assert client.get(via(bob, share_id, "files/plan.txt"), headers=bob.headers).status_code == 200


@ON_SHARED_LEVELS
def test_share_of_disabled_owner_stops(
    client: httpx.Client, runtime: Runtime, cast: Cast, carol: Member
) -> None:
    alice = cast.acme_member
    put_file(client, alice, "team/plan.txt", b"the plan")
    share_id = shared(client, alice, "team", carol, "write")["id"]

    with runtime.stores.session(cast.acme, write=True) as session:
        session.execute(update(UserRow).where(UserRow.id == alice.user_id).values(status="disabled"))
    read = client.get(via(carol, share_id, "files/plan.txt"), headers=carol.headers)
    written = client.put(
        via(carol, share_id, "files/new.txt"), headers=carol.headers, content=b"into a closed drive"
    )
    listed = shared_with(client, carol)

    assert read.status_code == 404
    assert written.status_code == 404
    assert listed == []


@ON_SHARED_LEVELS
def test_share_refuses_old_version_request(
    client: httpx.Client, cast: Cast, carol: Member
) -> None:
    alice = cast.acme_member
    put_file(client, alice, "team/plan.txt", b"first")
    put_file(client, alice, "team/plan.txt", b"second")
    share_id = shared(client, alice, "team", carol)["id"]

    old = client.get(via(carol, share_id, "files/plan.txt?version=1"), headers=carol.headers)

    assert old.status_code == 400
    assert "ask its owner" in old.json()["detail"]
