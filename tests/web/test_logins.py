"""Logins of the web UI: passwords, rate limits, sessions, TOTP and recovery codes."""

from __future__ import annotations

import base64
import datetime as dt
import re
from collections.abc import Iterator

import httpx
import pyotp
import pytest
from sqlalchemy import select, update

from strongroom.base.config import Settings
from strongroom.identity import second_factors
from strongroom.identity.models import LoginRecordRow, SecondFactorRow, WebSessionRow
from strongroom.runtime import Runtime, build_runtime
from strongroom.tenancy.events import AuditEventRow
from tests.conftest import PASSWORD, Cast, Member
from tests.web.helpers import SESSION_COOKIE, WebUser, csrf_of, post_login


def enable_second_factor(runtime: Runtime, member: Member) -> tuple[pyotp.TOTP, list[str]]:
    """Turn TOTP on for the member through the identity functions; return its generator and codes."""
    with runtime.stores.session(member.tenant, write=True) as session:
        secret = second_factors.begin_enrolment(session, runtime.keyring, member.user_id)
    totp = pyotp.TOTP(secret)
    with runtime.stores.session(member.tenant, write=True) as session:
        codes = second_factors.confirm_enrolment(session, runtime.keyring, member.user_id, totp.now())
    return totp, codes


def next_code(totp: pyotp.TOTP, runtime: Runtime, member: Member) -> str:
    """Return a code the server has not accepted yet: the one of the step after the last used."""
    with runtime.stores.session(member.tenant) as session:
        factor = session.scalars(select(SecondFactorRow)).one()
    return totp.generate_otp(factor.last_used_step + 1)


def send_code(client: httpx.Client, code: str) -> httpx.Response:
    page = client.get("/t/acme/login/second-factor")
    assert page.status_code == 200, page.text
    return client.post(
        "/t/acme/login/second-factor", data={"code": code, "csrf_token": csrf_of(page.text)}
    )


def test_login_page_title_names_page(client: httpx.Client, cast: Cast) -> None:
    page = client.get("/t/acme/login")

    assert page.status_code == 200
    assert "<title>Sign in · Acme</title>" in page.text


def test_login_right_password_opens_files(client: httpx.Client, cast: Cast) -> None:
    response = post_login(client, "/t/acme", cast.acme_member.email)

    assert response.status_code == 303
    assert response.headers["location"] == "/t/acme/files/"
    assert client.get("/t/acme/files/").status_code == 200


def test_login_wrong_password_is_refused_and_counted(
    client: httpx.Client, cast: Cast, runtime: Runtime
) -> None:
    response = post_login(client, "/t/acme", cast.acme_member.email, "not the password")

    assert response.status_code == 401
    assert "wrong" in response.text
    assert SESSION_COOKIE not in client.cookies
    with runtime.stores.session(cast.acme) as session:
        record = session.scalars(select(LoginRecordRow)).one()
    assert record.user_id == cast.acme_member.user_id
    assert record.failures_since_login == 1


def test_login_unknown_address_looks_like_wrong_password(client: httpx.Client, cast: Cast) -> None:
    unknown = post_login(client, "/t/acme", "nobody@acme.test", PASSWORD)
    wrong = post_login(client, "/t/acme", cast.acme_member.email, "not the password")

    assert unknown.status_code == wrong.status_code == 401
    assert re.sub(r"value=\"[^\"]*\"", "", unknown.text) == re.sub(r"value=\"[^\"]*\"", "", wrong.text)


def test_login_next_stays_on_tenant(client: httpx.Client, cast: Cast) -> None:
    page = client.get("/t/acme/login?next=https://evil.example/")
    assert "evil.example" not in page.text

    response = post_login(client, "/t/acme", cast.acme_member.email)

    assert response.headers["location"] == "/t/acme/files/"


def test_signed_out_page_redirects_to_login(client: httpx.Client, cast: Cast) -> None:
    response = client.get("/t/acme/files/docs")

    assert response.status_code == 303
    assert response.headers["location"] == "/t/acme/login?next=/t/acme/files/docs"


