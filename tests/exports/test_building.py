"""Building exports through a real huey consumer: content, encryption at rest, retries, failure."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid

import httpx
from huey.signals import SIGNAL_COMPLETE

from strongroom.exports.building import BUILD, MAX_ATTEMPTS
from strongroom.runtime import Runtime
from strongroom.storage.crypto import MAGIC
from strongroom.tenancy.events import Target, record_event, user_actor
from strongroom.tenancy.rollups import roll_up_hour
from tests.conftest import Cast, Member
from tests.exports.conftest import (
    blob_file,
    blob_rows,
    decrypt,
    download,
    fail_blob_writes,
    get_export,
    request_export,
    stale_uploads,
    tenant_blob_files,
    wait_until_done,
)
from tests.metering.conftest import NOVEMBER, JobWatcher, meter_acme

SECRET_ZONE = "Pacific/Chatham"


def change_settings(runtime: Runtime, admin: Member, count: int) -> None:
    """Record `count` settings changes of the admin, each with a value that is easy to find."""
    for number in range(count):
        record_event(
            runtime.stores,
            admin.tenant,
            "settings_changed",
            user_actor(admin.user_id, "127.0.0.1"),
            target=Target("tenant", admin.tenant.id),
            old={"time_zone": "UTC"},
            new={"time_zone": f"{SECRET_ZONE}/{number}"},
        )


def streamed(client: httpx.Client, admin: Member, **filters: str) -> bytes:
    """Return the audit trail as the streamed route `GET /audit/export` sends it."""
    response = client.get(admin.url("audit/export"), headers=admin.headers, params=filters)
    assert response.status_code == 200, response.text
    return response.content


# Content ----------------------------------------------------------------------------------


def test_audit_export_matches_streamed_export(
    runtime: Runtime, client: httpx.Client, cast: Cast, jobs: JobWatcher
) -> None:
    admin = cast.acme_admin
    change_settings(runtime, admin, 3)
    filters = {"action": "settings_changed"}

    export = request_export(client, admin, kind="audit", filters=filters)
    done = wait_until_done(client, admin, export["id"])

    content = decrypt(runtime, cast.acme, export["id"])
    lines = [json.loads(line) for line in content.decode().splitlines()]
    assert done["status"] == "ready"
    assert done["format"] == "jsonl"
    assert content == streamed(client, admin, **filters)
    assert [line["new"]["time_zone"] for line in lines] == [f"{SECRET_ZONE}/{n}" for n in range(3)]
    assert done["size"] == len(content)
    assert done["sha256"] == hashlib.sha256(content).hexdigest()


def test_audit_export_spans_several_batches(
    runtime: Runtime, client: httpx.Client, cast: Cast, jobs: JobWatcher
) -> None:
    admin = cast.acme_admin
    # Batches hold 500 events, so 1,001 events make three batches, the last of one event.
    change_settings(runtime, admin, 1001)

    export = request_export(client, admin, kind="audit", filters={"action": "settings_changed"})
    wait_until_done(client, admin, export["id"])

    lines = decrypt(runtime, cast.acme, export["id"]).decode().splitlines()
    assert len(lines) == 1001
    assert len({json.loads(line)["id"] for line in lines}) == 1001


def test_audit_export_holds_only_own_tenant(
    runtime: Runtime, client: httpx.Client, cast: Cast, jobs: JobWatcher
) -> None:
    change_settings(runtime, cast.globex_admin, 2)
    change_settings(runtime, cast.acme_admin, 1)

    export = request_export(client, cast.acme_admin, kind="audit")
    wait_until_done(client, cast.acme_admin, export["id"])

    content = decrypt(runtime, cast.acme, export["id"]).decode()
    actors = {json.loads(line)["actor"] for line in content.splitlines()}
    assert actors == {str(cast.acme_admin.user_id)}
    assert content.count(SECRET_ZONE) == 1


def test_usage_export_csv_lists_hours(
    runtime: Runtime, client: httpx.Client, cast: Cast, jobs: JobWatcher
) -> None:
    admin = cast.acme_admin
    meter_acme(runtime, cast, NOVEMBER, [10, 1000, 2000], [cast.acme_member.user_id])
    meter_acme(runtime, cast, NOVEMBER + dt.timedelta(hours=1), [5, 0, 500], [])
    roll_up_hour(runtime.engine, cast.acme.id, NOVEMBER, 4000)

    export = request_export(client, admin, kind="usage", filters={"month": "2026-11"})
    done = wait_until_done(client, admin, export["id"])

    assert done["format"] == "csv"
    assert decrypt(runtime, cast.acme, export["id"]).decode() == (
        "hour,requests,bytes_in,bytes_out,storage_bytes,storage_byte_hours,active_users\n"
        "2026-11-05T10:00:00+00:00,10,1000,2000,4000,4000,1\n"
        "2026-11-05T11:00:00+00:00,5,0,500,,0,0\n"
    )


def test_usage_export_json_leaves_other_tenant_out(
    runtime: Runtime, client: httpx.Client, cast: Cast, jobs: JobWatcher
) -> None:
    meter_acme(runtime, cast, NOVEMBER, [10, 1000, 2000], [])
    admin = cast.globex_admin

    month = {"month": "2026-11"}
    export = request_export(client, admin, kind="usage", filters=month, format="json")
    wait_until_done(client, admin, export["id"])

    document = json.loads(decrypt(runtime, cast.globex, export["id"]))
    assert document == {"tenant": "globex", "month": "2026-11", "hours": []}


def test_export_blob_holds_no_plaintext(
    runtime: Runtime, client: httpx.Client, cast: Cast, jobs: JobWatcher
) -> None:
    admin = cast.acme_admin
    change_settings(runtime, admin, 5)

    export = request_export(client, admin, kind="audit")
    wait_until_done(client, admin, export["id"])

    plaintext = decrypt(runtime, cast.acme, export["id"])
    stored = blob_file(runtime, cast.acme, export["id"]).read_bytes()
    assert stored.startswith(MAGIC)
    assert len(stored) > len(plaintext)
    assert SECRET_ZONE.encode() not in stored
    assert b"settings_changed" not in stored
    assert str(admin.user_id).encode() not in stored
    assert plaintext.splitlines()[0] not in stored


def test_export_download_through_api_decrypts(
    runtime: Runtime, client: httpx.Client, cast: Cast, jobs: JobWatcher
) -> None:
    admin = cast.acme_admin
    change_settings(runtime, admin, 2)
    export = request_export(client, admin, kind="audit", filters={"action": "settings_changed"})
    done = wait_until_done(client, admin, export["id"])

    response = download(client, admin, export["id"])

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-ndjson"
    assert response.headers["content-length"] == str(done["size"])
    assert response.headers["etag"] == f'"{done["sha256"]}"'
    assert "attachment" in response.headers["content-disposition"]
    assert response.content == decrypt(runtime, cast.acme, export["id"])


# Retries and failure ---------------------------------------------------------------------


def test_export_rerun_is_skipped_and_keeps_one_blob(
    runtime: Runtime, client: httpx.Client, cast: Cast, jobs: JobWatcher
) -> None:
    admin = cast.acme_admin
    export = request_export(client, admin, kind="audit")
    first = wait_until_done(client, admin, export["id"])
    stored = blob_file(runtime, cast.acme, export["id"]).read_bytes()

    again = runtime.jobs.enqueue(BUILD, cast.acme.id, export_id=export["id"])

    assert jobs.wait(again) == SIGNAL_COMPLETE
    assert get_export(client, admin, export["id"]) == first
    assert tenant_blob_files(runtime, cast.acme) == [blob_file(runtime, cast.acme, export["id"])]
    assert blob_file(runtime, cast.acme, export["id"]).read_bytes() == stored


def test_export_retried_after_failure_keeps_one_blob(
    runtime: Runtime, client: httpx.Client, cast: Cast, jobs: JobWatcher
) -> None:
    admin = cast.acme_admin
    change_settings(runtime, admin, 2)
    # The first attempt publishes its blob and then fails: the retry must replace it.
    store = fail_blob_writes(runtime, "after")

    export = request_export(client, admin, kind="audit", filters={"action": "settings_changed"})
    done = wait_until_done(client, admin, export["id"])

    assert store.failed == 1
    assert done["status"] == "ready"
    assert done["reason"] is None
    assert tenant_blob_files(runtime, cast.acme) == [blob_file(runtime, cast.acme, export["id"])]
    assert [row.id for row in blob_rows(runtime, cast.acme)] == [uuid.UUID(export["id"])]
    assert decrypt(runtime, cast.acme, export["id"]) == streamed(
        client, admin, action="settings_changed"
    )


def test_export_failing_every_attempt_is_failed(
    runtime: Runtime, client: httpx.Client, cast: Cast, jobs: JobWatcher
) -> None:
    admin = cast.acme_admin
    change_settings(runtime, admin, 2)
    store = fail_blob_writes(runtime, *["before", "after", "before"][:MAX_ATTEMPTS])

    export = request_export(client, admin, kind="audit")
    done = wait_until_done(client, admin, export["id"])

    assert store.failed == MAX_ATTEMPTS
    assert done["status"] == "failed"
    assert f"failed after {MAX_ATTEMPTS} attempts" in done["reason"]
    assert "the blob store failed (No space left on device)" in done["reason"]
    assert done["size"] is None
    assert done["sha256"] is None
    assert done["expires"] is not None
    assert tenant_blob_files(runtime, cast.acme) == []
    assert stale_uploads(runtime) == []
    assert blob_rows(runtime, cast.acme) == []
    response = download(client, admin, export["id"])
    assert response.status_code == 409
    assert "is failed, not ready" in response.json()["detail"]


def test_export_failure_spares_other_exports(
    runtime: Runtime, client: httpx.Client, cast: Cast, jobs: JobWatcher
) -> None:
    globex = request_export(client, cast.globex_admin, kind="audit")
    wait_until_done(client, cast.globex_admin, globex["id"])
    fail_blob_writes(runtime, *["before"] * MAX_ATTEMPTS)

    acme = request_export(client, cast.acme_admin, kind="audit")
    failed = wait_until_done(client, cast.acme_admin, acme["id"])

    assert failed["status"] == "failed"
    assert get_export(client, cast.globex_admin, globex["id"])["status"] == "ready"
    assert download(client, cast.globex_admin, globex["id"]).status_code == 200
