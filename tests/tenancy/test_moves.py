"""Moving a tenant between isolation levels online: complete, verified, and undone on failure."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import inspect, text

from strongroom.runtime import Runtime
from strongroom.tenancy.context import ACTIVE
from strongroom.tenancy.isolation import DATABASE, SCHEMA, SHARED
from strongroom.tenancy.moves import STEPS, MoveFailed, move_tenant
from tests.conftest import Cast, Level, Member

LEVELS_BY_BACKEND = {"sqlite": (SHARED, DATABASE), "postgres": (SHARED, SCHEMA, DATABASE)}

FILES = {
    "readme.txt": b"top level",
    "docs/plan.txt": b"the plan, first draft",
    "docs/deep/er/notes.md": b"# notes\n" * 50,
    "empty.bin": b"",
    "photos/cat.jpg": bytes(range(256)) * 40,
}


def put(client: httpx.Client, member: Member, path: str, body: bytes) -> httpx.Response:
    return client.put(member.url(f"files/{path}"), content=body, headers=member.headers)


def fill(client: httpx.Client, member: Member) -> None:
    for path, body in FILES.items():
        assert put(client, member, path, body).status_code in (200, 201)
    # A second version and a file in the trash are rows too.
    assert put(client, member, "docs/plan.txt", b"the plan, final").status_code == 200
    assert put(client, member, "old.txt", b"to be trashed").status_code == 201
    assert client.delete(member.url("files/old.txt"), headers=member.headers).status_code == 200


def share_docs(client: httpx.Client, cast: Cast) -> str:
    """Share Alice's docs with a group of acme's admin; return the share's id."""
    admin, alice = cast.acme_admin, cast.acme_member
    group = client.post(admin.url("groups"), json={"name": "team"}, headers=admin.headers).json()
    client.put(admin.url(f"groups/{group['id']}/members/{admin.user_id}"), headers=admin.headers)
    created = client.post(
        alice.url("shares"), json={"path": "docs", "group_id": group["id"]}, headers=alice.headers
    )
    assert created.status_code == 201, created.text
    return created.json()["id"]


def tree(client: httpx.Client, member: Member, folder: str = "") -> dict[str, bytes]:
    """Every live file of the tenant with its content, read through the API."""
    found: dict[str, bytes] = {}
    listing = client.get(member.url(f"folders/{folder}"), headers=member.headers)
    assert listing.status_code == 200, listing.text
    for item in listing.json()["items"]:
        if item["type"] == "folder":
            found.update(tree(client, member, item["path"]))
        else:
            response = client.get(member.url(f"files/{item['path']}"), headers=member.headers)
            assert response.status_code == 200, item["path"]
            found[item["path"]] = response.content
    return found


def expected_tree() -> dict[str, bytes]:
    return {**FILES, "docs/plan.txt": b"the plan, final"}


def other_levels(level: Level) -> list[str]:
    return [other for other in LEVELS_BY_BACKEND[level.backend] if other != level.isolation]


def store_exists(runtime: Runtime, isolation: str, placement: str, tenant_id: object) -> bool:
    """Tell whether a store at the given placement still contains any of the tenant's rows."""
    if isolation == SCHEMA:
        with runtime.engine.connect() as connection:
            found = connection.execute(
                text("SELECT 1 FROM pg_namespace WHERE nspname = :name"), {"name": placement}
            ).first()
        return found is not None
    if isolation == DATABASE and runtime.stores.embedded:
        return (runtime.settings.data_dir / placement).exists()
    if isolation == DATABASE:
        with runtime.engine.connect() as connection:
            found = connection.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": placement}
            ).first()
        return found is not None
    with runtime.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT count(*) FROM nodes WHERE tenant_id = :tenant"),
            {"tenant": tenant_id.hex if runtime.stores.embedded else str(tenant_id)},
        ).scalar_one()
    return rows > 0


