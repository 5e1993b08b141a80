"""Earlier versions of a file: download one, restore one, and the versioning module's switch."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import SHARED_LEVELS, Cast, Member

# Versions add nothing per isolation level beyond what the file tests cover there.
SHARED_ONLY = pytest.mark.parametrize("level", SHARED_LEVELS, indirect=True)


def put(client: httpx.Client, member: Member, path: str, body: bytes) -> dict:
    response = client.put(member.url(f"files/{path}"), content=body, headers=member.headers)
    assert response.status_code in (200, 201), response.text
    return response.json()


def versions(client: httpx.Client, member: Member, path: str) -> list[dict]:
    response = client.get(member.url(f"versions/{path}"), headers=member.headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def restore(client: httpx.Client, member: Member, path: str, number: object) -> httpx.Response:
    return client.post(
        member.url(f"versions/{path}"), headers=member.headers, json={"number": number}
    )


@SHARED_ONLY
def test_version_download_by_number(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    put(client, alice, "notes.txt", b"first draft")
    put(client, alice, "notes.txt", b"second draft")

    first = client.get(alice.url("files/notes.txt?version=1"), headers=alice.headers)
    ranged = client.get(
        alice.url("files/notes.txt?version=1"), headers={**alice.headers, "Range": "bytes=0-4"}
    )
    current = client.get(alice.url("files/notes.txt"), headers=alice.headers)
    missing = client.get(alice.url("files/notes.txt?version=9"), headers=alice.headers)
    bad = client.get(alice.url("files/notes.txt?version=first"), headers=alice.headers)

    assert first.content == b"first draft"
    assert ranged.status_code == 206
    assert ranged.content == b"first"
    assert current.content == b"second draft"
    assert missing.status_code == 404
    assert "no version 9" in missing.json()["detail"]
    assert bad.status_code == 400


@SHARED_ONLY
def test_version_restore_adds_newest_version(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    put(client, alice, "plan.txt", b"version one")
    put(client, alice, "plan.txt", b"version two, longer")

    restored = restore(client, alice, "plan.txt", 1)
    history = versions(client, alice, "plan.txt")
    usage = client.get(alice.url("usage"), headers=alice.headers).json()

    assert restored.status_code == 200, restored.text
    assert restored.json()["version"] == 3
    assert [item["number"] for item in history] == [1, 2, 3]
    assert history[0]["sha256"] == history[2]["sha256"]
    assert client.get(alice.url("files/plan.txt"), headers=alice.headers).content == b"version one"
    assert usage["used_bytes"] == 2 * len(b"version one") + len(b"version two, longer")


@SHARED_ONLY
def test_version_restore_rejects_bad_numbers_and_paths(client: httpx.Client, cast: Cast) -> None:
    alice, bob = cast.acme_member, cast.acme_admin
    put(client, alice, "plan.txt", b"only version")
    client.post(alice.url("folders/box"), headers=alice.headers)

    missing = restore(client, alice, "plan.txt", 4)
    zero = restore(client, alice, "plan.txt", 0)
    text = restore(client, alice, "plan.txt", "one")
    folder = restore(client, alice, "box", 1)
    others = restore(client, bob, "plan.txt", 1)

    assert missing.status_code == 404
    assert zero.status_code == 400
    assert text.status_code == 400
    assert folder.status_code in (404, 409)
    assert others.status_code == 404
    assert [item["number"] for item in versions(client, alice, "plan.txt")] == [1]


@SHARED_ONLY
def test_versions_module_off_refuses_old_versions(client: httpx.Client, cast: Cast) -> None:
    alice, admin = cast.acme_member, cast.acme_admin
    put(client, alice, "plan.txt", b"one")
    put(client, alice, "plan.txt", b"two")

    def switch(on: bool) -> None:
        response = client.patch(
            admin.url("modules"), headers=admin.headers, json={"versioning": on}
        )
        assert response.status_code == 200, response.text

    switch(False)
    download = client.get(alice.url("files/plan.txt?version=1"), headers=alice.headers)
    restored = restore(client, alice, "plan.txt", 1)
    switch(True)

    assert download.status_code == 403
    assert restored.status_code == 403
    assert client.get(alice.url("files/plan.txt"), headers=alice.headers).content == b"two"


@SHARED_ONLY
def test_version_numbers_out_of_range_are_400(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    put(client, alice, "plan.txt", b"one")

    download = client.get(
        alice.url("files/plan.txt?version=99999999999999999999"), headers=alice.headers
    )
    restored = restore(client, alice, "plan.txt", 10**30)

    assert download.status_code == 400
    assert restored.status_code == 400


@SHARED_ONLY
def test_version_number_must_be_integer(client: httpx.Client, cast: Cast) -> None:
    alice = cast.acme_member
    put(client, alice, "plan.txt", b"one")
    put(client, alice, "plan.txt", b"two")

    replies = [restore(client, alice, "plan.txt", value) for value in (True, "1", 1.0)]

    for reply in replies:
        assert reply.status_code == 400, reply.text
        assert reply.json()["detail"].startswith("number: Input should be a valid integer")
    assert [item["number"] for item in versions(client, alice, "plan.txt")] == [1, 2]
