"""The webhook admin API: create, list, show, change, delete, with its checks and permissions."""

from __future__ import annotations

import datetime as dt
import uuid

import httpx
import pytest
from sqlalchemy import select

from strongroom.runtime import Runtime
from strongroom.tenancy.models import utcnow
from strongroom.webhooks.models import WebhookRow
from strongroom.webhooks.subscriptions import RetiredSecret, SigningSecrets, rotate_secret
from tests.conftest import Cast
from tests.webhooks.conftest import Receiver, call, subscribe

PROBLEM = "application/problem+json"


def test_create_returns_secret_once(client: httpx.Client, cast: Cast, receiver: Receiver) -> None:
    admin = cast.acme_admin

    created = subscribe(client, admin, receiver.url("/acme"), ["file.created", "link.created"])
    shown = call(client, admin, "GET", f"webhooks/{created['id']}")
    listed = call(client, admin, "GET", "webhooks")["items"]

    assert created["secret"].startswith("whsec_")
    assert len(created["secret"]) > 40
    assert created["events"] == ["file.created", "link.created"]
    assert created["active"] is True
    assert created["created_by"] == str(admin.user_id)
    assert "secret" not in shown
    assert [item["id"] for item in listed] == [created["id"]]
    assert all("secret" not in item for item in listed)


def test_secret_is_stored_encrypted(
    client: httpx.Client, runtime: Runtime, cast: Cast, receiver: Receiver
) -> None:
    created = subscribe(client, cast.acme_admin, receiver.url("/acme"))

    with runtime.stores.session(cast.acme) as session:
        row = session.scalars(select(WebhookRow)).one()

    assert created["secret"].encode() not in row.wrapped_secret
    assert row.key_version >= 1


def test_rotate_secret_returns_new_one_once(
    client: httpx.Client, runtime: Runtime, cast: Cast, receiver: Receiver
) -> None:
    admin = cast.acme_admin
    created = subscribe(client, admin, receiver.url("/acme"))

    before = utcnow()
    rotated = client.post(admin.url(f"webhooks/{created['id']}/secret"), headers=admin.headers)
    shown = call(client, admin, "GET", f"webhooks/{created['id']}")
    [event] = call(client, admin, "GET", "audit?action=webhook_secret_rotated")["items"]
    trail = client.get(admin.url("audit/export"), headers=admin.headers).text
    with runtime.stores.session(cast.acme) as session:
        row = session.scalars(select(WebhookRow)).one()

    assert rotated.status_code == 200, rotated.text
    body = rotated.json()
    assert body["webhook_id"] == created["id"]
    assert body["secret"].startswith("whsec_")
    assert body["secret"] != created["secret"]
    overlap = dt.datetime.fromisoformat(body["previous_secret_expires"]) - before
    assert dt.timedelta(hours=23, minutes=59) < overlap < dt.timedelta(hours=24, minutes=1)
    assert "secret" not in shown
    assert shown["modified"] != created["modified"]
    assert event["actor"] == str(admin.user_id)
    assert event["new"]["webhook_id"] == created["id"]
    assert event["new"]["overlap_hours"] == 24
    for secret in (created["secret"], body["secret"]):
        assert secret not in trail
        assert secret.encode() not in row.wrapped_secret


def test_second_rotation_keeps_first_overlap(
    client: httpx.Client, cast: Cast, receiver: Receiver
) -> None:
    admin = cast.acme_admin
    created = subscribe(client, admin, receiver.url("/acme"))
    rotate = f"webhooks/{created['id']}/secret"

    first = call(client, admin, "POST", rotate, json={"overlap_hours": 24})
    second = call(client, admin, "POST", rotate, json={"overlap_hours": 1})
    [latest, earlier] = call(client, admin, "GET", "audit?action=webhook_secret_rotated")["items"]

    promised = dt.datetime.fromisoformat(first["previous_secret_expires"])
    ends = [dt.datetime.fromisoformat(end) for end in second["retired_secrets_expire"]]
    assert first["retired_secrets_expire"] == [first["previous_secret_expires"]]
    assert ends[0] == dt.datetime.fromisoformat(second["previous_secret_expires"])
    assert ends[1] == promised
    assert ends[0] < ends[1]
    assert earlier["new"]["retired_secrets_expire"] == [promised.isoformat()]
    assert latest["new"]["retired_secrets_expire"] == [end.isoformat() for end in ends]


