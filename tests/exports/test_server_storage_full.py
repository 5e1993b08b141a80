"""Building an export when the server's storage is full: the export fails with a reason, the worker lives on.

The blob store's full disk is a stand-in (tests/full_disk.py), because a
real full disk needs a file system mounted by root. The `os` module of
strongroom.storage.blobs is replaced by one whose writes fail with ENOSPC
once a budget of bytes is used up.
"""

from __future__ import annotations

import httpx
import pytest
from structlog.testing import capture_logs

from strongroom.drive.integrity import check_all
from strongroom.exports.building import MAX_ATTEMPTS, SERVER_STORAGE_FULL
from strongroom.runtime import Runtime
from tests.conftest import Cast
from tests.exports.conftest import (
    blob_rows,
    download,
    request_export,
    stale_uploads,
    tenant_blob_files,
    wait_until_done,
)
from tests.full_disk import fill_disk
from tests.metering.conftest import JobWatcher


def test_export_on_full_disk_fails_with_reason(
    runtime: Runtime,
    client: httpx.Client,
    cast: Cast,
    jobs: JobWatcher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    admin = cast.acme_admin
    disk = fill_disk(monkeypatch, room=0)

    with capture_logs() as logs:
        export = request_export(client, admin, kind="audit")
        done = wait_until_done(client, admin, export["id"])

    assert disk.failures == MAX_ATTEMPTS
    assert done["status"] == "failed"
    assert f"failed after {MAX_ATTEMPTS} attempts: {SERVER_STORAGE_FULL}" in done["reason"]
    assert done["size"] is None
    assert tenant_blob_files(runtime, cast.acme) == []
    assert stale_uploads(runtime) == []
    assert blob_rows(runtime, cast.acme) == []
    assert check_all(runtime, repair=False, grace_seconds=0).clean
    full = [entry for entry in logs if entry["event"] == "server_storage_full"]
    assert len(full) == MAX_ATTEMPTS
    assert {entry["tenant_id"] for entry in full} == {str(cast.acme.id)}
    attempts = [entry for entry in logs if entry["event"] == "export_attempt_failed"]
    assert [entry["log_level"] for entry in attempts] == ["warning"] * MAX_ATTEMPTS


def test_export_after_room_returns_is_ready(
    runtime: Runtime,
    client: httpx.Client,
    cast: Cast,
    jobs: JobWatcher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    admin = cast.acme_admin
    disk = fill_disk(monkeypatch, room=0)
    failed = request_export(client, admin, kind="audit")
    assert wait_until_done(client, admin, failed["id"])["status"] == "failed"

    disk.free()
    export = request_export(client, admin, kind="audit")
    done = wait_until_done(client, admin, export["id"])

    assert done["status"] == "ready", done
    assert download(client, admin, export["id"]).status_code == 200
    assert check_all(runtime, repair=False, grace_seconds=0, verify=True).clean