def test_move_to_every_level_and_back(
    runtime: Runtime, client: httpx.Client, cast: Cast, level: Level
) -> None:
    alice, admin = cast.acme_member, cast.acme_admin
    fill(client, alice)
    share_id = share_docs(client, cast)
    start = runtime.catalog.get_tenant("acme")

    for destination in [*other_levels(level), level.isolation]:
        before = runtime.catalog.get_tenant("acme")
        report = move_tenant(runtime.catalog, runtime.stores, "acme", destination)
        after = runtime.catalog.get_tenant("acme")

        assert after.isolation == destination
        assert after.status == ACTIVE
        assert report.source.isolation == before.isolation
        assert tree(client, alice) == expected_tree(), destination
        assert not store_exists(runtime, before.isolation, before.placement, start.id), before
        copied = {check.table: check.rows for check in report.tables}
        for table in ("nodes", "versions", "blobs", "users", "groups", "group_members", "shares"):
            assert copied.get(table, 0) > 0, (destination, table)
        through_share = client.get(
            admin.url(f"shares/{share_id}/files/plan.txt"), headers=admin.headers
        )
        assert through_share.content == b"the plan, final", destination
    assert put(client, alice, "after.txt", b"written after the moves").status_code == 201


def test_move_leaves_other_tenant_alone(
    runtime: Runtime, client: httpx.Client, cast: Cast, level: Level
) -> None:
    fill(client, cast.globex_member)
    destination = other_levels(level)[0]

    move_tenant(runtime.catalog, runtime.stores, "acme", destination)

    assert runtime.catalog.get_tenant("globex").isolation == level.isolation
    assert tree(client, cast.globex_member) == expected_tree()


def test_move_to_same_level_is_rejected(runtime: Runtime, cast: Cast, level: Level) -> None:
    with pytest.raises(Exception, match="already on the"):
        move_tenant(runtime.catalog, runtime.stores, "acme", level.isolation)


def test_move_of_suspended_tenant_is_rejected(runtime: Runtime, cast: Cast, level: Level) -> None:
    runtime.catalog.set_status("acme", "suspended")

    with pytest.raises(Exception, match="only an active tenant can move"):
        move_tenant(runtime.catalog, runtime.stores, "acme", other_levels(level)[0])

    assert runtime.catalog.get_tenant("acme").status == "suspended"


@pytest.mark.parametrize("failing_step", [step for step in STEPS if step != "cleanup"])
def test_failed_step_leaves_tenant_in_place(
    runtime: Runtime, client: httpx.Client, cast: Cast, level: Level, failing_step: str
) -> None:
    alice = cast.acme_member
    fill(client, alice)
    before = runtime.catalog.get_tenant("acme")
    destination = other_levels(level)[-1]
    target = runtime.stores.plan(before.id, destination)

    def fail_at(step: str) -> None:
        if step == failing_step:
            raise RuntimeError(f"injected failure at {step}")

    with pytest.raises(MoveFailed) as failure:
        move_tenant(runtime.catalog, runtime.stores, "acme", destination, before_step=fail_at)

    after = runtime.catalog.get_tenant("acme")
    assert failure.value.step == failing_step
    assert "stays on the" in failure.value.detail
    assert (after.isolation, after.placement, after.status) == (
        before.isolation,
        before.placement,
        ACTIVE,
    )
    assert tree(client, alice) == expected_tree()
    assert put(client, alice, "still-writable.txt", b"yes").status_code == 201
    assert not store_exists(runtime, target.isolation, target.location, before.id)


def test_failed_cleanup_leaves_tenant_moved(
    runtime: Runtime, client: httpx.Client, cast: Cast, level: Level
) -> None:
    alice = cast.acme_member
    fill(client, alice)
    destination = other_levels(level)[0]

    def fail_at(step: str) -> None:
        if step == "cleanup":
            raise RuntimeError("injected failure at cleanup")

    with pytest.raises(MoveFailed) as failure:
        move_tenant(runtime.catalog, runtime.stores, "acme", destination, before_step=fail_at)

    assert failure.value.step == "cleanup"
    assert "remove it by hand" in failure.value.detail
    assert runtime.catalog.get_tenant("acme").isolation == destination
    assert tree(client, alice) == expected_tree()
    assert put(client, alice, "new-home.txt", b"yes").status_code == 201


def test_writes_wait_while_frozen(
    runtime: Runtime, client: httpx.Client, cast: Cast, level: Level
) -> None:
    alice, bob = cast.acme_member, cast.globex_member
    fill(client, alice)
    during: dict[str, httpx.Response] = {}

    def act_while_frozen(step: str) -> None:
        if step == "sync":
            during["write"] = put(client, alice, "frozen.txt", b"too early")
            during["read"] = client.get(alice.url("files/readme.txt"), headers=alice.headers)
            during["other tenant"] = put(client, bob, "free.txt", b"not affected")

    move_tenant(
        runtime.catalog, runtime.stores, "acme", other_levels(level)[0], before_step=act_while_frozen
    )

    assert during["write"].status_code == 503
    assert during["write"].headers["retry-after"] == "5"
    assert "being moved" in during["write"].json()["detail"]
    assert during["read"].status_code == 200
    assert during["read"].content == FILES["readme.txt"]
    assert during["other tenant"].status_code == 201
    assert put(client, alice, "frozen.txt", b"now").status_code == 201


