"""Attacks on other users' drives and shares, by a member of the same tenant.

Drives and shares separate users inside one tenant, where the tenant checks
of the other attacks let every request through. Here Mallory, a member of
the victim tenant with nothing shared with her, sends every route that
reaches a drive or a share the victim's real paths and ids, in any
spelling, with her own valid token. By-id routes must return 404, and the
oracle of attacks.py finds no victim data in any reply. After each round the
victim's drives, shares and groups must be as they were.

The tenant's directory (users, groups) and its usage are left out: every
member may read them by design, and Mallory's own uploads change the usage.
Users are kept apart by the owner of each drive and share, inside one store,
the same way on every isolation level, so these rounds run on the shared
level of each backend only.
"""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from strongroom.runtime import Runtime
from tests.conftest import SHARED_LEVELS, Cast, LiveServer, Member, add_member
from tests.security.attacks import Attacker, Probe, body_for, fill
from tests.security.conftest import ROUND_SETTINGS
from tests.security.dealing import Dealer
from tests.security.estate import Estate
from tests.security.routes import Route
from tests.security.tally import Tally
from tests.security.test_api_attacks import NOT_FOUND_OR_ADMINS_ONLY, references

pytestmark = pytest.mark.parametrize("level", SHARED_LEVELS, indirect=True)

FAMILY = "another user's drive and shares"
NOT_FOUND = frozenset({404})

# The parts of the tenant that every member reads, or that Mallory's own writes change.
TENANT_WIDE = ("/api/v1/users", "/api/v1/groups", "/api/v1/usage", "/api/v1/me")
# Sharing her own files with the victim changes what the victim is shared, and inviting a
# guest of her own adds to the tenant's guests that admins list, both by design.
OWN_SHARING = (("POST", "/api/v1/shares"), ("POST", "/api/v1/guests"))


def reaches_drives(route: Route) -> bool:
    """Return True for a tenant route that reads or changes a drive, a trash, a token or a share."""
    if not route.guarded or route.path.startswith(TENANT_WIDE):
        return False
    return (route.method, route.path) not in OWN_SHARING


def test_attacked_routes_cover_shares(routes: list[Route]) -> None:
    attacked = {route.path for route in routes if reaches_drives(route)}

    assert "/api/v1/shares/{share_id}/files/{path:path}" in attacked
    assert "/api/v1/shares/{share_id}" in attacked
    assert "/api/v1/nodes/{node_id}" in attacked
    assert "/api/v1/groups/{group_id}" not in attacked


@pytest.fixture
def mallory(runtime: Runtime, cast: Cast) -> Member:
    return add_member(runtime, cast.acme, "mallory@acme.test", "member")


@pytest.fixture
def insider(
    client: httpx.Client,
    live_server: LiveServer,
    victim: Estate,
    mallory: Member,
    tally: Tally,
    where: str,
) -> Attacker:
    """Mallory's attacker, made once per test so that every example shares it."""
    intruder = Estate(admin=mallory, member=mallory, suffix="mallory")
    intruder.emails = [mallory.email]
    intruder.tokens = [mallory.token]
    # Her own uploads make deliveries to the tenant's webhooks, as any member's do.
    ignored = ("usage", "webhook deliveries")
    return Attacker(
        client, live_server.port, victim, intruder, tally, FAMILY, where, ignored=ignored
    )


@ROUND_SETTINGS
@given(data=st.data())
def test_same_tenant_user_reaches_nothing(
    data: st.DataObject, routes: list[Route], victim: Estate, mallory: Member, insider: Attacker
) -> None:
    dealer = Dealer(data)

    for route in dealer.shuffled([route for route in routes if reaches_drives(route)]):
        target = fill(route, references(dealer, route, victim))
        by_id = bool(route.id_params)
        expect = NOT_FOUND_OR_ADMINS_ONLY if route.admin else NOT_FOUND
        paths = [*victim.paths, "taken/elsewhere.txt"]
        body = body_for(
            route,
            dealer.deal("from", paths),
            dealer.deal("to", paths),
            data.draw(st.booleans()),
            dealer.deal("recipients", victim.recipients),
        )
        insider.send(
            Probe(
                route,
                f"/t/{victim.slug}{target}",
                token=mallory.token,
                guarded=by_id,
                expect=expect if by_id else None,
                **body,
            )
        )

    insider.end_round()
