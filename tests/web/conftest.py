"""Fixtures of the web UI tests: signed-in users of the cast, and one Chromium for the session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Cast, LiveServer
from tests.services import MissingService
from tests.services.fixtures import require_service
from tests.web.helpers import WebUser, sign_in

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture
def acme_admin(live_server: LiveServer, cast: Cast) -> Iterator[WebUser]:
    user = sign_in(live_server.url, cast.acme_admin)
    try:
        yield user
    finally:
        user.client.close()


@pytest.fixture
def acme_member(live_server: LiveServer, cast: Cast) -> Iterator[WebUser]:
    user = sign_in(live_server.url, cast.acme_member)
    try:
        yield user
    finally:
        user.client.close()


@pytest.fixture(scope="session")
def chromium() -> Iterator[object]:
    """One headless Chromium from Debian's package for the whole session, driven by Playwright."""
    if not CHROMIUM.exists():
        require_service(MissingService(f"Chromium ({CHROMIUM})", "chromium"))
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox"] if os.geteuid() == 0 else [],
        )
        try:
            yield browser
        finally:
            browser.close()
