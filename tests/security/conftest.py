"""Fixtures of the adversarial suite: a victim and an intruder with real data, the routes,
the attack count, and the settings every property runs with.

The tenants come from the `cast` fixture of tests/conftest.py: acme is the
victim and globex the intruder, on whatever backend and isolation level that
fixture gives them. Nothing here names a level.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import NullPool

from strongroom.interfaces.api.app import create_app
from strongroom.runtime import Runtime
from tests.conftest import Cast, LiveServer, add_webdav_rows, sign_in_to_web
from tests.security.attacks import Attacker
from tests.security.database import (
    build_export,
    invite_guest,
    record_audit_event,
    share_by_link,
    share_with_group,
    start_upload,
    store_file,
    subscribe_webhook,
)
from tests.security.estate import Estate, build_estate
from tests.security.routes import Route, app_routes, unknown_routes
from tests.security.tally import TALLY, Tally

# The same budget on every backend. Fixtures are built once per test, not per example: each
# example attacks the same two tenants, and the victim is checked after every example.
HEALTH_CHECKS = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
# Each round sends every route at least once, so 15 rounds keep `make test` within its
# time; STRONGROOM_ATTACK_ROUNDS=200 makes a deeper search when there is time for it.
ATTACK_ROUNDS = int(os.environ.get("STRONGROOM_ATTACK_ROUNDS", "15"))
ROUND_SETTINGS = settings(
    max_examples=ATTACK_ROUNDS, deadline=None, suppress_health_check=HEALTH_CHECKS
)
PROPERTY_SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=HEALTH_CHECKS)

ONLY_POSTGRES = pytest.mark.parametrize("level", ["postgres-shared"], indirect=True)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TALLY.attempts:
        return
    terminalreporter.section("tenant isolation attacks")
    for line in TALLY.lines():
        terminalreporter.write_line(line)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # Every leak also fails its test. This catches a leak counted by a test that passed anyway.
    if TALLY.leaks and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def tally() -> Tally:
    return TALLY


@pytest.fixture
def where(runtime: Runtime, cast: Cast) -> str:
    """The place the attacks run: the backend and the victim's isolation level."""
    return f"{runtime.engine.dialect.name}/{cast.acme.isolation}"


@pytest.fixture
def victim(client: httpx.Client, cast: Cast) -> Estate:
    return build_estate(client, cast.acme_admin, cast.acme_member, odd=True)


@pytest.fixture
def intruder(client: httpx.Client, cast: Cast) -> Estate:
    return build_estate(client, cast.globex_admin, cast.globex_member, odd=False)


@pytest.fixture
def routes(runtime: Runtime) -> list[Route]:
    """Return every route of the application, or fail the test on a route the suite cannot call."""
    found = app_routes(create_app(runtime))
    problems = unknown_routes(found)
    if problems:
        pytest.fail("the attack suite does not know how to call:\n" + "\n".join(problems))
    return found


@pytest.fixture
def attacker_for(
    client: httpx.Client,
    live_server: LiveServer,
    victim: Estate,
    intruder: Estate,
    tally: Tally,
    where: str,
):
    """Return the attacker of one family, made once per test so that every example shares it."""
    attackers: dict[str, Attacker] = {}

    def make(family: str) -> Attacker:
        if family not in attackers:
            attackers[family] = Attacker(
                client, live_server.port, victim, intruder, tally, family, where
            )
        return attackers[family]

    return make


@pytest.fixture
def stocked(runtime: Runtime, cast: Cast) -> Cast:
    """The cast with rows of both tenants in every tenant table.

    Each tenant gets a file, an unfinished upload, a group, a share, a link, an upload
    request, a webhook with a delivery, a guest, WebDAV and web UI rows, an audit event and
    a ready export.
    """
    for member in (cast.acme_member, cast.globex_member):
        tenant = member.tenant
        store_file(
            runtime, tenant, f"docs/{tenant.slug}.txt", f"the plans of {tenant.slug}".encode()
        )
        start_upload(runtime, tenant, member.user_id)
        add_webdav_rows(runtime, member, f"docs/{tenant.slug}.txt")
        sign_in_to_web(runtime, tenant, member.user_id)
    for tenant, admin in ((cast.acme, cast.acme_admin), (cast.globex, cast.globex_admin)):
        share_with_group(runtime, tenant, admin.user_id)
        share_by_link(runtime, tenant, f"docs/{tenant.slug}.txt")
        subscribe_webhook(runtime, tenant)
        record_audit_event(runtime, tenant, admin.user_id)
        invite_guest(runtime, tenant, admin.user_id)
        build_export(runtime, tenant, admin.user_id)
    return cast


@pytest.fixture
def plain_engine(runtime: Runtime) -> Iterator[Engine]:
    """An engine on the database URL outside the tenant stores, as a raw attacker would open one."""
    engine = create_engine(runtime.settings.resolved_database_url, poolclass=NullPool)
    try:
        yield engine
    finally:
        engine.dispose()
