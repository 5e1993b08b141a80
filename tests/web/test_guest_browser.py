"""A guest's whole visit in a real browser: invitation e-mail, password, shared files, logout.

The member invites and shares through the REST API, as a script would; the
guest does everything else in Debian's Chromium driven by Playwright. The
invitation goes through the test SMTP server on 127.0.0.1, and the test
follows the link it carries. SQLite only, as the other browser tests: the API
tests cover the same functions on every level.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select

from strongroom.base.config import Settings
from strongroom.runtime import Runtime
from strongroom.tenancy.events import AuditEventRow
from tests.conftest import Cast, LiveServer, Member
from tests.services.smtp import Mailbox, SmtpServer
from tests.web.test_browser_ui import page  # noqa: F401 - the fixture of a fresh browser context

pytestmark = pytest.mark.parametrize("level", ["sqlite-shared"], indirect=True)

GUEST_EMAIL = "visitor@partner.example"
GUEST_PASSWORD = "a guest's long password"
PLAN = b"the plans for Tuesday, shared with the visitor"
INVITE_LINK = re.compile(r"https?://\S+/invite/[A-Za-z0-9_-]+")


@pytest.fixture
def settings(settings: Settings, smtp_server: SmtpServer) -> Settings:
    """The test settings, with invitations sent to the test SMTP server."""
    return settings.model_copy(
        update={"smtp_host": smtp_server.host, "smtp_port": smtp_server.port, "smtp_starttls": False}
    )


@pytest.fixture
def api(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, timeout=30) as client:
        yield client


def invite_and_share(api: httpx.Client, member: Member) -> str:
    """Store docs/plan.txt, invite the guest, share docs with them; return the guest's id."""
    stored = api.put(member.url("files/docs/plan.txt"), headers=member.headers, content=PLAN)
    assert stored.status_code in (200, 201), stored.text
    invited = api.post(member.url("guests"), headers=member.headers, json={"email": GUEST_EMAIL})
    assert invited.status_code == 201, invited.text
    guest_id = invited.json()["id"]
    shared = api.post(
        member.url("shares"),
        headers=member.headers,
        json={"path": "docs", "user_id": guest_id, "permission": "read"},
    )
    assert shared.status_code == 201, shared.text
    return guest_id


def invitation_link(mailbox: Mailbox) -> str:
    [mail] = mailbox.wait_for(1)
    found = INVITE_LINK.search(mail.message.get_content())
    assert found, mail.message.get_content()
    return found.group(0)


def actions_of(runtime: Runtime, cast: Cast, actor: str) -> list[str]:
    with runtime.stores.session(cast.acme) as session:
        query = select(AuditEventRow.action).where(AuditEventRow.actor == actor)
        return list(session.scalars(query.order_by(AuditEventRow.occurred_at)))


def test_guest_visit_from_invitation_to_logout(
    page: object,  # noqa: F811 - the fixture imported above
    api: httpx.Client,
    runtime: Runtime,
    live_server: LiveServer,
    cast: Cast,
    mailbox: Mailbox,
    tmp_path: object,
) -> None:
    base = f"{live_server.url}/t/acme"
    guest_id = invite_and_share(api, cast.acme_member)
    link = invitation_link(mailbox)

    # Two different passwords: the form shows an error and keeps the invitation open.
    page.goto(link)
    page.get_by_text(GUEST_EMAIL).wait_for()
    page.get_by_label("Password", exact=True).fill(GUEST_PASSWORD)
    page.get_by_label("The same password again").fill("another password entirely")
    page.get_by_role("button", name="Set my password").click()
    page.get_by_role("alert").filter(has_text="the two passwords differ").wait_for()
    # The browser and htmx report that 400 on the console, as they should.
    assert any("400" in error for error in page.console_errors)
    page.console_errors.clear()

    # The same password twice sets it and leads to the login page.
    page.get_by_label("Password", exact=True).fill(GUEST_PASSWORD)
    page.get_by_label("The same password again").fill(GUEST_PASSWORD)
    page.get_by_role("button", name="Set my password").click()
    page.wait_for_url(re.compile(re.escape(f"{base}/login")))

    # The link works once. The requests below share the page's cookies, and a 4xx page
    # opened in the tab itself would log a console error, which the page fixture rejects.
    assert page.request.get(link).status == 404

    # The guest logs in and lands on what is shared with them.
    page.goto(f"{base}/login")
    page.get_by_label("E-mail address").fill(GUEST_EMAIL)
    page.get_by_label("Password").fill(GUEST_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}/shared/")
    page.locator("#shared").get_by_role("link", name="docs").click()
    page.get_by_role("link", name="Download plan.txt").wait_for()

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download plan.txt").click()
    saved = tmp_path / "plan.txt"  # type: ignore[operator]
    download_info.value.save_as(saved)
    assert saved.read_bytes() == PLAN

    # The member's own pages stay closed to the guest.
    assert page.request.get(f"{base}/files/", max_redirects=0).status == 403

    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile(re.escape(f"{base}/login")))

    assert actions_of(runtime, cast, guest_id) == ["guest_invitation_accepted", "login", "logout"]
    assert "guest_invited" in actions_of(runtime, cast, str(cast.acme_member.user_id))
