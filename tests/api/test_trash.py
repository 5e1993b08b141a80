"""The trash through the API: listing, restore, purge of one item and emptying it."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from strongroom.drive.models import BlobRow, NodeRow, VersionRow
from strongroom.runtime import Runtime
from tests.conftest import Cast, Member


def put_file(client: httpx.Client, member: Member, path: str, body: bytes) -> dict:
    response = client.put(member.url(f"files/{path}"), content=body, headers=member.headers)
    assert response.status_code in (200, 201)
    return response.json()


def get_file(client: httpx.Client, member: Member, path: str) -> httpx.Response:
    return client.get(member.url(f"files/{path}"), headers=member.headers)


def trash_items(client: httpx.Client, member: Member) -> list[dict]:
    response = client.get(member.url("trash"), headers=member.headers)
    assert response.status_code == 200
    return response.json()["items"]


def used_bytes(client: httpx.Client, member: Member) -> int:
    return client.get(member.url("usage"), headers=member.headers).json()["used_bytes"]


def stored_files(runtime: Runtime) -> set[Path]:
    """Every file below the blob store, unfinished uploads included."""
    return {path for path in runtime.settings.resolved_blob_dir.rglob("*") if path.is_file()}


def count_rows(runtime: Runtime, member: Member, model: type) -> int:
    with runtime.stores.session(member.tenant) as session:
        return session.scalar(select(func.count()).select_from(model))


def versions_of(runtime: Runtime, member: Member, node_id: str) -> int:
    with runtime.stores.session(member.tenant) as session:
        return session.scalar(
            select(func.count())
            .select_from(VersionRow)
            .where(VersionRow.node_id == uuid.UUID(node_id))
        )


# Listing ----------------------------------------------------------------------------------


def test_trash_lists_original_path(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    created = put_file(client, alice, "docs/2026/plan.txt", b"plan")

    client.delete(alice.url("files/docs/2026/plan.txt"), headers=alice.headers)

    items = trash_items(client, alice)
    assert len(items) == 1
    assert items[0]["id"] == created["id"]
    assert items[0]["name"] == "plan.txt"
    assert items[0]["type"] == "file"
    assert items[0]["original_path"] == "docs/2026/plan.txt"
    assert items[0]["size"] == 4


def test_trash_lists_deleted_time(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    put_file(client, alice, "plan.txt", b"plan")
    before = dt.datetime.now(dt.UTC)

    client.delete(alice.url("files/plan.txt"), headers=alice.headers)

    after = dt.datetime.now(dt.UTC)
    deleted = dt.datetime.fromisoformat(trash_items(client, alice)[0]["deleted"])
    assert deleted.tzinfo is not None
    assert before - dt.timedelta(seconds=1) <= deleted <= after + dt.timedelta(seconds=1)


def test_trash_lists_newest_first(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    put_file(client, alice, "first.txt", b"1")
    put_file(client, alice, "second.txt", b"2")
    client.delete(alice.url("files/first.txt"), headers=alice.headers)

    client.delete(alice.url("files/second.txt"), headers=alice.headers)

    assert [item["name"] for item in trash_items(client, alice)] == ["second.txt", "first.txt"]


def test_trash_folder_has_null_size(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    put_file(client, alice, "docs/plan.txt", b"plan")

    client.delete(alice.url("folders/docs"), headers=alice.headers)

    items = trash_items(client, alice)
    assert [(item["type"], item["size"]) for item in items] == [("folder", None)]


def test_trash_other_tenant_sees_nothing(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    put_file(client, alice, "plan.txt", b"plan")
    client.delete(alice.url("files/plan.txt"), headers=alice.headers)

    assert trash_items(client, cast.globex_member) == []


# Restore ----------------------------------------------------------------------------------


def test_restore_puts_file_back(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    created = put_file(client, alice, "docs/plan.txt", b"the plan")
    client.delete(alice.url("files/docs/plan.txt"), headers=alice.headers)

    response = client.post(alice.url(f"trash/{created['id']}/restore"), headers=alice.headers)

    assert response.status_code == 200
    assert response.json()["path"] == "docs/plan.txt"
    served = get_file(client, alice, "docs/plan.txt")
    assert served.content == b"the plan"
    assert served.headers["etag"] == created["etag"]
    assert trash_items(client, alice) == []


def test_restore_folder_brings_back_contents(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    put_file(client, alice, "docs/sub/deep.txt", b"deep")
    folder = client.delete(alice.url("folders/docs"), headers=alice.headers).json()

    response = client.post(alice.url(f"trash/{folder['id']}/restore"), headers=alice.headers)

    assert response.status_code == 200
    assert get_file(client, alice, "docs/sub/deep.txt").content == b"deep"


def test_restore_name_taken_is_409(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    old = put_file(client, alice, "plan.txt", b"old plan")
    client.delete(alice.url("files/plan.txt"), headers=alice.headers)
    put_file(client, alice, "plan.txt", b"new plan")

    response = client.post(alice.url(f"trash/{old['id']}/restore"), headers=alice.headers)

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert "'plan.txt' exists again" in response.json()["detail"]
    assert get_file(client, alice, "plan.txt").content == b"new plan"
    assert [item["id"] for item in trash_items(client, alice)] == [old["id"]]


def test_restore_inside_trashed_folder_is_409(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    plan = put_file(client, alice, "docs/plan.txt", b"plan")
    client.delete(alice.url("files/docs/plan.txt"), headers=alice.headers)
    client.delete(alice.url("folders/docs"), headers=alice.headers)

    response = client.post(alice.url(f"trash/{plan['id']}/restore"), headers=alice.headers)

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert "the folder 'docs'" in response.json()["detail"]
    assert "restore it first" in response.json()["detail"]


def test_restore_after_folder_restored(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    plan = put_file(client, alice, "docs/plan.txt", b"plan")
    client.delete(alice.url("files/docs/plan.txt"), headers=alice.headers)
    folder = client.delete(alice.url("folders/docs"), headers=alice.headers).json()
    client.post(alice.url(f"trash/{folder['id']}/restore"), headers=alice.headers)

    response = client.post(alice.url(f"trash/{plan['id']}/restore"), headers=alice.headers)

    assert response.status_code == 200
    assert get_file(client, alice, "docs/plan.txt").content == b"plan"


def test_restore_live_file_is_404(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    live = put_file(client, alice, "plan.txt", b"plan")

    response = client.post(alice.url(f"trash/{live['id']}/restore"), headers=alice.headers)

    assert response.status_code == 404


# Purge ------------------------------------------------------------------------------------


def test_purge_removes_item_from_trash(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    created = put_file(client, alice, "plan.txt", b"plan")
    client.delete(alice.url("files/plan.txt"), headers=alice.headers)

    response = client.delete(alice.url(f"trash/{created['id']}"), headers=alice.headers)

    assert response.status_code == 200
    assert response.json() == {"items_removed": 1, "bytes_freed": 4}
    assert trash_items(client, alice) == []
    restore = client.post(alice.url(f"trash/{created['id']}/restore"), headers=alice.headers)
    assert restore.status_code == 404


def test_purge_removes_all_versions(client: httpx.Client, runtime: Runtime, cast: Cast) -> None:
    alice = cast.acme_member
    created = put_file(client, alice, "plan.txt", b"one")
    put_file(client, alice, "plan.txt", b"two!")
    put_file(client, alice, "plan.txt", b"three")
    client.delete(alice.url("files/plan.txt"), headers=alice.headers)
    assert versions_of(runtime, alice, created["id"]) == 3

    response = client.delete(alice.url(f"trash/{created['id']}"), headers=alice.headers)

    assert response.json()["bytes_freed"] == 3 + 4 + 5
    assert versions_of(runtime, alice, created["id"]) == 0
    assert count_rows(runtime, alice, BlobRow) == 0


def test_purge_frees_usage(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    put_file(client, alice, "keep.txt", b"k" * 100)
    created = put_file(client, alice, "plan.txt", b"a" * 1000)
    put_file(client, alice, "plan.txt", b"b" * 2000)
    client.delete(alice.url("files/plan.txt"), headers=alice.headers)
    assert used_bytes(client, alice) == 3100

    client.delete(alice.url(f"trash/{created['id']}"), headers=alice.headers)

    assert used_bytes(client, alice) == 100


def test_purge_deletes_blob_files(client: httpx.Client, runtime: Runtime, cast: Cast) -> None:
    alice = cast.acme_member
    put_file(client, alice, "keep.txt", b"keep")
    before_upload = stored_files(runtime)
    created = put_file(client, alice, "plan.txt", b"one")
    put_file(client, alice, "plan.txt", b"two")
    blobs_of_plan = stored_files(runtime) - before_upload
    assert len(blobs_of_plan) == 2
    client.delete(alice.url("files/plan.txt"), headers=alice.headers)

    client.delete(alice.url(f"trash/{created['id']}"), headers=alice.headers)

    assert stored_files(runtime) == before_upload
    assert not any(path.exists() for path in blobs_of_plan)


def test_purge_folder_removes_everything_below(
    client: httpx.Client, runtime: Runtime, cast: Cast
) -> None:
    alice = cast.acme_member
    before_upload = stored_files(runtime)
    put_file(client, alice, "docs/a.txt", b"aa")
    put_file(client, alice, "docs/a.txt", b"aaa")
    put_file(client, alice, "docs/sub/b.txt", b"bbbb")
    put_file(client, alice, "docs/sub/deeper/c.txt", b"ccccc")
    client.delete(alice.url("files/docs/sub/b.txt"), headers=alice.headers)
    folder = client.delete(alice.url("folders/docs"), headers=alice.headers).json()

    response = client.delete(alice.url(f"trash/{folder['id']}"), headers=alice.headers)

    # docs, a.txt, sub, b.txt, deeper and c.txt
    assert response.json() == {"items_removed": 6, "bytes_freed": 2 + 3 + 4 + 5}
    assert count_rows(runtime, alice, NodeRow) == 1  # the root folder
    assert count_rows(runtime, alice, VersionRow) == 0
    assert count_rows(runtime, alice, BlobRow) == 0
    assert stored_files(runtime) == before_upload
    assert used_bytes(client, alice) == 0
    assert trash_items(client, alice) == []


def test_purge_live_file_is_404(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    live = put_file(client, alice, "plan.txt", b"plan")

    response = client.delete(alice.url(f"trash/{live['id']}"), headers=alice.headers)

    assert response.status_code == 404
    assert get_file(client, alice, "plan.txt").content == b"plan"


def test_purge_other_tenant_item_is_404(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    created = put_file(client, alice, "plan.txt", b"plan")
    client.delete(alice.url("files/plan.txt"), headers=alice.headers)
    bob = cast.globex_admin

    response = client.delete(bob.url(f"trash/{created['id']}"), headers=bob.headers)

    assert response.status_code == 404
    assert [item["id"] for item in trash_items(client, alice)] == [created["id"]]


# Emptying the trash -----------------------------------------------------------------------


def test_empty_trash_purges_everything(
    client: httpx.Client, runtime: Runtime, cast: Cast
) -> None:
    alice = cast.acme_member
    put_file(client, alice, "keep.txt", b"keep")
    before_upload = stored_files(runtime)
    put_file(client, alice, "a.txt", b"a" * 10)
    put_file(client, alice, "docs/b.txt", b"b" * 20)
    put_file(client, alice, "docs/c.txt", b"c" * 30)
    client.delete(alice.url("files/a.txt"), headers=alice.headers)
    client.delete(alice.url("files/docs/b.txt"), headers=alice.headers)
    client.delete(alice.url("folders/docs"), headers=alice.headers)

    response = client.delete(alice.url("trash"), headers=alice.headers)

    assert response.status_code == 200
    # a.txt, docs, b.txt inside docs and c.txt inside docs
    assert response.json() == {"items_removed": 4, "bytes_freed": 60}
    assert trash_items(client, alice) == []
    assert used_bytes(client, alice) == 4
    assert stored_files(runtime) == before_upload
    assert get_file(client, alice, "keep.txt").content == b"keep"


def test_empty_trash_when_empty(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member

    response = client.delete(alice.url("trash"), headers=alice.headers)

    assert response.status_code == 200
    assert response.json() == {"items_removed": 0, "bytes_freed": 0}


def test_empty_trash_leaves_other_tenant(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    bob = cast.globex_member
    theirs = put_file(client, bob, "theirs.txt", b"globex")
    client.delete(bob.url("files/theirs.txt"), headers=bob.headers)

    client.delete(alice.url("trash"), headers=alice.headers)

    assert [item["id"] for item in trash_items(client, bob)] == [theirs["id"]]
    assert used_bytes(client, bob) == 6


# Ids that name nothing --------------------------------------------------------------------


BAD_IDS = [
    pytest.param(str(uuid.uuid4()), id="unknown"),
    pytest.param("not-a-uuid", id="malformed"),
    pytest.param("12345", id="number"),
]


@pytest.mark.parametrize("item_id", BAD_IDS)
def test_restore_bad_id_is_404_problem(client: httpx.Client, cast: Cast, item_id: str) -> None:
    alice = cast.acme_member

    response = client.post(alice.url(f"trash/{item_id}/restore"), headers=alice.headers)

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert item_id in response.json()["detail"]


@pytest.mark.parametrize("item_id", BAD_IDS)
def test_purge_bad_id_is_404_problem(client: httpx.Client, cast: Cast, item_id: str) -> None:
    alice = cast.acme_member

    response = client.delete(alice.url(f"trash/{item_id}"), headers=alice.headers)

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert item_id in response.json()["detail"]


def test_trash_of_other_user_not_listed(client: httpx.Client, cast: Cast) -> None:
    admin, member = cast.acme_admin, cast.acme_member
    put_file(client, admin, "admins.txt", b"kept")

    client.delete(admin.url("files/admins.txt"), headers=admin.headers)

    assert trash_items(client, member) == []
    assert [item["name"] for item in trash_items(client, admin)] == ["admins.txt"]


def test_purge_other_users_item_is_404(client: httpx.Client, cast: Cast) -> None:
    admin, member = cast.acme_admin, cast.acme_member
    created = put_file(client, member, "members.txt", b"member")
    client.delete(member.url("files/members.txt"), headers=member.headers)

    response = client.delete(admin.url(f"trash/{created['id']}"), headers=admin.headers)

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert [item["id"] for item in trash_items(client, member)] == [created["id"]]


def test_restore_other_users_item_is_404(client: httpx.Client, cast: Cast) -> None:
    admin, member = cast.acme_admin, cast.acme_member
    created = put_file(client, admin, "admins.txt", b"admin")
    client.delete(admin.url("files/admins.txt"), headers=admin.headers)

    response = client.post(member.url(f"trash/{created['id']}/restore"), headers=member.headers)

    assert response.status_code == 404
    assert [item["id"] for item in trash_items(client, admin)] == [created["id"]]


def test_empty_trash_leaves_other_users(client: httpx.Client, cast: Cast) -> None:
    admin, member = cast.acme_admin, cast.acme_member
    put_file(client, admin, "admins.txt", b"admin")
    put_file(client, member, "members.txt", b"member")
    client.delete(admin.url("files/admins.txt"), headers=admin.headers)
    client.delete(member.url("files/members.txt"), headers=member.headers)

    response = client.delete(member.url("trash"), headers=member.headers)

    assert response.status_code == 200
    assert response.json() == {"items_removed": 1, "bytes_freed": len(b"member")}
    assert trash_items(client, member) == []
    assert [item["name"] for item in trash_items(client, admin)] == ["admins.txt"]
