"""The trash expiry: what it purges after the tenant's retention, and what it leaves."""

from __future__ import annotations

import datetime as dt
import uuid

from strongroom.drive import files, transfers, trash
from strongroom.drive.files import Preconditions
from strongroom.drive.paths import split_path
from strongroom.runtime import Runtime
from strongroom.tenancy.configuration import update_settings
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.events import OPERATOR
from strongroom.tenancy.models import utcnow
from strongroom.tenancy.usage import get_usage
from tests.conftest import Cast, drive_owner


def store(runtime: Runtime, tenant: TenantInfo, path: str, body: bytes) -> None:
    names = split_path(path)
    owner = drive_owner(runtime, tenant)
    upload = transfers.begin_upload(runtime, tenant, owner, names, Preconditions(), len(body))
    upload.feed(body)
    transfers.commit_upload(runtime, tenant, owner, names, upload, owner, Preconditions())


def trash_file(runtime: Runtime, tenant: TenantInfo, path: str) -> None:
    owner = drive_owner(runtime, tenant)
    with runtime.stores.session(tenant, write=True) as session:
        trash.trash_node(session, owner, split_path(path), owner, "file")


def trashed_names(runtime: Runtime, tenant: TenantInfo) -> list[str]:
    owner = drive_owner(runtime, tenant)
    with runtime.stores.session(tenant) as session:
        return sorted(node.name for node in trash.list_trash(session, owner))


def test_expiry_purges_after_retention(runtime: Runtime, cast: Cast) -> None:
    tenant = update_settings(
        runtime.catalog, runtime.stores, "acme", {"trash_retention_days": 7}, OPERATOR
    )
    store(runtime, tenant, "old.txt", b"old content")
    store(runtime, tenant, "kept.txt", b"kept")
    trash_file(runtime, tenant, "old.txt")
    trash_file(runtime, tenant, "kept.txt")
    owner = drive_owner(runtime, tenant)
    old_id = _trashed_id(runtime, tenant, "old.txt")
    with runtime.stores.session(tenant, write=True) as session:
        node = files.access_node_by_id(session, owner, old_id)
        node.deleted_at = utcnow() - dt.timedelta(days=8)

    purged = transfers.expire_trash(runtime, tenant)

    assert purged.nodes == 1
    assert purged.bytes == len(b"old content")
    assert trashed_names(runtime, tenant) == ["kept.txt"]
    with runtime.stores.session(tenant) as session:
        assert get_usage(session) == len(b"kept")


def test_expiry_counts_from_now_given(runtime: Runtime, cast: Cast) -> None:
    tenant = update_settings(
        runtime.catalog, runtime.stores, "acme", {"trash_retention_days": 30}, OPERATOR
    )
    store(runtime, tenant, "a.txt", b"a")
    trash_file(runtime, tenant, "a.txt")

    early = transfers.expire_trash(runtime, tenant, now=utcnow() + dt.timedelta(days=29))
    late = transfers.expire_trash(runtime, tenant, now=utcnow() + dt.timedelta(days=31))

    assert early.nodes == 0
    assert late.nodes == 1
    assert trashed_names(runtime, tenant) == []


def test_expiry_with_zero_retention_keeps_trash(runtime: Runtime, cast: Cast) -> None:
    tenant = update_settings(
        runtime.catalog, runtime.stores, "acme", {"trash_retention_days": 0}, OPERATOR
    )
    store(runtime, tenant, "a.txt", b"a")
    trash_file(runtime, tenant, "a.txt")

    purged = transfers.expire_trash(runtime, tenant, now=utcnow() + dt.timedelta(days=10_000))

    assert purged.nodes == 0
    assert trashed_names(runtime, tenant) == ["a.txt"]


def test_expiry_leaves_other_tenant(runtime: Runtime, cast: Cast) -> None:
    acme = update_settings(
        runtime.catalog, runtime.stores, "acme", {"trash_retention_days": 1}, OPERATOR
    )
    store(runtime, cast.globex, "g.txt", b"g")
    trash_file(runtime, cast.globex, "g.txt")

    purged = transfers.expire_trash(runtime, acme, now=utcnow() + dt.timedelta(days=5))

    assert purged.nodes == 0
    assert trashed_names(runtime, cast.globex) == ["g.txt"]


def _trashed_id(runtime: Runtime, tenant: TenantInfo, name: str) -> uuid.UUID:
    owner = drive_owner(runtime, tenant)
    with runtime.stores.session(tenant) as session:
        return next(node.id for node in trash.list_trash(session, owner) if node.name == name)
