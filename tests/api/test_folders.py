"""Folders through the API: create, list, trash, move and rename, and look-up by id."""

from __future__ import annotations

import concurrent.futures
import uuid

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from strongroom.drive import files as drive_files
from strongroom.drive import listing
from strongroom.drive.models import NodeRow
from strongroom.interfaces.api import folders
from strongroom.interfaces.api.middleware import RequestContextMiddleware
from strongroom.interfaces.api.problems import install_problem_handlers
from strongroom.runtime import Runtime
from tests.conftest import Cast, LiveServer, Member


def put_file(client: httpx.Client, member: Member, path: str, body: bytes = b"content") -> dict:
    response = client.put(member.url(f"files/{path}"), content=body, headers=member.headers)
    assert response.status_code in (200, 201)
    return response.json()


def get_file(client: httpx.Client, member: Member, path: str) -> httpx.Response:
    return client.get(member.url(f"files/{path}"), headers=member.headers)


def names_in(client: httpx.Client, member: Member, path: str = "") -> list[str]:
    response = client.get(member.url(f"folders/{path}"), headers=member.headers)
    assert response.status_code == 200
    return [item["name"] for item in response.json()["items"]]


def move(
    client: httpx.Client, member: Member, source: str, destination: str, overwrite: bool = False
) -> httpx.Response:
    return client.post(
        member.url("move"),
        json={"from": source, "to": destination, "overwrite": overwrite},
        headers=member.headers,
    )


# Making folders ---------------------------------------------------------------------------


