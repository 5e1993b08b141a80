"""Fixtures of the export tests: a job consumer, fast retries, a blob store that fails on demand."""

from __future__ import annotations

import dataclasses
import errno
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from strongroom.drive.content import blob_key, read_range
from strongroom.drive.models import BlobRow
from strongroom.exports import building
from strongroom.runtime import Runtime, all_jobs
from strongroom.storage.blobs import BlobWriter, LocalBlobStore
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.jobs import JobQueue, open_huey
from tests.conftest import Member
from tests.metering.conftest import JobWatcher, run_consumer

WAIT_SECONDS = 60
DONE = ("ready", "failed")


@pytest.fixture
def jobs(runtime: Runtime) -> Iterator[JobWatcher]:
    """A real huey consumer of the runtime's queue, whose build job retries without delay."""
    registered = [
        dataclasses.replace(job, retry_delay=0.0) if job.name == building.BUILD.name else job
        for job in all_jobs()
    ]
    huey = open_huey(runtime.settings, runtime.keyring.master_key)
    # Set before anything opens the default queue, which would be built on first use.
    runtime.__dict__["jobs"] = JobQueue(huey, runtime, registered)
    with run_consumer(runtime.jobs) as watcher:
        yield watcher


# A blob store that fails ----------------------------------------------------------------


class FailingWriter(BlobWriter):
    """A writer that fails in `commit`, before publishing the blob or just after."""

    def __init__(self, inner: BlobWriter, after_commit: bool) -> None:
        self.inner = inner
        self.after_commit = after_commit

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.inner.write(data)

    def commit(self) -> int:
        if self.after_commit:
            self.inner.commit()
            raise OSError(errno.EIO, "Input/output error")
        raise OSError(errno.ENOSPC, "No space left on device")

    def abort(self) -> None:
        self.inner.abort()


class FailingBlobStore(LocalBlobStore):
    """The local store, whose next writers fail as `plan` lists: "before" or "after" commit."""

    def __init__(self, root: Path, plan: list[str]) -> None:
        super().__init__(root)
        self.plan = plan
        self.failed = 0

    def writer(self, key: str) -> BlobWriter:
        inner = super().writer(key)
        if not self.plan:
            return inner
        self.failed += 1
        return FailingWriter(inner, after_commit=self.plan.pop(0) == "after")


def fail_blob_writes(runtime: Runtime, *plan: str) -> FailingBlobStore:
    store = FailingBlobStore(runtime.settings.resolved_blob_dir, list(plan))
    runtime.blobs = store
    return store


# Calls and reads --------------------------------------------------------------------------


def request_export(client: httpx.Client, admin: Member, **body: Any) -> dict[str, Any]:
    response = client.post(admin.url("admin/exports"), headers=admin.headers, json=body)
    assert response.status_code == 202, response.text
    return response.json()


def get_export(client: httpx.Client, admin: Member, export_id: str) -> dict[str, Any]:
    response = client.get(admin.url(f"admin/exports/{export_id}"), headers=admin.headers)
    assert response.status_code == 200, response.text
    return response.json()


def wait_until_done(
    client: httpx.Client, admin: Member, export_id: str, timeout: float = WAIT_SECONDS
) -> dict[str, Any]:
    """Return the export once its job made it ready or failed."""
    deadline = time.monotonic() + timeout
    while True:
        export = get_export(client, admin, export_id)
        if export["status"] in DONE:
            return export
        if time.monotonic() > deadline:
            raise AssertionError(f"export {export_id} is still {export['status']}: {export}")
        time.sleep(0.05)


def download(client: httpx.Client, admin: Member, export_id: str) -> httpx.Response:
    return client.get(admin.url(f"admin/exports/{export_id}/content"), headers=admin.headers)


def blob_file(runtime: Runtime, tenant: TenantInfo, export_id: str) -> Path:
    return runtime.settings.resolved_blob_dir / blob_key(tenant.id, uuid.UUID(export_id))


def tenant_blob_files(runtime: Runtime, tenant: TenantInfo) -> list[Path]:
    """Every file below the tenant's blob prefix, published or not."""
    folder = runtime.settings.resolved_blob_dir / "tenants" / str(tenant.id)
    return sorted(path for path in folder.rglob("*") if path.is_file())


def stale_uploads(runtime: Runtime) -> list[str]:
    return [upload.name for upload in runtime.blobs.iter_stale_uploads(0)]


def decrypt(runtime: Runtime, tenant: TenantInfo, export_id: str) -> bytes:
    """Read the export's blob straight from the store and decrypt it, without the API."""
    with runtime.stores.session(tenant) as session:
        blob = session.get(BlobRow, (tenant.id, uuid.UUID(export_id)))
    assert blob is not None, f"export {export_id} has no blob row"
    tenant_key = runtime.keyring.version(tenant.id, blob.key_version)
    return b"".join(read_range(runtime.blobs, blob, tenant_key, 0, blob.size - 1))


def blob_rows(runtime: Runtime, tenant: TenantInfo) -> list[BlobRow]:
    with runtime.stores.session(tenant) as session:
        return list(session.scalars(select(BlobRow)))