def test_changes_during_copy_are_carried(
    runtime: Runtime, client: httpx.Client, cast: Cast, level: Level
) -> None:
    alice = cast.acme_member
    fill(client, alice)

    def change_before_freeze(step: str) -> None:
        if step == "freeze":
            assert put(client, alice, "late.txt", b"arrived during the copy").status_code == 201
            assert client.delete(alice.url("files/readme.txt"), headers=alice.headers).status_code == 200
            moved = client.post(
                alice.url("move"), json={"from": "empty.bin", "to": "docs/empty.bin"}, headers=alice.headers
            )
            assert moved.status_code == 200

    report = move_tenant(
        runtime.catalog, runtime.stores, "acme", other_levels(level)[0], before_step=change_before_freeze
    )

    wanted = expected_tree()
    del wanted["readme.txt"]
    wanted["docs/empty.bin"] = wanted.pop("empty.bin")
    wanted["late.txt"] = b"arrived during the copy"
    assert tree(client, alice) == wanted
    assert not report.replaced_wholesale


def test_swapped_names_are_replaced_wholesale(
    runtime: Runtime, client: httpx.Client, cast: Cast, level: Level
) -> None:
    alice = cast.acme_member
    fill(client, alice)

    def swap(source: str, destination: str) -> None:
        moved = client.post(
            alice.url("move"), json={"from": source, "to": destination}, headers=alice.headers
        )
        assert moved.status_code == 200

    def swap_before_freeze(step: str) -> None:
        if step == "freeze":
            swap("readme.txt", "swap.tmp")
            swap("empty.bin", "readme.txt")
            swap("swap.tmp", "empty.bin")

    report = move_tenant(
        runtime.catalog, runtime.stores, "acme", other_levels(level)[0], before_step=swap_before_freeze
    )

    wanted = expected_tree()
    wanted["readme.txt"], wanted["empty.bin"] = wanted["empty.bin"], wanted["readme.txt"]
    assert report.replaced_wholesale
    assert tree(client, alice) == wanted


def test_move_under_steady_traffic(
    runtime: Runtime, client: httpx.Client, cast: Cast, level: Level, tmp_path: Path
) -> None:
    alice = cast.acme_member
    written: dict[str, bytes] = {}
    failures: list[str] = []
    stop = threading.Event()

    def keep_working() -> None:
        number = 0
        with httpx.Client(base_url=str(client.base_url), timeout=30) as own:
            while not stop.is_set():
                path, body = f"steady/file-{number}.txt", f"body {number}".encode() * 20
                response = put(own, alice, path, body)
                if response.status_code == 503:
                    time.sleep(0.05)
                    continue
                if response.status_code != 201:
                    failures.append(f"PUT {path}: {response.status_code} {response.text}")
                    return
                written[path] = body
                number += 1
                check = own.get(alice.url(f"files/{path}"), headers=alice.headers)
                if check.status_code != 200 or check.content != body:
                    failures.append(f"GET {path}: {check.status_code}")
                    return

    worker = threading.Thread(target=keep_working)
    worker.start()
    try:
        for destination in [*other_levels(level), level.isolation]:
            time.sleep(0.2)
            # The settle time lets requests that resolved the tenant before the switch
            # finish on the old store before it goes, as the command's default does.
            move_tenant(runtime.catalog, runtime.stores, "acme", destination, settle_seconds=0.5)
    finally:
        stop.set()
        worker.join(timeout=60)

    assert not failures, failures
    assert len(written) > 0
    stored = tree(client, alice)
    for path, body in written.items():
        assert stored.get(path) == body, path


@pytest.mark.parametrize("level", ["postgres-shared"], indirect=True)
def test_fence_table_has_row_security(runtime: Runtime) -> None:
    with runtime.engine.connect() as connection:
        flags = connection.execute(
            text(
                "SELECT relrowsecurity, relforcerowsecurity FROM pg_class "
                "WHERE relname = 'store_state' AND relnamespace = 'public'::regnamespace"
            )
        ).one()

    assert "store_state" in inspect(runtime.engine).get_table_names()
    assert tuple(flags) == (True, True)
