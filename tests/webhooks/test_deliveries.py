"""Deliveries to a real receiver on loopback: events, signatures, retries, dead letters, replay."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import time
import uuid

import httpx
import pytest

from strongroom.identity.app_passwords import create_app_password
from strongroom.identity.users import access_user_by_email
from strongroom.runtime import Runtime
from strongroom.tenancy.models import utcnow
from strongroom.webhooks.deliveries import sweep_stuck
from strongroom.webhooks.signing import sign, verify
from strongroom.webhooks.subscriptions import rotate_secret
from tests.conftest import Cast
from tests.metering.conftest import JobWatcher
from tests.webhooks.conftest import Receiver, call, put_file, subscribe, wait_for_deliveries

CONTENT = b"the secret recipe of acme, do not leak"


def test_file_created_delivered_signed(
    client: httpx.Client, cast: Cast, receiver: Receiver, jobs: JobWatcher
) -> None:
    admin, member = cast.acme_admin, cast.acme_member
    hook = subscribe(client, admin, receiver.url("/acme"))

    stored = put_file(client, member, "docs/recipe.txt", CONTENT)
    [request] = receiver.wait_for("/acme", 1)

    timestamp = int(request.headers["x-strongroom-timestamp"])
    event = request.json()
    assert request.headers["x-strongroom-event"] == "file.created"
    assert request.headers["content-type"] == "application/json"
    assert verify(
        hook["secret"], timestamp, request.body, request.headers["x-strongroom-signature"]
    )
    assert request.headers["x-strongroom-signature"] == sign(
        hook["secret"], timestamp, request.body
    )
    assert abs(time.time() - timestamp) < 60
    assert event["type"] == "file.created"
    assert event["tenant"] == {"id": str(cast.acme.id), "slug": "acme"}
    assert event["data"]["file"] == {
        "id": stored["id"],
        "path": "docs/recipe.txt",
        "owner_id": str(member.user_id),
        "size": len(CONTENT),
        "version": 1,
    }
    assert event["data"]["actor_id"] == str(member.user_id)
    [delivery] = wait_for_deliveries(client, admin, hook["id"], "delivered")
    assert request.headers["x-strongroom-delivery"] == delivery["id"]
    assert delivery["event_id"] == event["id"]
    assert delivery["attempts"] == 1
    assert delivery["last_status"] == 204


def test_signature_fails_with_other_secret(
    client: httpx.Client, cast: Cast, receiver: Receiver, jobs: JobWatcher
) -> None:
    subscribe(client, cast.acme_admin, receiver.url("/acme"))
    other = subscribe(client, cast.acme_admin, receiver.url("/other"))

    put_file(client, cast.acme_member, "docs/recipe.txt", CONTENT)
    [request] = receiver.wait_for("/acme", 1)

    timestamp = int(request.headers["x-strongroom-timestamp"])
    signature = request.headers["x-strongroom-signature"]
    assert not verify(other["secret"], timestamp, request.body, signature)
    assert not verify(other["secret"], timestamp + 1, request.body, signature)
    assert not verify(other["secret"], timestamp, request.body + b" ", signature)


def test_rotated_secrets_sign_during_overlap(
    client: httpx.Client, runtime: Runtime, cast: Cast, receiver: Receiver, jobs: JobWatcher
) -> None:
    admin = cast.acme_admin
    hook = subscribe(client, admin, receiver.url("/acme"))
    rotate = f"webhooks/{hook['id']}/secret"

    overlapping = call(client, admin, "POST", rotate, json={"overlap_hours": 1})
    put_file(client, cast.acme_member, "docs/one.txt", b"one")
    [during] = receiver.wait_for("/acme", 1)
    immediate = call(client, admin, "POST", rotate, json={"overlap_hours": 0})
    put_file(client, cast.acme_member, "docs/two.txt", b"two")
    after = receiver.wait_for("/acme", 2)[1]

    timestamp = int(during.headers["x-strongroom-timestamp"])
    new, old = overlapping["secret"], hook["secret"]
    assert during.headers["x-strongroom-signature"] == (
        f"{sign(new, timestamp, during.body)}, {sign(old, timestamp, during.body)}"
    )
    for secret in (new, old):
        assert verify(secret, timestamp, during.body, during.headers["x-strongroom-signature"])
    assert immediate["previous_secret_expires"] is None
    timestamp = int(after.headers["x-strongroom-timestamp"])
    signature = after.headers["x-strongroom-signature"]
    assert signature == sign(immediate["secret"], timestamp, after.body)
    assert not verify(new, timestamp, after.body, signature)
    assert not verify(old, timestamp, after.body, signature)


def test_second_rotation_signs_with_every_promised_secret(
    client: httpx.Client, runtime: Runtime, cast: Cast, receiver: Receiver, jobs: JobWatcher
) -> None:
    admin = cast.acme_admin
    hook = subscribe(client, admin, receiver.url("/acme"))
    rotate = f"webhooks/{hook['id']}/secret"

    first = call(client, admin, "POST", rotate, json={"overlap_hours": 24})
    second = call(client, admin, "POST", rotate, json={"overlap_hours": 1})
    put_file(client, cast.acme_member, "docs/one.txt", b"one")
    [request] = receiver.wait_for("/acme", 1)

    timestamp = int(request.headers["x-strongroom-timestamp"])
    signature = request.headers["x-strongroom-signature"]
    newest_first = (second["secret"], first["secret"], hook["secret"])
    assert signature == ", ".join(sign(secret, timestamp, request.body) for secret in newest_first)
    for secret in newest_first:
        assert verify(secret, timestamp, request.body, signature)


def test_rotated_secret_stops_after_overlap(
    client: httpx.Client, runtime: Runtime, cast: Cast, receiver: Receiver, jobs: JobWatcher
) -> None:
    hook = subscribe(client, cast.acme_admin, receiver.url("/acme"))
    with runtime.stores.session(cast.acme, write=True) as session:
        # Rotated two hours ago with an hour of overlap, so the overlap is over.
        _webhook, secret, _kept = rotate_secret(
            session,
            runtime.keyring,
            uuid.UUID(hook["id"]),
            dt.timedelta(hours=1),
            now=utcnow() - dt.timedelta(hours=2),
        )

    put_file(client, cast.acme_member, "docs/one.txt", b"one")
    [request] = receiver.wait_for("/acme", 1)

    timestamp = int(request.headers["x-strongroom-timestamp"])
    signature = request.headers["x-strongroom-signature"]
    assert signature == sign(secret, timestamp, request.body)
    assert not verify(hook["secret"], timestamp, request.body, signature)


def test_payload_carries_no_content(
    client: httpx.Client, cast: Cast, receiver: Receiver, jobs: JobWatcher
) -> None:
    hook = subscribe(client, cast.acme_admin, receiver.url("/acme"))

    put_file(client, cast.acme_member, "docs/recipe.txt", CONTENT)
    [request] = receiver.wait_for("/acme", 1)

    assert CONTENT not in request.body
    assert b"secret recipe" not in request.body
    assert hashlib.sha256(CONTENT).hexdigest().encode() not in request.body
    assert hook["secret"].encode() not in request.body
    assert hook["secret"] not in str(request.headers)


def test_every_event_type_delivered(
    client: httpx.Client, cast: Cast, receiver: Receiver, jobs: JobWatcher
) -> None:
    admin, member = cast.acme_admin, cast.acme_member
    subscribe(client, admin, receiver.url("/acme"))

    put_file(client, member, "docs/plan.txt", b"first")
    put_file(client, member, "docs/plan.txt", b"second")
    share = call(
        client,
        member,
        "POST",
        "shares",
        json={"path": "docs", "user_id": str(admin.user_id), "permission": "read"},
    )
    link = call(client, member, "POST", "links", json={"path": "docs/plan.txt"})
    call(client, member, "DELETE", "files/docs/plan.txt")
    received = receiver.wait_for("/acme", 5)

    by_type = {request.headers["x-strongroom-event"]: request.json() for request in received}
    assert sorted(by_type) == [
        "file.created",
        "file.deleted",
        "file.updated",
        "link.created",
        "share.created",
    ]
    assert by_type["file.updated"]["data"]["file"]["version"] == 2
    assert by_type["file.deleted"]["data"]["file"]["path"] == "docs/plan.txt"
    assert by_type["share.created"]["data"]["share"] == {
        "id": share["id"],
        "permission": "read",
        "recipient": {"type": "user", "id": str(admin.user_id)},
    }
    assert by_type["share.created"]["data"]["node"]["path"] == "docs"
    assert by_type["link.created"]["data"]["link"]["id"] == link["id"]
    assert by_type["link.created"]["data"]["node"]["path"] == "docs/plan.txt"
    token = link["url"].rsplit("/", 1)[-1]
    assert all(token not in request.body.decode() for request in received)


def test_only_subscribed_events_delivered(
    client: httpx.Client, cast: Cast, receiver: Receiver, jobs: JobWatcher
) -> None:
    subscribe(client, cast.acme_admin, receiver.url("/deletes"), ["file.deleted"])
    subscribe(client, cast.acme_admin, receiver.url("/everything"))

    put_file(client, cast.acme_member, "docs/plan.txt", b"first")
    call(client, cast.acme_member, "DELETE", "files/docs/plan.txt")
    receiver.wait_for("/everything", 2)
    [request] = receiver.wait_for("/deletes", 1)

    assert request.headers["x-strongroom-event"] == "file.deleted"
    assert len(receiver.received_at("/deletes")) == 1


def test_inactive_webhook_gets_nothing(
    client: httpx.Client, cast: Cast, receiver: Receiver, jobs: JobWatcher
) -> None:
    admin = cast.acme_admin
    quiet = subscribe(client, admin, receiver.url("/quiet"))
    call(client, admin, "PATCH", f"webhooks/{quiet['id']}", json={"active": False})
    subscribe(client, admin, receiver.url("/loud"))

    put_file(client, cast.acme_member, "docs/plan.txt", b"first")
    receiver.wait_for("/loud", 1)

    assert receiver.received_at("/quiet") == []
    assert call(client, admin, "GET", f"webhooks/{quiet['id']}/deliveries")["items"] == []


# Retries and dead letters --------------------------------------------------------------


def test_retries_then_delivered(
    client: httpx.Client, cast: Cast, receiver: Receiver, jobs: JobWatcher
) -> None:
    admin = cast.acme_admin
    hook = subscribe(client, admin, receiver.url("/acme"))
    receiver.respond(500, 503)

    put_file(client, cast.acme_member, "docs/plan.txt", b"first")
    received = receiver.wait_for("/acme", 3)
    [delivery] = wait_for_deliveries(client, admin, hook["id"], "delivered")

    assert len({request.headers["x-strongroom-delivery"] for request in received}) == 1
    assert len({request.body for request in received}) == 1
    for request in received:
        timestamp = int(request.headers["x-strongroom-timestamp"])
        assert verify(
            hook["secret"], timestamp, request.body, request.headers["x-strongroom-signature"]
        )
    assert delivery["attempts"] == 3
    assert delivery["last_status"] == 204
    assert delivery["last_error"] is None
    assert delivery["delivered"] is not None


def test_exhausted_retries_dead_then_replayed(
    client: httpx.Client, cast: Cast, receiver: Receiver, jobs: JobWatcher
) -> None:
    admin = cast.acme_admin
    hook = subscribe(client, admin, receiver.url("/acme"))
    receiver.default_status = 500

    put_file(client, cast.acme_member, "docs/plan.txt", b"first")
    [dead] = wait_for_deliveries(client, admin, hook["id"], "dead")
    receiver.default_status = 200
    replay = client.post(
        admin.url(f"webhooks/{hook['id']}/deliveries/{dead['id']}/replay"), headers=admin.headers
    )
    [delivered] = wait_for_deliveries(client, admin, hook["id"], "delivered")

    # Three attempts: the first try and one per configured retry delay (0.1,0.1).
    assert dead["attempts"] == 3
    assert dead["last_status"] == 500
    assert "HTTP 500" in dead["last_error"]
    assert dead["next_attempt"] is None
    assert replay.status_code == 202, replay.text
    assert replay.json()["state"] == "pending"
    assert delivered["id"] == dead["id"]
    assert delivered["attempts"] == 1
    assert delivered["last_status"] == 200
    assert len(receiver.received_at("/acme")) == 4
    assert call(client, admin, "GET", f"webhooks/{hook['id']}/deliveries?state=dead")["items"] == []


def test_replay_of_pending_or_delivered_is_409(
    client: httpx.Client, cast: Cast, receiver: Receiver, jobs: JobWatcher
) -> None:
    admin = cast.acme_admin
    hook = subscribe(client, admin, receiver.url("/acme"))

    put_file(client, cast.acme_member, "docs/plan.txt", b"first")
    [delivered] = wait_for_deliveries(client, admin, hook["id"], "delivered")
    response = client.post(
        admin.url(f"webhooks/{hook['id']}/deliveries/{delivered['id']}/replay"),
        headers=admin.headers,
    )

    assert response.status_code == 409
    assert "only dead deliveries can be replayed" in response.json()["detail"]


def test_unreachable_receiver_dead(
    client: httpx.Client, cast: Cast, receiver: Receiver, jobs: JobWatcher
) -> None:
    admin = cast.acme_admin
    url = receiver.url("/acme")
    receiver.close()
    hook = subscribe(client, admin, url)

    put_file(client, cast.acme_member, "docs/plan.txt", b"first")
    [dead] = wait_for_deliveries(client, admin, hook["id"], "dead")

    assert dead["attempts"] == 3
    assert dead["last_status"] is None
    assert "Connect" in dead["last_error"]


def test_private_address_refused_at_delivery(
    client: httpx.Client, runtime: Runtime, cast: Cast, receiver: Receiver, jobs: JobWatcher
) -> None:
    admin = cast.acme_admin
    hook = subscribe(client, admin, receiver.url("/acme"))
    # Saved while allowed, as a name that later resolves to a private address would be.
    runtime.settings.webhook_block_private_addresses = True

    put_file(client, cast.acme_member, "docs/plan.txt", b"first")
    [dead] = wait_for_deliveries(client, admin, hook["id"], "dead")

    assert "may not reach" in dead["last_error"]
    assert "127.0.0.1" in dead["last_error"]  # the host the admin configured
    assert receiver.received_at("/acme") == []


# Tenants and the module ----------------------------------------------------------------


def test_events_stay_in_their_tenant(
    client: httpx.Client, cast: Cast, receiver: Receiver, jobs: JobWatcher
) -> None:
    acme_hook = subscribe(client, cast.acme_admin, receiver.url("/acme"))
    globex_hook = subscribe(client, cast.globex_admin, receiver.url("/globex"))

    acme_file = put_file(client, cast.acme_member, "docs/acme.txt", b"acme")
    globex_file = put_file(client, cast.globex_member, "docs/globex.txt", b"globex")
    [to_acme] = receiver.wait_for("/acme", 1)
    [to_globex] = receiver.wait_for("/globex", 1)
    wait_for_deliveries(client, cast.acme_admin, acme_hook["id"], "delivered")
    wait_for_deliveries(client, cast.globex_admin, globex_hook["id"], "delivered")

    assert to_acme.json()["data"]["file"]["id"] == acme_file["id"]
    assert to_globex.json()["data"]["file"]["id"] == globex_file["id"]
    assert str(cast.globex.id) not in to_acme.body.decode()
    assert str(cast.acme.id) not in to_globex.body.decode()
    assert verify(
        globex_hook["secret"],
        int(to_globex.headers["x-strongroom-timestamp"]),
        to_globex.body,
        to_globex.headers["x-strongroom-signature"],
    )
    assert (
        len(call(client, cast.acme_admin, "GET", f"webhooks/{acme_hook['id']}/deliveries")["items"])
        == 1
    )
    assert (
        len(
            call(client, cast.globex_admin, "GET", f"webhooks/{globex_hook['id']}/deliveries")[
                "items"
            ]
        )
        == 1
    )


def test_other_tenant_cannot_replay(
    client: httpx.Client, cast: Cast, receiver: Receiver, jobs: JobWatcher
) -> None:
    admin = cast.acme_admin
    hook = subscribe(client, admin, receiver.url("/acme"))
    receiver.default_status = 500
    put_file(client, cast.acme_member, "docs/plan.txt", b"first")
    [dead] = wait_for_deliveries(client, admin, hook["id"], "dead")
    intruder = cast.globex_admin
    own = subscribe(client, intruder, receiver.url("/globex"))

    foreign = client.post(
        intruder.url(f"webhooks/{hook['id']}/deliveries/{dead['id']}/replay"),
        headers=intruder.headers,
    )
    mixed = client.post(
        intruder.url(f"webhooks/{own['id']}/deliveries/{dead['id']}/replay"),
        headers=intruder.headers,
    )
    listed = client.get(intruder.url(f"webhooks/{hook['id']}/deliveries"), headers=intruder.headers)

    assert foreign.status_code == 404
    assert mixed.status_code == 404
    assert listed.status_code == 404
    assert (
        call(client, admin, "GET", f"webhooks/{hook['id']}/deliveries")["items"][0]["state"]
        == "dead"
    )


def test_module_off_emits_nothing(
    client: httpx.Client, cast: Cast, receiver: Receiver, jobs: JobWatcher
) -> None:
    admin = cast.acme_admin
    hook = subscribe(client, admin, receiver.url("/acme"))
    call(client, admin, "PATCH", "modules", json={"webhooks": False})

    put_file(client, cast.acme_member, "docs/while-off.txt", b"first")
    call(client, admin, "PATCH", "modules", json={"webhooks": True})
    put_file(client, cast.acme_member, "docs/while-on.txt", b"second")
    [request] = receiver.wait_for("/acme", 1)
    wait_for_deliveries(client, admin, hook["id"], "delivered")

    assert request.json()["data"]["file"]["path"] == "docs/while-on.txt"
    assert len(call(client, admin, "GET", f"webhooks/{hook['id']}/deliveries")["items"]) == 1


@pytest.mark.parametrize("level", ["sqlite-shared"], indirect=True)
def test_failing_event_store_keeps_request(
    client: httpx.Client,
    runtime: Runtime,
    cast: Cast,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hook = subscribe(client, cast.acme_admin, receiver.url("/acme"))

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("the queue is down")

    monkeypatch.setattr(runtime.jobs, "enqueue", broken)
    stored = put_file(client, cast.acme_member, "docs/plan.txt", b"first")

    assert stored["version"] == 1
    [pending] = call(client, cast.acme_admin, "GET", f"webhooks/{hook['id']}/deliveries")["items"]
    assert pending["state"] == "pending"
    assert pending["attempts"] == 0


def test_sweep_requeues_lost_delivery(
    client: httpx.Client,
    runtime: Runtime,
    cast: Cast,
    receiver: Receiver,
    jobs: JobWatcher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    admin = cast.acme_admin
    hook = subscribe(client, admin, receiver.url("/acme"))
    with monkeypatch.context() as patched:
        patched.setattr(runtime.jobs, "enqueue", lambda *_args, **_kwargs: None)
        put_file(client, cast.acme_member, "docs/plan.txt", b"first")

    too_early = sweep_stuck(runtime, cast.acme)
    later = sweep_stuck(runtime, cast.acme, now=utcnow() + dt.timedelta(hours=1))
    [delivered] = wait_for_deliveries(client, admin, hook["id"], "delivered")

    assert too_early == 0
    assert later == 1
    assert delivered["attempts"] == 1
    assert len(receiver.received_at("/acme")) == 1


# WebDAV and resumable uploads ----------------------------------------------------------


def test_webdav_put_and_delete_delivered(
    client: httpx.Client,
    runtime: Runtime,
    cast: Cast,
    receiver: Receiver,
    jobs: JobWatcher,
) -> None:
    member = cast.acme_member
    subscribe(client, cast.acme_admin, receiver.url("/acme"))
    with runtime.stores.session(member.tenant, write=True) as session:
        user = access_user_by_email(session, member.email)
        _row, password = create_app_password(session, user, "webhook tests")
    auth = httpx.BasicAuth(member.email, password)
    dav = f"/t/{member.tenant.slug}/dav/"

    created = client.put(f"{dav}notes.txt", content=b"over webdav", auth=auth)
    deleted = client.delete(f"{dav}notes.txt", auth=auth)
    received = receiver.wait_for("/acme", 2)

    assert created.status_code == 201
    assert deleted.status_code == 204
    events = [(r.headers["x-strongroom-event"], r.json()["data"]["file"]["path"]) for r in received]
    assert sorted(events) == [("file.created", "notes.txt"), ("file.deleted", "notes.txt")]


def test_tus_upload_delivered_when_complete(
    client: httpx.Client, cast: Cast, receiver: Receiver, jobs: JobWatcher
) -> None:
    member = cast.acme_member
    subscribe(client, cast.acme_admin, receiver.url("/acme"))
    tus = {**member.headers, "Tus-Resumable": "1.0.0"}
    metadata = "filename " + base64.b64encode(b"inbox/big.bin").decode()

    created = client.post(
        member.url("uploads/"),
        headers={**tus, "Upload-Length": "10", "Upload-Metadata": metadata},
    )
    append = {**tus, "Content-Type": "application/offset+octet-stream"}
    first = client.patch(
        created.headers["location"], content=b"01234", headers={**append, "Upload-Offset": "0"}
    )
    early = list(receiver.received_at("/acme"))
    last = client.patch(
        created.headers["location"], content=b"56789", headers={**append, "Upload-Offset": "5"}
    )
    [request] = receiver.wait_for("/acme", 1)

    assert created.status_code == 201
    assert first.status_code == 204
    assert last.status_code == 204
    assert early == []
    assert request.headers["x-strongroom-event"] == "file.created"
    assert request.json()["data"]["file"]["path"] == "inbox/big.bin"
    assert request.json()["data"]["file"]["size"] == 10
