"""A drive per user: the file API addresses the caller's own drive, and no one else's.

Two members of one tenant use the same paths and see only their own files,
folders, versions and trash. The quota stays the tenant's, so usage counts
every drive. Drives are kept apart by their owner inside one store, the same
way on every isolation level, so most of these tests run on the shared level
of each backend only.
"""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import SHARED_LEVELS, Cast, Member

ON_SHARED_LEVELS = pytest.mark.parametrize("level", SHARED_LEVELS, indirect=True)


def put_file(client: httpx.Client, member: Member, path: str, body: bytes) -> dict:
    response = client.put(member.url(f"files/{path}"), content=body, headers=member.headers)
    assert response.status_code in (200, 201), response.text
    return response.json()


def listing(client: httpx.Client, member: Member, path: str = "") -> httpx.Response:
    return client.get(member.url(f"folders/{path}"), headers=member.headers)


def test_drive_other_member_file_is_404(client: httpx.Client, cast: Cast) -> None:
    alice, bob = cast.acme_member, cast.acme_admin
    put_file(client, alice, "docs/plan.txt", b"alice's plan")

    response = client.get(bob.url("files/docs/plan.txt"), headers=bob.headers)

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert b"alice's plan" not in response.content


@ON_SHARED_LEVELS
def test_drive_other_member_folder_is_404(client: httpx.Client, cast: Cast) -> None:
    alice, bob = cast.acme_member, cast.acme_admin
    put_file(client, alice, "docs/plan.txt", b"alice's plan")

    response = listing(client, bob, "docs")

    assert response.status_code == 404
    assert "plan.txt" not in response.text


def test_drive_root_lists_own_files_only(client: httpx.Client, cast: Cast) -> None:
    alice, bob = cast.acme_member, cast.acme_admin
    put_file(client, alice, "alice.txt", b"a")
    put_file(client, bob, "bob.txt", b"b")

    alice_root, bob_root = listing(client, alice).json(), listing(client, bob).json()

    assert [item["name"] for item in alice_root["items"]] == ["alice.txt"]
    assert [item["name"] for item in bob_root["items"]] == ["bob.txt"]
    assert alice_root["id"] != bob_root["id"]


@ON_SHARED_LEVELS
def test_drive_same_path_is_two_files(client: httpx.Client, cast: Cast) -> None:
    alice, bob = cast.acme_member, cast.acme_admin
    alices = put_file(client, alice, "notes.txt", b"alice's notes")

    bobs = put_file(client, bob, "notes.txt", b"bob's own notes")

    assert bobs["id"] != alices["id"]
    assert bobs["version"] == 1
    alice_read = client.get(alice.url("files/notes.txt"), headers=alice.headers)
    bob_read = client.get(bob.url("files/notes.txt"), headers=bob.headers)
    assert alice_read.content == b"alice's notes"
    assert bob_read.content == b"bob's own notes"


@ON_SHARED_LEVELS
def test_drive_other_member_versions_is_404(client: httpx.Client, cast: Cast) -> None:
    alice, bob = cast.acme_member, cast.acme_admin
    put_file(client, alice, "plan.txt", b"one")
    put_file(client, alice, "plan.txt", b"two")

    response = client.get(bob.url("versions/plan.txt"), headers=bob.headers)

    assert response.status_code == 404


def test_drive_other_member_node_id_is_404(client: httpx.Client, cast: Cast) -> None:
    alice, bob = cast.acme_member, cast.acme_admin
    created = put_file(client, alice, "plan.txt", b"alice's plan")

    response = client.get(bob.url(f"nodes/{created['id']}"), headers=bob.headers)

    assert response.status_code == 404
    assert "plan.txt" not in response.text


@ON_SHARED_LEVELS
def test_drive_delete_reaches_own_file_only(client: httpx.Client, cast: Cast) -> None:
    alice, bob = cast.acme_member, cast.acme_admin
    put_file(client, alice, "plan.txt", b"alice's plan")

    response = client.delete(bob.url("files/plan.txt"), headers=bob.headers)

    assert response.status_code == 404
    alice_read = client.get(alice.url("files/plan.txt"), headers=alice.headers)
    assert alice_read.content == b"alice's plan"


@ON_SHARED_LEVELS
def test_drive_move_reaches_own_file_only(client: httpx.Client, cast: Cast) -> None:
    alice, bob = cast.acme_member, cast.acme_admin
    put_file(client, alice, "plan.txt", b"alice's plan")

    response = client.post(
        bob.url("move"), json={"from": "plan.txt", "to": "mine.txt"}, headers=bob.headers
    )

    assert response.status_code == 404
    assert [item["name"] for item in listing(client, alice).json()["items"]] == ["plan.txt"]
    assert listing(client, bob).json()["items"] == []


def test_drive_root_before_first_write_is_empty(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member

    first = listing(client, alice)
    second = listing(client, alice)

    assert first.status_code == 200
    assert first.json()["items"] == []
    assert first.json()["path"] == ""
    assert second.json()["id"] == first.json()["id"]


@ON_SHARED_LEVELS
def test_drive_root_keeps_id_after_first_write(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    before = listing(client, alice).json()["id"]

    put_file(client, alice, "plan.txt", b"plan")

    assert listing(client, alice).json()["id"] == before


@ON_SHARED_LEVELS
def test_drive_folder_before_first_write_is_404(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member

    response = listing(client, alice, "docs")

    assert response.status_code == 404
    assert "'docs'" in response.json()["detail"]


@ON_SHARED_LEVELS
def test_drive_usage_counts_every_drive(client: httpx.Client, cast: Cast) -> None:
    alice, bob = cast.acme_member, cast.acme_admin
    put_file(client, alice, "a.bin", b"a" * 300)
    put_file(client, bob, "b.bin", b"b" * 200)

    usage = client.get(alice.url("usage"), headers=alice.headers).json()

    assert usage["used_bytes"] == 500
