"""Take screenshots of the main pages of the web UI into a folder (default docs/screenshots).

Run from the repository: `.venv/bin/python -m tests.web.screenshots [FOLDER]`. It makes a
tenant with a few files in a temporary data directory, serves it on 127.0.0.1 and
drives Debian's Chromium (/usr/bin/chromium) through the pages.
"""

from __future__ import annotations

import base64
import os
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from strongroom.base.config import load_settings
from strongroom.identity.users import create_user
from strongroom.runtime import build_runtime
from strongroom.tenancy import branding
from strongroom.tenancy.events import OPERATOR
from strongroom.tenancy.lifecycle import provision_tenant
from tests.conftest import PASSWORD, LiveServer, Member
from tests.web.helpers import sign_in

FILES = {
    "Contracts/2026/supply-agreement.pdf": 48_211,
    "Contracts/2026/nda-acme.pdf": 12_873,
    "Contracts/templates/engagement-letter.docx": 30_554,
    "Finance/budget-2027.xlsx": 88_120,
    "Finance/invoices/inv-0042.pdf": 9_310,
    "Team/onboarding.md": 4_096,
    "board-minutes-november.pdf": 131_072,
}


def make_site(data_dir: Path) -> tuple[object, Member, Member]:
    settings = load_settings(
        data_dir=data_dir,
        master_key=base64.b64encode(os.urandom(32)).decode(),
        log_level="warning",
    )
    runtime = build_runtime(settings, migrate=True)
    tenant = provision_tenant(
        runtime.catalog, runtime.stores, "northwind", "Northwind", 5 * 1024**3, "shared"
    )
    branding.set_branding(
        runtime.catalog, runtime.stores, tenant, OPERATOR, "Northwind Legal", "#2f5d50"
    )
    members = []
    with runtime.stores.session(tenant, write=True) as session:
        for email, role in (("ada@northwind.example", "admin"), ("ben@northwind.example", "member")):
            user = create_user(session, email, PASSWORD, role=role)
            members.append(Member(tenant, email, role, user.id, ""))
    return runtime, members[0], members[1]


def fill_files(server: LiveServer, admin: Member) -> None:
    user = sign_in(server.url, admin)
    for path, size in FILES.items():
        user.upload(path, os.urandom(size))
    user.upload("Team/onboarding.md", b"# Onboarding\n\nWelcome to Northwind.\n")
    user.upload("draft-old.txt", b"an old draft")
    user.post("/delete/draft-old.txt")
    user.client.close()


def log_in(page: Page, server: LiveServer, member: Member) -> None:
    page.goto(f"{server.url}/t/northwind/login")
    page.get_by_label("E-mail address").fill(member.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{server.url}/t/northwind/files/")


def shoot(page: Page, url: str, folder: Path, name: str) -> None:
    page.goto(url)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def main(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as data:
        runtime, admin, _member = make_site(Path(data))
        server = LiveServer(runtime)
        server.start()
        try:
            fill_files(server, admin)
            base = f"{server.url}/t/northwind"
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path="/usr/bin/chromium",
                    args=["--no-sandbox"] if os.geteuid() == 0 else [],
                )
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                shoot(page, f"{base}/login", folder, "login")
                log_in(page, server, admin)
                shoot(page, f"{base}/files/", folder, "files")
                shoot(page, f"{base}/files/Contracts/2026", folder, "folder")
                shoot(page, f"{base}/files/Team/onboarding.md", folder, "file-versions")
                shoot(page, f"{base}/trash", folder, "trash")
                shoot(page, f"{base}/admin/users", folder, "admin-users")
                shoot(page, f"{base}/admin/settings", folder, "admin-settings")
                shoot(page, f"{base}/admin/usage", folder, "admin-usage")
                shoot(page, f"{base}/admin/rules", folder, "admin-rules")
                shoot(page, f"{base}/admin/groups", folder, "admin-groups")
                shoot(page, f"{base}/sharing/Finance/budget-2027.xlsx", folder, "sharing")
                page.goto(f"{base}/account")
                page.get_by_role("button", name="Set up two-step verification").click()
                page.locator("#totp-secret").wait_for()
                page.screenshot(path=str(folder / "two-step-setup.png"), full_page=True)
                browser.close()
        finally:
            server.stop()
            runtime.close()
    print(f"screenshots written to {folder}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots"))
