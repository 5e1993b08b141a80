"""The export sweep: expired exports and their blobs go, lost jobs come back, stuck ones fail."""

from __future__ import annotations

import datetime as dt
import uuid

import httpx
from huey.signals import SIGNAL_COMPLETE
from sqlalchemy import update

from strongroom.exports.expiry import (
    REQUEUE_AFTER,
    STUCK_AFTER,
    SWEEP,
    schedule_sweeps,
    sweep_exports,
)
from strongroom.exports.models import ExportRow
from strongroom.runtime import Runtime
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.models import utcnow
from tests.conftest import Cast
from tests.exports.conftest import (
    blob_file,
    blob_rows,
    download,
    get_export,
    request_export,
    tenant_blob_files,
    wait_until_done,
)
from tests.metering.conftest import JobWatcher


def set_times(runtime: Runtime, tenant: TenantInfo, export_id: str, **times: dt.datetime) -> None:
    """Move an export's times, as if it had been requested or finished that long ago."""
    with runtime.stores.session(tenant, write=True) as session:
        session.execute(
            update(ExportRow).where(ExportRow.id == uuid.UUID(export_id)).values(**times)
        )


def test_sweep_job_purges_expired_export(
    runtime: Runtime, client: httpx.Client, cast: Cast, jobs: JobWatcher
) -> None:
    expired = request_export(client, cast.acme_admin, kind="audit")
    unexpired = request_export(client, cast.acme_admin, kind="audit")
    other = request_export(client, cast.globex_admin, kind="audit")
    for export in (expired, unexpired):
        wait_until_done(client, cast.acme_admin, export["id"])
    wait_until_done(client, cast.globex_admin, other["id"])
    set_times(runtime, cast.acme, expired["id"], expires_at=utcnow() - dt.timedelta(seconds=1))
    set_times(runtime, cast.globex, other["id"], expires_at=utcnow() - dt.timedelta(seconds=1))

    task = runtime.jobs.enqueue(SWEEP, cast.acme.id)

    assert jobs.wait(task) == SIGNAL_COMPLETE
    admin = cast.acme_admin
    gone = client.get(admin.url(f"admin/exports/{expired['id']}"), headers=admin.headers)
    assert gone.status_code == 404
    assert download(client, cast.acme_admin, expired["id"]).status_code == 404
    assert not blob_file(runtime, cast.acme, expired["id"]).exists()
    assert tenant_blob_files(runtime, cast.acme) == [blob_file(runtime, cast.acme, unexpired["id"])]
    assert [row.id for row in blob_rows(runtime, cast.acme)] == [uuid.UUID(unexpired["id"])]
    # The sweep ran for acme only: globex's expired export waits for its own sweep.
    assert get_export(client, cast.globex_admin, other["id"])["status"] == "expired"


def test_expired_export_not_downloadable_before_sweep(
    runtime: Runtime, client: httpx.Client, cast: Cast, jobs: JobWatcher
) -> None:
    export = request_export(client, cast.acme_admin, kind="audit")
    wait_until_done(client, cast.acme_admin, export["id"])
    set_times(runtime, cast.acme, export["id"], expires_at=utcnow() - dt.timedelta(seconds=1))

    response = download(client, cast.acme_admin, export["id"])

    assert response.status_code == 409
    assert "expired at" in response.json()["detail"]


def test_ready_export_expires_after_retention(
    runtime: Runtime, client: httpx.Client, cast: Cast, jobs: JobWatcher
) -> None:
    export = request_export(client, cast.acme_admin, kind="audit")
    done = wait_until_done(client, cast.acme_admin, export["id"])

    finished = dt.datetime.fromisoformat(done["finished"])
    expires = dt.datetime.fromisoformat(done["expires"])
    assert expires - finished == dt.timedelta(days=runtime.settings.export_retention_days)
    swept = sweep_exports(runtime, cast.acme, now=expires - dt.timedelta(seconds=1))
    assert swept.expired == []
    swept = sweep_exports(runtime, cast.acme, now=expires)
    assert swept.expired == [uuid.UUID(export["id"])]


def test_sweep_requeues_lost_job(
    runtime: Runtime, client: httpx.Client, cast: Cast
) -> None:
    # No consumer runs yet: the job stays in the queue, as a lost one would stay nowhere.
    export = request_export(client, cast.acme_admin, kind="audit")
    requested = utcnow() - REQUEUE_AFTER - dt.timedelta(minutes=1)
    set_times(runtime, cast.acme, export["id"], created_at=requested)

    swept = sweep_exports(runtime, cast.acme)

    assert swept.requeued == [uuid.UUID(export["id"])]
    assert swept.expired == swept.given_up == []


def test_sweep_leaves_recent_queued_export(
    runtime: Runtime, client: httpx.Client, cast: Cast
) -> None:
    request_export(client, cast.acme_admin, kind="audit")

    swept = sweep_exports(runtime, cast.acme)

    assert swept.requeued == swept.expired == swept.given_up == []


def test_sweep_gives_up_stuck_export(
    runtime: Runtime, client: httpx.Client, cast: Cast
) -> None:
    export = request_export(client, cast.acme_admin, kind="audit")
    requested = utcnow() - STUCK_AFTER - dt.timedelta(minutes=1)
    set_times(runtime, cast.acme, export["id"], created_at=requested)
    with runtime.stores.session(cast.acme, write=True) as session:
        session.execute(
            update(ExportRow)
            .where(ExportRow.id == uuid.UUID(export["id"]))
            .values(status="running", attempts=1)
        )
    # A worker killed after publishing the blob and before marking the export ready.
    stray = blob_file(runtime, cast.acme, export["id"])
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"left by a killed worker")

    swept = sweep_exports(runtime, cast.acme)

    failed = get_export(client, cast.acme_admin, export["id"])
    assert swept.given_up == [uuid.UUID(export["id"])]
    assert failed["status"] == "failed"
    assert "did not finish within 6 hours" in failed["reason"]
    assert not stray.exists()


def test_lost_job_requeued_then_built(
    runtime: Runtime, client: httpx.Client, cast: Cast, jobs: JobWatcher
) -> None:
    # Made without the API, so no job was ever enqueued for it.
    with runtime.stores.session(cast.acme, write=True) as session:
        export = ExportRow(
            tenant_id=cast.acme.id,
            id=uuid.uuid4(),
            kind="audit",
            format="jsonl",
            filters={},
            requested_by=cast.acme_admin.user_id,
            attempts=0,
            created_at=utcnow() - REQUEUE_AFTER - dt.timedelta(minutes=1),
        )
        session.add(export)

    task = runtime.jobs.enqueue(SWEEP, cast.acme.id)

    assert jobs.wait(task) == SIGNAL_COMPLETE
    assert wait_until_done(client, cast.acme_admin, str(export.id))["status"] == "ready"


def test_sweeps_scheduled_for_every_tenant(runtime: Runtime, cast: Cast) -> None:
    assert schedule_sweeps(runtime) == 2