def test_rotation_beyond_kept_secrets_is_409(
    client: httpx.Client, cast: Cast, receiver: Receiver
) -> None:
    admin = cast.acme_admin
    created = subscribe(client, admin, receiver.url("/acme"))
    rotate = f"webhooks/{created['id']}/secret"
    rotations = [
        call(client, admin, "POST", rotate, json={"overlap_hours": hours})
        for hours in (2, 24, 24, 24)
    ]

    rejected = client.post(admin.url(rotate), headers=admin.headers, json={"overlap_hours": 24})
    trail = call(client, admin, "GET", "audit?action=webhook_secret_rotated")["items"]
    emergency = call(client, admin, "POST", rotate, json={"overlap_hours": 0})

    oldest_end = dt.datetime.fromisoformat(rotations[0]["previous_secret_expires"])
    assert len(rotations[-1]["retired_secrets_expire"]) == 4
    assert rejected.status_code == 409, rejected.text
    assert rejected.headers["content-type"] == PROBLEM
    problem = rejected.json()
    assert dt.datetime.fromisoformat(problem["retry_at"]) == oldest_end
    assert f"rotate again after {oldest_end.isoformat()}" in problem["detail"]
    assert "overlap_hours 0" in problem["detail"]
    assert 7000 < int(rejected.headers["retry-after"]) <= 7200
    assert len(trail) == 4
    assert emergency["previous_secret_expires"] is None
    assert emergency["retired_secrets_expire"] == []


def test_rotation_forgets_ended_overlaps(
    client: httpx.Client, runtime: Runtime, cast: Cast, receiver: Receiver
) -> None:
    created = subscribe(client, cast.acme_admin, receiver.url("/acme"))
    webhook_id = uuid.UUID(created["id"])
    now = utcnow()

    with runtime.stores.session(cast.acme, write=True) as session:
        # Four rotations two days ago, whose one-hour overlaps are over, leave room for more.
        for hours_ago in (50, 49, 48, 47):
            rotate_secret(
                session,
                runtime.keyring,
                webhook_id,
                dt.timedelta(hours=1),
                now=now - dt.timedelta(hours=hours_ago),
            )
        _webhook, _secret, in_force = rotate_secret(
            session, runtime.keyring, webhook_id, dt.timedelta(hours=1), now=now
        )

    assert [retired.until for retired in in_force.retired] == [now + dt.timedelta(hours=1)]


def test_signing_secrets_read_single_previous_form() -> None:
    until = dt.datetime(2026, 12, 5, 12, 0, tzinfo=dt.UTC)
    stored = (
        b'{"current":"whsec_new","previous":"whsec_old","previous_until":"'
        + until.isoformat().encode()
        + b'"}'
    )

    secrets = SigningSecrets.decode(stored)
    again = SigningSecrets.decode(secrets.encode())

    assert secrets == SigningSecrets("whsec_new", (RetiredSecret("whsec_old", until),))
    assert again == secrets
    assert secrets.in_use(until - dt.timedelta(seconds=1)) == ("whsec_new", "whsec_old")
    assert secrets.in_use(until) == ("whsec_new",)
    assert SigningSecrets.decode(b"whsec_bare") == SigningSecrets("whsec_bare")


