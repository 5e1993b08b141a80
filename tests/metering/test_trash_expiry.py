"""Trash expiry: what stayed in the trash past the retention period is deleted for good."""

from __future__ import annotations

import datetime as dt

from huey.signals import SIGNAL_COMPLETE

from strongroom.drive import files, transfers, trash
from strongroom.drive.content import blob_key
from strongroom.drive.files import Preconditions
from strongroom.drive.models import FILE
from strongroom.drive.paths import split_path
from strongroom.drive.retention import EXPIRE_TRASH, expire_trash, schedule_trash_expiry
from strongroom.runtime import Runtime
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.usage import get_usage
from tests.conftest import Cast
from tests.metering.conftest import JobWatcher

RETENTION = dt.timedelta(days=30)


def store_file(runtime: Runtime, tenant: TenantInfo, path: str, data: bytes) -> None:
    names = split_path(path)
    upload = transfers.begin_upload(runtime, tenant, names, Preconditions(), len(data))
    upload.feed(data)
    transfers.commit_upload(runtime, tenant, names, upload, None, Preconditions())


def trash_file(runtime: Runtime, tenant: TenantInfo, path: str) -> dt.datetime:
    """Move the file to the trash; return when, as the trash recorded it."""
    with runtime.stores.session(tenant, write=True) as session:
        node = trash.trash_node(session, split_path(path), None, FILE)
        deleted_at = node.deleted_at
    assert deleted_at is not None
    return deleted_at if deleted_at.tzinfo else deleted_at.replace(tzinfo=dt.UTC)


def trashed_names(runtime: Runtime, tenant: TenantInfo) -> list[str]:
    with runtime.stores.session(tenant) as session:
        return sorted(node.name for node in trash.list_trash(session))


def used_bytes(runtime: Runtime, tenant: TenantInfo) -> int:
    with runtime.stores.session(tenant) as session:
        return get_usage(session)


def blob_of(runtime: Runtime, tenant: TenantInfo, path: str) -> str:
    with runtime.stores.session(tenant) as session:
        _version, blob = files.current_content(session, files.access_node(session, split_path(path)))
    return blob_key(tenant.id, blob.id)


def test_expire_trash_purges_expired_item(runtime: Runtime, cast: Cast) -> None:
    store_file(runtime, cast.acme, "old.txt", b"12345")
    key = blob_of(runtime, cast.acme, "old.txt")
    trashed_at = trash_file(runtime, cast.acme, "old.txt")

    purged = expire_trash(runtime, cast.acme, now=trashed_at + RETENTION + dt.timedelta(minutes=1))

    assert purged.nodes == 1
    assert purged.bytes == 5
    assert trashed_names(runtime, cast.acme) == []
    assert used_bytes(runtime, cast.acme) == 0
    assert not runtime.blobs.exists(key)


def test_expire_trash_keeps_item_within_retention(runtime: Runtime, cast: Cast) -> None:
    store_file(runtime, cast.acme, "recent.txt", b"12345")
    trashed_at = trash_file(runtime, cast.acme, "recent.txt")

    purged = expire_trash(runtime, cast.acme, now=trashed_at + RETENTION - dt.timedelta(minutes=1))

    assert purged.nodes == 0
    assert trashed_names(runtime, cast.acme) == ["recent.txt"]
    assert used_bytes(runtime, cast.acme) == 5


def test_expire_trash_keeps_live_files(runtime: Runtime, cast: Cast) -> None:
    store_file(runtime, cast.acme, "live.txt", b"live")
    store_file(runtime, cast.acme, "old.txt", b"old")
    trashed_at = trash_file(runtime, cast.acme, "old.txt")

    expire_trash(runtime, cast.acme, now=trashed_at + 2 * RETENTION)

    with runtime.stores.session(cast.acme) as session:
        assert files.get_node(session, ["live.txt"]) is not None
    assert used_bytes(runtime, cast.acme) == 4


def test_expire_trash_leaves_other_tenant_alone(runtime: Runtime, cast: Cast) -> None:
    store_file(runtime, cast.acme, "a.txt", b"acme")
    store_file(runtime, cast.globex, "g.txt", b"globex")
    trash_file(runtime, cast.acme, "a.txt")
    globex_trashed_at = trash_file(runtime, cast.globex, "g.txt")

    expire_trash(runtime, cast.acme, now=globex_trashed_at + 2 * RETENTION)

    assert trashed_names(runtime, cast.acme) == []
    assert trashed_names(runtime, cast.globex) == ["g.txt"]


def test_trash_expiry_job_runs_per_tenant(runtime: Runtime, cast: Cast, jobs: JobWatcher) -> None:
    store_file(runtime, cast.acme, "fresh.txt", b"fresh")
    trash_file(runtime, cast.acme, "fresh.txt")

    scheduled = schedule_trash_expiry(runtime)
    task = runtime.jobs.enqueue(EXPIRE_TRASH, cast.acme.id)

    assert scheduled == 2
    assert jobs.wait(task) == SIGNAL_COMPLETE
    # Trashed a moment ago, so the job keeps it.
    assert trashed_names(runtime, cast.acme) == ["fresh.txt"]