def test_logout_ends_session(acme_member: WebUser) -> None:
    cookie = acme_member.cookie

    response = acme_member.post("/logout")

    assert response.status_code == 303
    replay = httpx.get(
        f"{acme_member.client.base_url}{acme_member.base}/files/", cookies={SESSION_COOKIE: cookie}
    )
    assert replay.status_code == 303
    assert "/login" in replay.headers["location"]


def logout_events(runtime: Runtime, member: Member) -> list[AuditEventRow]:
    with runtime.stores.session(member.tenant) as session:
        return list(session.scalars(select(AuditEventRow).where(AuditEventRow.action == "logout")))


def test_logout_recorded_in_audit_trail(acme_member: WebUser, runtime: Runtime) -> None:
    member = acme_member.member

    assert acme_member.post("/logout").status_code == 303

    [event] = logout_events(runtime, member)
    assert event.actor == str(member.user_id)
    assert (event.target_type, event.target_id) == ("user", str(member.user_id))
    assert event.address == "127.0.0.1"
    assert event.new == {"second_factor_pending": False}


def test_logout_without_session_not_recorded(client: httpx.Client, cast: Cast, runtime: Runtime) -> None:
    response = client.post("/t/acme/logout")

    assert response.status_code == 303
    assert logout_events(runtime, cast.acme_member) == []


def test_idle_session_ends(acme_member: WebUser, runtime: Runtime) -> None:
    idle = dt.timedelta(minutes=runtime.settings.session_idle_minutes, seconds=1)
    with runtime.stores.session(acme_member.member.tenant, write=True) as session:
        session.execute(update(WebSessionRow).values(last_seen_at=dt.datetime.now(dt.UTC) - idle))

    assert acme_member.get("/files/").status_code == 303


def test_expired_session_ends(acme_member: WebUser, runtime: Runtime) -> None:
    with runtime.stores.session(acme_member.member.tenant, write=True) as session:
        session.execute(
            update(WebSessionRow).values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )

    assert acme_member.get("/files/").status_code == 303


def test_sessions_stored_hashed(acme_member: WebUser, runtime: Runtime) -> None:
    with runtime.stores.session(acme_member.member.tenant) as session:
        hashes = list(session.scalars(select(WebSessionRow.token_hash)))

    assert hashes
    assert acme_member.cookie not in hashes


# Rate limits ----------------------------------------------------------------------------


@pytest.fixture
def strict_runtime(settings: Settings) -> Iterator[Runtime]:
    """A runtime whose login limits are small enough to reach in a test."""
    tight = settings.model_copy(
        update={"login_limit_per_account": "3/hour", "login_limit_per_address": "6/hour"}
    )
    runtime = build_runtime(tight, migrate=True)
    try:
        yield runtime
    finally:
        runtime.close()


@pytest.fixture
def runtime(strict_runtime: Runtime) -> Runtime:
    return strict_runtime


def test_account_limit_stops_guessing(client: httpx.Client, cast: Cast) -> None:
    for _ in range(3):
        assert post_login(client, "/t/acme", cast.acme_member.email, "a wrong guess").status_code == 401

    refused = post_login(client, "/t/acme", cast.acme_member.email, PASSWORD)

    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 0
    assert SESSION_COOKIE not in client.cookies


def test_account_limit_is_per_tenant(client: httpx.Client, cast: Cast) -> None:
    for _ in range(3):
        post_login(client, "/t/acme", cast.acme_admin.email, "a wrong guess")

    # The same address in globex is another account, with its own counter.
    response = post_login(client, "/t/globex", cast.globex_admin.email, PASSWORD)

    assert response.status_code == 303


def test_address_limit_stops_spraying(client: httpx.Client, cast: Cast) -> None:
    for number in range(6):
        post_login(client, "/t/acme", f"user{number}@acme.test", "a wrong guess")

    response = post_login(client, "/t/acme", cast.acme_member.email, PASSWORD)

    assert response.status_code == 429


# Second factor --------------------------------------------------------------------------


def test_totp_login_needs_code(client: httpx.Client, cast: Cast, runtime: Runtime) -> None:
    totp, _codes = enable_second_factor(runtime, cast.acme_member)

    response = post_login(client, "/t/acme", cast.acme_member.email)

    assert response.headers["location"].startswith("/t/acme/login/second-factor")
    assert client.get("/t/acme/files/").headers["location"] == "/t/acme/login/second-factor"
    done = send_code(client, next_code(totp, runtime, cast.acme_member))
    assert done.status_code == 303
    assert client.get("/t/acme/files/").status_code == 200