def test_rotate_secret_rejects_bad_overlap(
    client: httpx.Client, cast: Cast, receiver: Receiver
) -> None:
    admin = cast.acme_admin
    created = subscribe(client, admin, receiver.url("/acme"))

    replies = [
        client.post(
            admin.url(f"webhooks/{created['id']}/secret"),
            headers=admin.headers,
            json={"overlap_hours": hours},
        )
        for hours in (-1, 169, True, "24")
    ]
    trail = call(client, admin, "GET", "audit?action=webhook_secret_rotated")["items"]

    for reply in replies:
        assert reply.status_code == 400, reply.text
        assert reply.json()["detail"].startswith("overlap_hours: ")
    assert trail == []


def test_events_listed_in_documented_order(
    client: httpx.Client, cast: Cast, receiver: Receiver
) -> None:
    created = subscribe(
        client,
        cast.acme_admin,
        receiver.url("/acme"),
        ["link.created", "file.created", "file.created"],
    )

    assert created["events"] == ["file.created", "link.created"]


def test_update_changes_given_fields(client: httpx.Client, cast: Cast, receiver: Receiver) -> None:
    admin = cast.acme_admin
    created = subscribe(client, admin, receiver.url("/acme"))

    changed = call(client, admin, "PATCH", f"webhooks/{created['id']}", json={"active": False})
    moved = call(
        client,
        admin,
        "PATCH",
        f"webhooks/{created['id']}",
        json={"url": receiver.url("/other"), "events": ["file.deleted"]},
    )

    assert changed["active"] is False
    assert changed["url"] == created["url"]
    assert moved["url"] == receiver.url("/other")
    assert moved["events"] == ["file.deleted"]
    assert moved["active"] is False


def test_delete_removes_webhook(client: httpx.Client, cast: Cast, receiver: Receiver) -> None:
    admin = cast.acme_admin
    created = subscribe(client, admin, receiver.url("/acme"))

    deleted = client.delete(admin.url(f"webhooks/{created['id']}"), headers=admin.headers)
    again = client.get(admin.url(f"webhooks/{created['id']}"), headers=admin.headers)

    assert deleted.status_code == 204
    assert again.status_code == 404
    assert call(client, admin, "GET", "webhooks")["items"] == []


# Invalid input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ftp://hooks.example.test/in", "use http or https"),
        ("hooks.example.test/in", "use http or https"),
        ("http:///in", "has no host"),
        ("https://user:secret@hooks.example.test/in", "user name or password"),
        ("https://hooks.example.test:99999/in", "is not a valid URL"),
        ("https://hooks.example.test/in#part", "fragment"),
        ("https://hooks.example.test/" + "a" * 2000, "use at most 2000"),
    ],
)
def test_create_rejects_bad_url(client: httpx.Client, cast: Cast, url: str, expected: str) -> None:
    admin = cast.acme_admin

    response = client.post(
        admin.url("webhooks"), headers=admin.headers, json={"url": url, "events": ["file.created"]}
    )

    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == PROBLEM
    assert expected in response.json()["detail"]


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        (["file.exploded"], "unknown event type 'file.exploded'"),
        ([], "at least one event type"),
    ],
)
def test_create_rejects_bad_events(
    client: httpx.Client, cast: Cast, receiver: Receiver, events: list[str], expected: str
) -> None:
    admin = cast.acme_admin

    response = client.post(
        admin.url("webhooks"),
        headers=admin.headers,
        json={"url": receiver.url("/x"), "events": events},
    )

    assert response.status_code == 400, response.text
    assert expected in response.json()["detail"]
    assert "file.created" in response.json()["detail"]