def test_make_folder_returns_201(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member

    response = client.post(alice.url("folders/docs"), headers=alice.headers)

    assert response.status_code == 201
    created = response.json()
    assert created["path"] == "docs"
    assert created["name"] == "docs"
    assert created["type"] == "folder"
    assert created["size"] is None
    assert created["version"] is None


def test_make_folder_creates_parents(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member

    response = client.post(alice.url("folders/a/b/c"), headers=alice.headers)

    assert response.status_code == 201
    assert names_in(client, alice) == ["a"]
    assert names_in(client, alice, "a") == ["b"]
    assert names_in(client, alice, "a/b") == ["c"]
    assert names_in(client, alice, "a/b/c") == []


def test_make_folder_existing_is_409(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    client.post(alice.url("folders/docs"), headers=alice.headers)

    response = client.post(alice.url("folders/docs"), headers=alice.headers)

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert "'docs' already exists as a folder" in response.json()["detail"]


def test_make_folder_over_file_is_409(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    put_file(client, alice, "notes.txt")

    response = client.post(alice.url("folders/notes.txt"), headers=alice.headers)

    assert response.status_code == 409
    assert "already exists as a file" in response.json()["detail"]


def test_make_folder_below_file_is_409(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    put_file(client, alice, "notes.txt")

    response = client.post(alice.url("folders/notes.txt/inner"), headers=alice.headers)

    assert response.status_code == 409
    assert "'notes.txt' is a file" in response.json()["detail"]


def test_make_folder_root_is_409(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member

    response = client.post(alice.url("folders/"), headers=alice.headers)

    assert response.status_code == 409
    assert "root folder" in response.json()["detail"]


# Listing ----------------------------------------------------------------------------------


def test_list_root_has_empty_path(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    put_file(client, alice, "top.txt")

    response = client.get(alice.url("folders/"), headers=alice.headers)

    assert response.status_code == 200
    assert response.json()["path"] == ""
    assert [item["path"] for item in response.json()["items"]] == ["top.txt"]


def test_list_new_tenant_root_is_empty(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member

    response = client.get(alice.url("folders/"), headers=alice.headers)

    assert response.status_code == 200
    assert response.json()["items"] == []


def test_list_file_item_fields(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    created = put_file(client, alice, "docs/plan.txt", b"twelve bytes")

    items = client.get(alice.url("folders/docs"), headers=alice.headers).json()["items"]

    assert len(items) == 1
    item = items[0]
    assert item["id"] == created["id"]
    assert item["name"] == "plan.txt"
    assert item["path"] == "docs/plan.txt"
    assert item["type"] == "file"
    assert item["size"] == 12
    assert item["version"] == 1
    assert item["modified"] == created["modified"]


def test_list_folder_item_fields(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    created = client.post(alice.url("folders/docs/drafts"), headers=alice.headers).json()

    items = client.get(alice.url("folders/docs"), headers=alice.headers).json()["items"]

    assert len(items) == 1
    item = items[0]
    assert item["id"] == created["id"]
    assert item["name"] == "drafts"
    assert item["type"] == "folder"
    assert item["size"] is None
    assert item["version"] is None
    assert item["modified"] == created["modified"]


def test_list_items_match_node_model(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    uploaded = put_file(client, alice, "docs/résumé ✓.txt", b"written by hand")
    client.post(alice.url("folders/docs/drafts"), headers=alice.headers)

    items = client.get(alice.url("folders/docs"), headers=alice.headers).json()["items"]

    assert [item["name"] for item in items] == ["drafts", "résumé ✓.txt"]
    for item in items:
        node = client.get(alice.url(f"nodes/{item['id']}"), headers=alice.headers).json()
        # The listing is written by hand for speed, so it must read exactly as the model writes it.
        assert item == node, item["name"]
    assert items[1]["sha256"] == uploaded["sha256"]
    assert items[0]["sha256"] is None


def test_list_without_hot_paths_is_identical(
    client: httpx.Client, runtime: Runtime, cast: Cast
) -> None:
    alice = cast.acme_member
    put_file(client, alice, "docs/a.txt", b"a")
    put_file(client, alice, "docs/b/c.txt", b"c")
    plain = FastAPI()
    plain.state.runtime = runtime
    install_problem_handlers(plain)
    plain.include_router(folders.router)
    plain.add_middleware(RequestContextMiddleware, runtime=runtime)

    server = LiveServer(runtime, plain)
    server.start()

    served = client.get(alice.url("folders/docs"), headers=alice.headers)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as direct:
            answered = direct.get(alice.url("folders/docs"), headers=alice.headers)
            missing = direct.get(alice.url("folders/nowhere"), headers=alice.headers)
    finally:
        server.stop()

    assert answered.status_code == served.status_code == 200
    assert answered.content == served.content
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


def test_list_deep_folder_beyond_join(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    deep = "/".join(f"level-{number}" for number in range(listing.MAX_JOINED_DEPTH + 4))
    put_file(client, alice, f"{deep}/bottom.txt", b"deep down")
    client.post(alice.url(f"folders/{deep}/inner"), headers=alice.headers)

    found = client.get(alice.url(f"folders/{deep}"), headers=alice.headers)
    as_folder = client.get(alice.url(f"folders/{deep}/bottom.txt"), headers=alice.headers)
    missing = client.get(alice.url(f"folders/{deep}/absent"), headers=alice.headers)

    assert found.status_code == 200
    assert [item["name"] for item in found.json()["items"]] == ["inner", "bottom.txt"]
    assert found.json()["items"][1]["path"] == f"{deep}/bottom.txt"
    assert as_folder.status_code == 409
    assert missing.status_code == 404


def test_list_below_trashed_folder_is_404(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    put_file(client, alice, "old/inner/file.txt")
    client.delete(alice.url("folders/old"), headers=alice.headers)

    response = client.get(alice.url("folders/old/inner"), headers=alice.headers)

    assert response.status_code == 404


def test_list_sees_each_upload_at_once(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member

    for number in range(8):
        put_file(client, alice, f"fresh/file-{number}.txt")

        # A listing read on a long-lived connection must not see an older snapshot.
        assert f"file-{number}.txt" in names_in(client, alice, "fresh")


def test_listing_cache_keeps_users_apart(client: httpx.Client, cast: Cast) -> None:
    # On SQLite the listings of all four users are kept by one reader per file
    # (shared level) or per tenant: each must still get the one of its own drive.
    members = [cast.acme_admin, cast.acme_member, cast.globex_admin, cast.globex_member]
    for member in members:
        put_file(client, member, f"docs/{member.tenant.slug}-{member.role}.txt")

    for _round in range(3):
        for member in members:
            assert names_in(client, member, "docs") == [f"{member.tenant.slug}-{member.role}.txt"]

    put_file(client, cast.acme_member, "docs/added.txt")

    assert names_in(client, cast.acme_member, "docs") == ["acme-member.txt", "added.txt"]
    assert names_in(client, cast.globex_member, "docs") == ["globex-member.txt"]


def test_list_shows_only_direct_children(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    put_file(client, alice, "docs/a.txt")
    put_file(client, alice, "docs/sub/b.txt")
    put_file(client, alice, "other/c.txt")

    assert sorted(names_in(client, alice, "docs")) == ["a.txt", "sub"]


def test_list_file_path_is_409(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    put_file(client, alice, "notes.txt")

    response = client.get(alice.url("folders/notes.txt"), headers=alice.headers)

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert "'notes.txt' is a file, not a folder" in response.json()["detail"]


def test_list_missing_folder_is_404(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member

    response = client.get(alice.url("folders/nowhere"), headers=alice.headers)

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert "'nowhere'" in response.json()["detail"]


def test_list_other_tenant_folder_is_404(client: httpx.Client, cast: Cast) -> None:
    put_file(client, cast.acme_member, "secret/plan.txt")
    bob = cast.globex_member

    response = client.get(bob.url("folders/secret"), headers=bob.headers)

    assert response.status_code == 404


# Trashing folders -------------------------------------------------------------------------


def test_delete_folder_moves_to_trash(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    put_file(client, alice, "docs/plan.txt")

    response = client.delete(alice.url("folders/docs"), headers=alice.headers)

    assert response.status_code == 200
    assert response.json()["type"] == "folder"
    trash = client.get(alice.url("trash"), headers=alice.headers).json()["items"]
    assert [(item["name"], item["original_path"]) for item in trash] == [("docs", "docs")]


def test_delete_folder_hides_contents(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    put_file(client, alice, "docs/plan.txt")
    put_file(client, alice, "docs/sub/deep.txt")

    client.delete(alice.url("folders/docs"), headers=alice.headers)

    assert names_in(client, alice) == []
    assert client.get(alice.url("folders/docs"), headers=alice.headers).status_code == 404
    assert client.get(alice.url("folders/docs/sub"), headers=alice.headers).status_code == 404
    assert get_file(client, alice, "docs/plan.txt").status_code == 404
    assert get_file(client, alice, "docs/sub/deep.txt").status_code == 404


def test_delete_folder_frees_its_name(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    put_file(client, alice, "docs/plan.txt")
    client.delete(alice.url("folders/docs"), headers=alice.headers)

    response = client.post(alice.url("folders/docs"), headers=alice.headers)

    assert response.status_code == 201
    assert names_in(client, alice, "docs") == []


def test_delete_folder_on_file_is_409(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    put_file(client, alice, "notes.txt")

    response = client.delete(alice.url("folders/notes.txt"), headers=alice.headers)

    assert response.status_code == 409
    assert names_in(client, alice) == ["notes.txt"]


def test_delete_folder_missing_is_404(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member

    response = client.delete(alice.url("folders/nowhere"), headers=alice.headers)

    assert response.status_code == 404


def test_delete_root_folder_is_400(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member

    response = client.delete(alice.url("folders/"), headers=alice.headers)

    assert response.status_code == 400
    assert "root folder" in response.json()["detail"]


# Moves and renames ------------------------------------------------------------------------


def test_move_renames_file_in_place(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    created = put_file(client, alice, "docs/draft.txt", b"the text")

    response = move(client, alice, "docs/draft.txt", "docs/final.txt")

    assert response.status_code == 200
    assert response.json()["id"] == created["id"]
    assert response.json()["path"] == "docs/final.txt"
    assert names_in(client, alice, "docs") == ["final.txt"]
    assert get_file(client, alice, "docs/final.txt").content == b"the text"


def test_move_keeps_file_versions(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    put_file(client, alice, "draft.txt", b"one")
    put_file(client, alice, "draft.txt", b"two")

    move(client, alice, "draft.txt", "final.txt")

    versions = client.get(alice.url("versions/final.txt"), headers=alice.headers).json()["items"]
    assert [version["number"] for version in versions] == [1, 2]


def test_move_renames_folder_with_contents(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    put_file(client, alice, "old/sub/deep.txt", b"deep")

    response = move(client, alice, "old", "new")

    assert response.status_code == 200
    assert response.json()["type"] == "folder"
    assert names_in(client, alice) == ["new"]
    assert get_file(client, alice, "new/sub/deep.txt").content == b"deep"
    assert get_file(client, alice, "old/sub/deep.txt").status_code == 404


def test_move_creates_new_parent(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    put_file(client, alice, "inbox/report.pdf", b"pdf")

    response = move(client, alice, "inbox/report.pdf", "archive/2026/report.pdf")

    assert response.status_code == 200
    assert response.json()["path"] == "archive/2026/report.pdf"
    assert names_in(client, alice, "archive") == ["2026"]
    assert names_in(client, alice, "inbox") == []
    assert get_file(client, alice, "archive/2026/report.pdf").content == b"pdf"


def test_move_folder_into_another(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    put_file(client, alice, "projects/apollo/plan.txt")
    client.post(alice.url("folders/archive"), headers=alice.headers)

    response = move(client, alice, "projects/apollo", "archive/apollo")

    assert response.status_code == 200
    assert names_in(client, alice, "projects") == []
    assert names_in(client, alice, "archive/apollo") == ["plan.txt"]


@pytest.mark.parametrize("destination", ["docs/inner", "docs/a/b/docs"])
def test_move_folder_into_itself_is_409(client: httpx.Client, cast: Cast, destination: str) -> None:
    alice = cast.acme_member
    put_file(client, alice, "docs/plan.txt")

    response = move(client, alice, "docs", destination)

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert "inside itself" in response.json()["detail"]
    assert names_in(client, alice) == ["docs"]
    assert names_in(client, alice, "docs") == ["plan.txt"]


def test_move_to_similar_prefix_allowed(client: httpx.Client, cast: Cast) -> None:
    # 'docs-old' starts with the characters of 'docs' but is not inside it.
    alice = cast.acme_member
    put_file(client, alice, "docs/plan.txt")

    response = move(client, alice, "docs", "docs-old")

    assert response.status_code == 200
    assert names_in(client, alice) == ["docs-old"]


def test_move_onto_existing_is_409(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    put_file(client, alice, "a.txt", b"aaa")
    put_file(client, alice, "b.txt", b"bbb")

    response = move(client, alice, "a.txt", "b.txt")

    assert response.status_code == 409
    assert "'b.txt' already exists" in response.json()["detail"]
    assert get_file(client, alice, "a.txt").content == b"aaa"
    assert get_file(client, alice, "b.txt").content == b"bbb"


def test_move_overwrite_replaces_target(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    moved = put_file(client, alice, "a.txt", b"new content")
    put_file(client, alice, "b.txt", b"old content")

    response = move(client, alice, "a.txt", "b.txt", overwrite=True)

    assert response.status_code == 200
    assert response.json()["id"] == moved["id"]
    served = get_file(client, alice, "b.txt")
    assert served.content == b"new content"
    assert served.headers["etag"] == moved["etag"]
    assert names_in(client, alice) == ["b.txt"]


def test_move_overwrite_trashes_old_target(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    put_file(client, alice, "a.txt", b"new content")
    replaced = put_file(client, alice, "b.txt", b"old content")

    move(client, alice, "a.txt", "b.txt", overwrite=True)

    trash = client.get(alice.url("trash"), headers=alice.headers).json()["items"]
    assert [(item["id"], item["original_path"]) for item in trash] == [(replaced["id"], "b.txt")]


def test_move_overwrite_folder_onto_file_is_409(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    put_file(client, alice, "docs/plan.txt")
    put_file(client, alice, "target", b"a file")

    response = move(client, alice, "docs", "target", overwrite=True)

    assert response.status_code == 409
    assert "'target' is a file, not a folder" in response.json()["detail"]
    assert get_file(client, alice, "target").content == b"a file"


def test_move_missing_source_is_404(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member

    response = move(client, alice, "ghost.txt", "real.txt")

    assert response.status_code == 404
    assert "'ghost.txt'" in response.json()["detail"]


def test_move_root_is_400(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member

    response = move(client, alice, "", "elsewhere")

    assert response.status_code == 400
    assert "root folder" in response.json()["detail"]


def test_move_without_destination_is_400(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    put_file(client, alice, "a.txt")

    response = client.post(alice.url("move"), json={"from": "a.txt"}, headers=alice.headers)

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert "to" in response.json()["detail"]


def test_move_other_tenant_file_is_404(client: httpx.Client, cast: Cast) -> None:
    put_file(client, cast.acme_member, "plan.txt", b"acme's plan")
    bob = cast.globex_member

    response = move(client, bob, "plan.txt", "stolen.txt")

    assert response.status_code == 404
    assert get_file(client, cast.acme_member, "plan.txt").content == b"acme's plan"


# Nodes by id ------------------------------------------------------------------------------


def test_get_node_file_has_path(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    created = put_file(client, alice, "docs/2026/plan.txt", b"plan")

    response = client.get(alice.url(f"nodes/{created['id']}"), headers=alice.headers)

    assert response.status_code == 200
    node = response.json()
    assert node["id"] == created["id"]
    assert node["path"] == "docs/2026/plan.txt"
    assert node["name"] == "plan.txt"
    assert node["type"] == "file"
    assert node["size"] == 4
    assert node["etag"] == created["etag"]


def test_get_node_folder_has_path(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    created = client.post(alice.url("folders/docs/2026"), headers=alice.headers).json()

    response = client.get(alice.url(f"nodes/{created['id']}"), headers=alice.headers)

    assert response.status_code == 200
    assert response.json()["path"] == "docs/2026"
    assert response.json()["type"] == "folder"


def test_get_node_follows_move(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    created = put_file(client, alice, "inbox/plan.txt")
    move(client, alice, "inbox", "archive/inbox")

    response = client.get(alice.url(f"nodes/{created['id']}"), headers=alice.headers)

    assert response.json()["path"] == "archive/inbox/plan.txt"


@pytest.mark.parametrize("node_id", [str(uuid.uuid4()), "not-a-uuid"], ids=["unknown", "malformed"])
def test_get_node_bad_id_is_404(client: httpx.Client, cast: Cast, node_id: str) -> None:
    alice = cast.acme_member

    response = client.get(alice.url(f"nodes/{node_id}"), headers=alice.headers)

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert node_id in response.json()["detail"]


def test_get_node_other_tenant_is_404(client: httpx.Client, cast: Cast) -> None:
    created = put_file(client, cast.acme_member, "plan.txt")
    bob = cast.globex_member

    response = client.get(bob.url(f"nodes/{created['id']}"), headers=bob.headers)

    assert response.status_code == 404


def test_concurrent_crossed_moves_make_no_loop(
    client: httpx.Client, cast: Cast, runtime: Runtime
) -> None:
    alice = cast.acme_member
    url = str(client.base_url.join(alice.url("move")))

    def send(source: str, destination: str) -> int:
        body = {"from": source, "to": destination}
        return httpx.post(url, json=body, headers=alice.headers, timeout=30).status_code

    for round_number in range(5):
        a, b = f"a{round_number}", f"b{round_number}"
        client.post(alice.url(f"folders/{a}"), headers=alice.headers)
        client.post(alice.url(f"folders/{b}"), headers=alice.headers)
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            first = pool.submit(send, a, f"{b}/{a}")
            second = pool.submit(send, b, f"{a}/{b}")
            statuses = sorted([first.result(), second.result()])

        assert 500 not in statuses
        with runtime.stores.session(cast.acme) as session:
            for node in session.scalars(select(NodeRow)):
                # Raises IntegrityError when the parent chain loops.
                drive_files.ancestors(session, node)


def test_concurrent_make_same_folder_is_never_500(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    url = str(client.base_url.join(alice.url("folders/same/x")))

    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(
            pool.map(lambda _: httpx.post(url, headers=alice.headers).status_code, range(6))
        )

    assert statuses.count(201) == 1
    assert set(statuses) <= {201, 409}


def test_make_folder_below_file_names_target(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    put_file(client, alice, "cl/less.txt")

    response = client.post(alice.url("folders/cl/less.txt/sub"), headers=alice.headers)

    assert response.status_code == 409
    assert "cannot contain 'cl/less.txt/sub'" in response.json()["detail"]


def test_move_overwrite_must_be_boolean(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    put_file(client, alice, "s.txt")

    response = move(client, alice, "s.txt", "t.txt", overwrite="yes")  # type: ignore[arg-type]

    assert response.status_code == 400
    assert "overwrite" in response.json()["detail"]


def test_node_by_id_reports_trashed(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    created = put_file(client, alice, "bin/old.txt")
    client.delete(alice.url("folders/bin"), headers=alice.headers)

    response = client.get(alice.url(f"nodes/{created['id']}"), headers=alice.headers)

    assert response.status_code == 200
    assert response.json()["trashed"] is True