def test_totp_wrong_code_refused_and_counted(
    client: httpx.Client, cast: Cast, runtime: Runtime
) -> None:
    enable_second_factor(runtime, cast.acme_member)
    post_login(client, "/t/acme", cast.acme_member.email)

    response = send_code(client, "000000")

    assert response.status_code == 401
    assert client.get("/t/acme/files/").status_code == 303
    with runtime.stores.session(cast.acme) as session:
        record = session.scalars(select(LoginRecordRow)).one()
    assert record.failures_since_login == 1


def test_totp_code_cannot_be_replayed(client: httpx.Client, cast: Cast, runtime: Runtime) -> None:
    totp, _codes = enable_second_factor(runtime, cast.acme_member)
    code = next_code(totp, runtime, cast.acme_member)
    post_login(client, "/t/acme", cast.acme_member.email)
    assert send_code(client, code).status_code == 303
    client.post("/t/acme/logout", data={"csrf_token": csrf_of(client.get("/t/acme/files/").text)})

    post_login(client, "/t/acme", cast.acme_member.email)

    assert send_code(client, code).status_code == 401


def test_totp_codes_are_rate_limited(client: httpx.Client, cast: Cast, runtime: Runtime) -> None:
    totp, _codes = enable_second_factor(runtime, cast.acme_member)
    post_login(client, "/t/acme", cast.acme_member.email)
    for _ in range(3):
        send_code(client, "000000")

    response = send_code(client, next_code(totp, runtime, cast.acme_member))

    assert response.status_code == 429


def test_recovery_code_works_once(client: httpx.Client, cast: Cast, runtime: Runtime) -> None:
    _totp, codes = enable_second_factor(runtime, cast.acme_member)
    post_login(client, "/t/acme", cast.acme_member.email)
    assert send_code(client, codes[0].upper()).status_code == 303
    client.post("/t/acme/logout", data={"csrf_token": csrf_of(client.get("/t/acme/files/").text)})

    post_login(client, "/t/acme", cast.acme_member.email)

    assert send_code(client, codes[0]).status_code == 401
    assert send_code(client, codes[1]).status_code == 303


def test_totp_secret_stored_encrypted(cast: Cast, runtime: Runtime) -> None:
    totp, _codes = enable_second_factor(runtime, cast.acme_member)

    with runtime.stores.session(cast.acme) as session:
        factor = session.scalars(select(SecondFactorRow)).one()
    raw_secret = base64.b32decode(totp.secret)
    assert raw_secret not in factor.wrapped_secret
    assert totp.secret.encode() not in factor.wrapped_secret


def test_account_page_sets_up_totp(acme_member: WebUser) -> None:
    setup = acme_member.post("/account/second-factor")
    assert setup.status_code == 200
    secret = re.search(r'id="totp-secret">([^<]+)<', setup.text).group(1).replace(" ", "")
    assert "<svg" in setup.text
    assert "otpauth://totp/" in setup.text

    confirmed = acme_member.post("/account/second-factor/confirm", {"code": pyotp.TOTP(secret).now()})

    assert confirmed.status_code == 200
    assert len(re.findall(r"<li><code>[a-z2-7]{4}(?:-[a-z2-7]{4}){3}</code></li>", confirmed.text)) == 10
    assert "On." in acme_member.get("/account").text


def test_account_setup_wrong_code_keeps_it_off(acme_member: WebUser) -> None:
    acme_member.post("/account/second-factor")

    response = acme_member.post("/account/second-factor/confirm", {"code": "000000"})

    assert response.status_code == 400
    assert "Off." in acme_member.get("/account").text


def test_turning_totp_off_needs_password(acme_member: WebUser, runtime: Runtime) -> None:
    enable_second_factor(runtime, acme_member.member)

    wrong = acme_member.post("/account/second-factor/disable", {"password": "not it"})
    right = acme_member.post("/account/second-factor/disable", {"password": PASSWORD})

    assert wrong.status_code == 401
    assert right.status_code == 303
    assert "Off." in acme_member.get("/account").text