def test_update_rejects_bad_url(client: httpx.Client, cast: Cast, receiver: Receiver) -> None:
    admin = cast.acme_admin
    created = subscribe(client, admin, receiver.url("/acme"))

    response = client.patch(
        admin.url(f"webhooks/{created['id']}"), headers=admin.headers, json={"url": "gopher://x"}
    )

    assert response.status_code == 400
    assert call(client, admin, "GET", f"webhooks/{created['id']}")["url"] == created["url"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/in",
        "http://10.1.2.3/in",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/in",
        "http://[::ffff:127.0.0.1]/in",
        "http://localhost:8080/in",
        "http://api.localhost/in",
    ],
)
def test_private_addresses_rejected_when_blocked(
    client: httpx.Client, runtime: Runtime, cast: Cast, url: str
) -> None:
    runtime.settings.webhook_block_private_addresses = True
    admin = cast.acme_admin

    response = client.post(
        admin.url("webhooks"), headers=admin.headers, json={"url": url, "events": ["file.created"]}
    )

    assert response.status_code == 400, response.text
    assert "is not allowed" in response.json()["detail"]


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("127.000.000.001", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("127.0.0.1%2509", "127.0.0.1"),
        ("0x0a.1", "10.0.0.1"),
    ],
)
def test_other_address_spellings_rejected(
    client: httpx.Client, runtime: Runtime, cast: Cast, host: str, address: str
) -> None:
    runtime.settings.webhook_block_private_addresses = True
    admin = cast.acme_admin
    url = f"http://{host}:18526/h"

    response = client.post(
        admin.url("webhooks"), headers=admin.headers, json={"url": url, "events": ["file.created"]}
    )

    assert response.status_code == 400, response.text
    assert response.json()["detail"] == (
        f"the webhook URL {url!r} is not allowed because {address} is not a public address; "
        "use a public address, or ask the operator to allow private addresses for webhooks"
    )


def test_update_rejects_other_address_spelling(
    client: httpx.Client, runtime: Runtime, cast: Cast
) -> None:
    runtime.settings.webhook_block_private_addresses = True
    admin = cast.acme_admin
    created = subscribe(client, admin, "https://hooks.example.test/in")

    response = client.patch(
        admin.url(f"webhooks/{created['id']}"),
        headers=admin.headers,
        json={"url": "http://2130706433/h"},
    )

    assert response.status_code == 400, response.text
    assert "127.0.0.1 is not a public address" in response.json()["detail"]
    assert call(client, admin, "GET", f"webhooks/{created['id']}")["url"] == created["url"]


@pytest.mark.parametrize(
    "host",
    ["hooks_in.example.test", "-hooks.example.test", "hooks..example.test", "1.2.3.999", "a%25b.test"],
)
def test_invalid_host_names_rejected(client: httpx.Client, cast: Cast, host: str) -> None:
    admin = cast.acme_admin

    response = client.post(
        admin.url("webhooks"),
        headers=admin.headers,
        json={"url": f"https://{host}/in", "events": ["file.created"]},
    )

    assert response.status_code == 400, response.text
    assert "is neither an IP address nor a valid DNS name" in response.json()["detail"]


def test_legacy_address_allowed_when_private_allowed(client: httpx.Client, cast: Cast) -> None:
    admin = cast.acme_admin

    response = client.post(
        admin.url("webhooks"),
        headers=admin.headers,
        json={"url": "http://10.1/in", "events": ["file.created"]},
    )

    assert response.status_code == 201, response.text


def test_blocked_networks_apply_even_when_private_allowed(
    client: httpx.Client, runtime: Runtime, cast: Cast
) -> None:
    runtime.settings.webhook_blocked_networks = "192.0.2.0/24"
    admin = cast.acme_admin

    blocked = client.post(
        admin.url("webhooks"),
        headers=admin.headers,
        json={"url": "http://192.0.2.10/in", "events": ["file.created"]},
    )
    allowed = client.post(
        admin.url("webhooks"),
        headers=admin.headers,
        json={"url": "http://10.0.0.1/in", "events": ["file.created"]},
    )

    assert blocked.status_code == 400
    assert "blocked network 192.0.2.0/24" in blocked.json()["detail"]
    assert allowed.status_code == 201, allowed.text


# Permissions and tenants ----------------------------------------------------------------


