"""The web UI in a real browser: Debian's Chromium driven by Playwright, against a live server.

One browser serves the whole session and each test opens its own context
(its own cookies). The tests run on SQLite only, because the pages call the
same drive functions that the API tests cover on every level.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest

from strongroom.runtime import Runtime
from tests.conftest import PASSWORD, Cast, LiveServer, Member
from tests.web.test_logins import enable_second_factor, next_code

pytestmark = pytest.mark.parametrize("level", ["sqlite-shared"], indirect=True)

TIMEOUT_MS = 15_000


@pytest.fixture
def page(chromium: object, live_server: LiveServer) -> Iterator[object]:
    """A page in a fresh browser context, closed before the server waits for idle connections."""
    context = chromium.new_context(accept_downloads=True)  # type: ignore[attr-defined]
    context.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page = context.new_page()
    page.console_errors = errors  # type: ignore[attr-defined]
    page.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    try:
        yield page
    finally:
        context.close()
    # A script blocked by the CSP, or one that failed, shows up as a console error.
    assert errors == []


def log_in(page: object, server: LiveServer, member: Member, password: str = PASSWORD) -> None:
    page.goto(f"{server.url}/t/{member.tenant.slug}/login")
    page.get_by_label("E-mail address").fill(member.email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def test_upload_download_rename_delete_restore_logout(
    page: object, live_server: LiveServer, cast: Cast, tmp_path: Path
) -> None:
    base = f"{live_server.url}/t/acme"
    log_in(page, live_server, cast.acme_member)
    page.wait_for_url(f"{base}/files/")

    # Upload with the file picker; the bar shows the bytes sent.
    content = bytes(range(256)) * 8192  # 2 MiB
    source = tmp_path / "report.bin"
    source.write_bytes(content)
    page.get_by_label("Choose files").set_input_files(str(source))
    page.get_by_role("status").filter(has_text="Uploaded 1 file.").wait_for()
    assert page.locator("#upload-progress").evaluate("bar => bar.value") == 100
    page.locator("#listing").get_by_role("link", name="report.bin", exact=True).wait_for()

    # Download returns the same bytes.
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download report.bin").click()
    saved = tmp_path / "downloaded.bin"
    download_info.value.save_as(saved)
    assert hashlib.sha256(saved.read_bytes()).digest() == hashlib.sha256(content).digest()

    # Drag and drop a second file onto the drop zone.
    page.evaluate(
        """() => {
            const data = new DataTransfer();
            data.items.add(new File(["dropped words"], "dropped.txt", {type: "text/plain"}));
            const zone = document.getElementById("drop-zone");
            zone.dispatchEvent(new DragEvent("drop", {dataTransfer: data, bubbles: true, cancelable: true}));
        }"""
    )
    page.locator("#listing").get_by_role("link", name="dropped.txt", exact=True).wait_for()

    # Rename through the row's disclosure, by keyboard.
    page.get_by_text("Rename", exact=True).first.focus()
    page.keyboard.press("Enter")
    field = page.locator("#listing details[open]").get_by_label("New name")
    field.fill("renamed.txt")
    field.press("Enter")
    page.wait_for_url(f"{base}/files/?done=renamed")
    page.locator("#listing").get_by_role("link", name="renamed.txt", exact=True).wait_for()

    # Delete, then restore from the trash.
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete renamed.txt").click()
    page.wait_for_url(f"{base}/files/?done=deleted")
    assert page.locator("#listing").get_by_role("link", name="renamed.txt", exact=True).count() == 0
    page.get_by_role("link", name="Trash").click()
    page.get_by_role("button", name="Restore renamed.txt").click()
    page.wait_for_url(f"{base}/trash?done=restored")
    page.get_by_role("link", name="Files", exact=True).first.click()
    page.locator("#listing").get_by_role("link", name="renamed.txt", exact=True).wait_for()

    # Log out; the files are out of reach again.
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(f"{base}/login")
    page.goto(f"{base}/files/")
    assert page.get_by_role("heading", name="Log in to Acme").is_visible()


def test_new_user_shares_and_sends_a_link(
    page: object, chromium: object, live_server: LiveServer, cast: Cast, tmp_path: Path
) -> None:
    base = f"{live_server.url}/t/acme"
    log_in(page, live_server, cast.acme_member)
    page.wait_for_url(f"{base}/files/")

    # Upload a file.
    content = b"the figures of the quarter\n" * 1000
    source = tmp_path / "figures.txt"
    source.write_bytes(content)
    page.get_by_label("Choose files").set_input_files(str(source))
    page.get_by_role("status").filter(has_text="Uploaded 1 file.").wait_for()

    # Share it with a colleague to read.
    page.get_by_role("link", name="Share figures.txt").click()
    page.wait_for_url(f"{base}/sharing/figures.txt")
    page.get_by_label("Share with").select_option(label=cast.acme_admin.email)
    page.get_by_role("button", name="Share", exact=True).click()
    page.wait_for_url(f"{base}/sharing/figures.txt?done=shared")
    assert page.locator("#shares").get_by_text(cast.acme_admin.email).is_visible()

    # Create a public link with a download limit; its URL shows once.
    page.get_by_label("Maximum downloads (optional)").fill("3")
    page.get_by_role("button", name="Create link").click()
    url = page.get_by_label("Link", exact=True).input_value()
    assert url.startswith(f"{base}/s/")

    # Someone else, in a browser with no session, downloads through the link.
    other = chromium.new_context(accept_downloads=True)  # type: ignore[attr-defined]
    try:
        visitor = other.new_page()
        visitor.goto(url)
        with visitor.expect_download() as download_info:
            visitor.get_by_role("link", name="Download").click()
        saved = tmp_path / "via-link.txt"
        download_info.value.save_as(saved)
    finally:
        other.close()
    assert saved.read_bytes() == content

    # Log out.
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(f"{base}/login")


def test_login_with_totp(
    page: object, live_server: LiveServer, cast: Cast, runtime: Runtime
) -> None:
    totp, _codes = enable_second_factor(runtime, cast.acme_member)

    log_in(page, live_server, cast.acme_member)
    page.get_by_label("Code").fill(next_code(totp, runtime, cast.acme_member))
    page.get_by_role("button", name="Verify").click()

    page.wait_for_url(f"{live_server.url}/t/acme/files/")
    assert page.get_by_role("heading", name="Files").is_visible()


def test_totp_set_up_in_browser(page: object, live_server: LiveServer, cast: Cast) -> None:
    log_in(page, live_server, cast.acme_member)
    page.get_by_role("link", name="Account").click()
    page.wait_for_url(f"{live_server.url}/t/acme/account")
    page.get_by_role("button", name="Set up two-step verification").click()

    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    assert page.locator(".qr svg").count() == 1
    page.get_by_label("6-digit code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on").click()

    page.locator("#recovery-codes").wait_for()
    assert page.locator("#recovery-codes li").count() == 10


def test_admin_adds_user_sets_branding(page: object, live_server: LiveServer, cast: Cast) -> None:
    base = f"{live_server.url}/t/acme"
    log_in(page, live_server, cast.acme_admin)
    page.get_by_role("link", name="Users").click()
    page.wait_for_url(f"{base}/admin/users")
    page.get_by_label("E-mail address").fill("carol@acme.test")
    page.get_by_role("button", name="Add user").click()
    page.locator("#created-password").wait_for()
    assert (
        page.locator("#users").get_by_role("cell", name="carol@acme.test", exact=True).is_visible()
    )

    page.get_by_role("link", name="Settings").click()
    page.wait_for_url(f"{base}/admin/settings")
    page.get_by_label("Display name").fill("Acme Vault")
    page.get_by_label("Colour").fill("#7a1f5c")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(f"{base}/admin/settings?done=branding-saved")

    page.goto(f"{base}/files/")
    assert page.locator(".brand-name").inner_text() == "Acme Vault"
    colour = page.locator(".brand-bar").evaluate("bar => getComputedStyle(bar).backgroundColor")
    assert colour == "rgb(122, 31, 92)"


def test_form_without_csrf_token_403(page: object, live_server: LiveServer, cast: Cast) -> None:
    log_in(page, live_server, cast.acme_member)
    page.get_by_label("New folder").wait_for()

    # A forged form carries neither the hidden field nor the header htmx adds.
    page.evaluate(
        """() => {
            document.body.removeAttribute("hx-headers");
            document.body.setAttribute("hx-boost", "false");
            document.querySelectorAll('input[name="csrf_token"]').forEach(field => field.remove());
        }"""
    )
    page.get_by_label("New folder").fill("forged")
    with page.expect_response(lambda response: "/new-folder/" in response.url) as answer:
        page.get_by_role("button", name="Create").click()

    assert answer.value.status == 403
    assert page.get_by_role("heading", name="Form expired or sent from another site").is_visible()
    # The browser and htmx report the 403 on the console, as they should.
    page.console_errors.clear()


def test_cookie_replayed_on_other_tenant(page: object, live_server: LiveServer, cast: Cast) -> None:
    log_in(page, live_server, cast.acme_admin)
    page.wait_for_url(f"{live_server.url}/t/acme/files/")
    [cookie] = [c for c in page.context.cookies() if c["name"] == "strongroom_session"]

    page.context.add_cookies([{**cookie, "path": "/t/globex"}])
    page.goto(f"{live_server.url}/t/globex/files/")

    assert page.url.startswith(f"{live_server.url}/t/globex/login")
    assert page.get_by_role("heading", name="Log in to Globex").is_visible()
