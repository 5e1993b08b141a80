"""Export blobs beside file blobs: the consistency check and key rotation see them."""

from __future__ import annotations

import uuid

import httpx

from strongroom.drive.content import blob_key
from strongroom.drive.integrity import check_tenant
from strongroom.drive.keys import rewrap_blob_keys
from strongroom.runtime import Runtime
from tests.conftest import Cast
from tests.exports.conftest import (
    blob_file,
    blob_rows,
    decrypt,
    download,
    request_export,
    wait_until_done,
)
from tests.metering.conftest import JobWatcher


def test_check_finds_export_blob_sound(
    runtime: Runtime, client: httpx.Client, cast: Cast, jobs: JobWatcher
) -> None:
    export = request_export(client, cast.acme_admin, kind="audit")
    wait_until_done(client, cast.acme_admin, export["id"])

    report = check_tenant(runtime, cast.acme, repair=False, grace_seconds=0, verify=True)

    assert report.orphan_blobs == []
    assert report.missing_blobs == []
    assert report.damaged_blobs == []
    assert report.clean


def test_check_finds_blob_of_deleted_row_orphan(
    runtime: Runtime, client: httpx.Client, cast: Cast, jobs: JobWatcher
) -> None:
    export = request_export(client, cast.acme_admin, kind="audit")
    wait_until_done(client, cast.acme_admin, export["id"])
    stored = blob_file(runtime, cast.acme, export["id"])
    content = stored.read_bytes()
    client.delete(
        cast.acme_admin.url(f"admin/exports/{export['id']}"), headers=cast.acme_admin.headers
    )
    # As if the process had died between the commit and the blob's deletion.
    stored.parent.mkdir(parents=True, exist_ok=True)
    stored.write_bytes(content)

    report = check_tenant(runtime, cast.acme, repair=False, grace_seconds=0)

    assert report.orphan_blobs == [blob_key(cast.acme.id, uuid.UUID(export["id"]))]


def test_key_rotation_rewraps_export_key(
    runtime: Runtime, client: httpx.Client, cast: Cast, jobs: JobWatcher
) -> None:
    export = request_export(client, cast.acme_admin, kind="audit")
    wait_until_done(client, cast.acme_admin, export["id"])
    before = decrypt(runtime, cast.acme, export["id"])

    version = runtime.catalog.add_key_version(cast.acme.id)
    rewrapped = rewrap_blob_keys(runtime.stores, runtime.keyring, cast.acme, version)

    assert rewrapped == 1
    assert [row.key_version for row in blob_rows(runtime, cast.acme)] == [version]
    assert download(client, cast.acme_admin, export["id"]).content == before