def webhook_requests(webhook_id: str, delivery_id: str) -> list[tuple[str, str, dict]]:
    body = {"url": "https://hooks.example.test/in", "events": ["file.created"]}
    return [
        ("POST", "webhooks", {"json": body}),
        ("GET", "webhooks", {}),
        ("GET", f"webhooks/{webhook_id}", {}),
        ("PATCH", f"webhooks/{webhook_id}", {"json": {"active": False}}),
        ("GET", f"webhooks/{webhook_id}/deliveries", {}),
        ("POST", f"webhooks/{webhook_id}/deliveries/{delivery_id}/replay", {}),
        ("POST", f"webhooks/{webhook_id}/secret", {"json": {"overlap_hours": 0}}),
        ("DELETE", f"webhooks/{webhook_id}", {}),
    ]


def test_member_gets_403(client: httpx.Client, cast: Cast, receiver: Receiver) -> None:
    created = subscribe(client, cast.acme_admin, receiver.url("/acme"))
    member = cast.acme_member

    for method, path, options in webhook_requests(created["id"], str(uuid.uuid4())):
        response = client.request(method, member.url(path), headers=member.headers, **options)

        assert response.status_code == 403, f"{method} {path}"
        assert "admin role" in response.json()["detail"]
    assert call(client, cast.acme_admin, "GET", f"webhooks/{created['id']}")["active"] is True


def test_module_off_gets_403(client: httpx.Client, cast: Cast, receiver: Receiver) -> None:
    admin = cast.acme_admin
    created = subscribe(client, admin, receiver.url("/acme"))
    call(client, admin, "PATCH", "modules", json={"webhooks": False})

    for method, path, options in webhook_requests(created["id"], str(uuid.uuid4())):
        response = client.request(method, admin.url(path), headers=admin.headers, **options)

        assert response.status_code == 403, f"{method} {path}"
        assert response.json()["type"].endswith("module-disabled")
        assert "webhooks module is off" in response.json()["detail"]


def test_module_off_spares_other_tenant(
    client: httpx.Client, cast: Cast, receiver: Receiver
) -> None:
    call(client, cast.acme_admin, "PATCH", "modules", json={"webhooks": False})

    created = subscribe(client, cast.globex_admin, receiver.url("/globex"))

    assert created["id"]


def test_other_tenant_ids_are_not_found(
    client: httpx.Client, cast: Cast, receiver: Receiver
) -> None:
    acme_hook = subscribe(client, cast.acme_admin, receiver.url("/acme"))
    intruder = cast.globex_admin
    subscribe(client, intruder, receiver.url("/globex"))

    for method, path, options in webhook_requests(acme_hook["id"], str(uuid.uuid4()))[2:]:
        response = client.request(method, intruder.url(path), headers=intruder.headers, **options)

        assert response.status_code == 404, f"{method} {path}"
        assert response.headers["content-type"] == PROBLEM
    assert call(client, cast.acme_admin, "GET", f"webhooks/{acme_hook['id']}") == {
        key: value for key, value in acme_hook.items() if key != "secret"
    }
    listed = call(client, intruder, "GET", "webhooks")["items"]
    assert acme_hook["id"] not in [item["id"] for item in listed]


def test_malformed_ids_are_not_found(client: httpx.Client, cast: Cast) -> None:
    admin = cast.acme_admin

    response = client.get(admin.url("webhooks/not-an-id/deliveries"), headers=admin.headers)

    assert response.status_code == 404
    assert "not-an-id" in response.json()["detail"]


def test_unknown_state_filter_is_400(client: httpx.Client, cast: Cast, receiver: Receiver) -> None:
    admin = cast.acme_admin
    created = subscribe(client, admin, receiver.url("/acme"))

    response = client.get(
        admin.url(f"webhooks/{created['id']}/deliveries?state=lost"), headers=admin.headers
    )

    assert response.status_code == 400
    assert "unknown delivery state 'lost'" in response.json()["detail"]
