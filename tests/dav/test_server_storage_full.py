"""WebDAV writes when the server's storage is full: 507 Insufficient Storage (RFC 4918), nothing stored.

The blob store's full disk is a stand-in (tests/full_disk.py), because a
real full disk needs a file system mounted by root. The `os` module of
strongroom.storage.blobs is replaced by one whose writes fail with ENOSPC
once a budget of bytes is used up.
"""

from __future__ import annotations

import time

import httpx
import pytest
from structlog.testing import capture_logs

from strongroom.base import metrics
from strongroom.base.errors import SERVER_FAULT_HEADER
from strongroom.drive.integrity import check_all
from strongroom.runtime import Runtime
from strongroom.tenancy.context import TenantInfo
from strongroom.tenancy.usage import get_usage
from tests.conftest import TEST_CHUNK_SIZE
from tests.dav.conftest import DavUser
from tests.full_disk import fill_disk, uploads_folder_files

BODY = bytes(range(256)) * (5 * TEST_CHUNK_SIZE // 256)
ROOM = TEST_CHUNK_SIZE + 100


def usage_of(runtime: Runtime, tenant: TenantInfo) -> int:
    with runtime.stores.session(tenant) as session:
        return get_usage(session)


def assert_storage_full(response: httpx.Response) -> None:
    assert response.status_code == 507, response.text
    assert "nothing of it was stored" in response.text
    assert "the operator must free space on the server&#x27;s storage" in response.text
    assert SERVER_FAULT_HEADER.lower() not in response.headers


def assert_nothing_left(runtime: Runtime, tenant: TenantInfo, usage: int) -> None:
    assert uploads_folder_files(runtime.settings.resolved_blob_dir) == []
    report = check_all(runtime, repair=False, grace_seconds=0, verify=True)
    assert report.clean, report
    assert usage_of(runtime, tenant) == usage


def server_errors(tenant: TenantInfo, status_class: str) -> float:
    labels = {"plan": tenant.plan, "isolation": tenant.isolation, "status_class": status_class}
    return metrics.registry.get_sample_value("strongroom_tenant_requests_total", labels) or 0.0


def test_put_on_full_disk_is_507(
    client: httpx.Client, runtime: Runtime, acme_dav: DavUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    usage = usage_of(runtime, acme_dav.tenant)
    server = server_errors(acme_dav.tenant, "5xx")
    disk = fill_disk(monkeypatch, room=ROOM)

    with capture_logs() as logs:
        response = client.put(acme_dav.url("full.bin"), content=BODY, auth=acme_dav.auth)

    assert_storage_full(response)
    events = [entry for entry in logs if entry["event"] == "server_storage_full"]
    assert len(events) == 1
    assert events[0]["tenant_id"] == str(acme_dav.tenant.id)
    assert not [entry for entry in logs if entry["log_level"] == "error" and entry is not events[0]]
    assert client.get(acme_dav.url("full.bin"), auth=acme_dav.auth).status_code == 404
    assert_nothing_left(runtime, acme_dav.tenant, usage)
    deadline = time.monotonic() + 5
    while server_errors(acme_dav.tenant, "5xx") == server and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server_errors(acme_dav.tenant, "5xx") == server + 1

    disk.free()
    response = client.put(acme_dav.url("full.bin"), content=BODY, auth=acme_dav.auth)
    assert response.status_code == 201, response.text
    assert client.get(acme_dav.url("full.bin"), auth=acme_dav.auth).content == BODY


def test_put_replacing_file_on_full_disk_keeps_content(
    client: httpx.Client, runtime: Runtime, acme_dav: DavUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert client.put(acme_dav.url("a.txt"), content=b"kept", auth=acme_dav.auth).status_code == 201
    usage = usage_of(runtime, acme_dav.tenant)
    fill_disk(monkeypatch, room=ROOM)

    response = client.put(acme_dav.url("a.txt"), content=BODY, auth=acme_dav.auth)

    assert_storage_full(response)
    assert client.get(acme_dav.url("a.txt"), auth=acme_dav.auth).content == b"kept"
    assert_nothing_left(runtime, acme_dav.tenant, usage)


def test_copy_on_full_disk_is_507(
    client: httpx.Client, runtime: Runtime, acme_dav: DavUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert client.put(acme_dav.url("a.bin"), content=BODY, auth=acme_dav.auth).status_code == 201
    usage = usage_of(runtime, acme_dav.tenant)
    disk = fill_disk(monkeypatch, room=ROOM)

    response = client.request(
        "COPY", acme_dav.url("a.bin"), headers={"Destination": acme_dav.url("b.bin")},
        auth=acme_dav.auth,
    )

    assert_storage_full(response)
    assert client.get(acme_dav.url("b.bin"), auth=acme_dav.auth).status_code == 404
    assert_nothing_left(runtime, acme_dav.tenant, usage)

    disk.free()
    copied = client.request(
        "COPY", acme_dav.url("a.bin"), headers={"Destination": acme_dav.url("b.bin")},
        auth=acme_dav.auth,
    )
    assert copied.status_code == 201, copied.text
    assert client.get(acme_dav.url("b.bin"), auth=acme_dav.auth).content == BODY
