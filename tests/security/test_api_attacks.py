"""Attacks on every route of the API, by an intruder tenant against a victim tenant.

Each property below is one family of attack, and each hypothesis example is
a round. A round sends one request to every route the application serves, in
a random order, with drawn ids, paths, spellings and tokens. It then reads
the victim's files, versions, trash, tokens, usage, links and upload
requests through the victim's own tokens and compares them with the snapshot
taken before the test.
attacks.py defines what counts as a leak.
"""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from strongroom.interfaces.api.app import create_app
from strongroom.runtime import Runtime
from tests.security.attacks import BASE_DOMAIN, Attacker, Probe, body_for, fill
from tests.security.conftest import ROUND_SETTINGS
from tests.security.dealing import Dealer
from tests.security.estate import Estate
from tests.security.routes import (
    PARAMETER_KINDS,
    PUBLIC_TOKEN,
    Route,
    app_routes,
    stale_routes,
    unknown_routes,
)

NOT_FOUND = frozenset({404})
# A member's token on an admin route is refused before any id is looked up.
NOT_FOUND_OR_ADMINS_ONLY = frozenset({403, 404})
# A look-alike of "acme" with a Cyrillic "а", as an IDNA host label.
PUNYCODE_LOOKALIKE = "xn--" + "\u0430cme".encode("punycode").decode("ascii")

MALFORMED_IDS = [
    "0",
    "1",
    "-1",
    "null",
    "undefined",
    "None",
    "true",
    "[]",
    "{}",
    "*",
    "%",
    "%00",
    "\x00",
    "' OR '1'='1",
    "1; DROP TABLE nodes",
    "0x1",
    "1e9",
    "9" * 40,
    "a" * 300,
    "..",
    ".",
    "",
    "00000000-0000-0000-0000-00000000000g",
    "00000000000000000000000000000000",
]


# Routes ---------------------------------------------------------------------------------


def test_every_route_is_known(runtime: Runtime) -> None:
    served = app_routes(create_app(runtime))

    assert unknown_routes(served) == []


def test_no_known_route_is_gone(runtime: Runtime) -> None:
    # A route removed from the application must leave KNOWN_ROUTES too, so the list
    # stays the one record of what the suite attacks.
    served = app_routes(create_app(runtime))

    assert stale_routes(served) == []


# Choices --------------------------------------------------------------------------------

# The ways of writing one UUID that Python's UUID parser accepts.
SPELLINGS = [
    str,
    lambda value: str(value).upper(),
    lambda value: value.hex,
    lambda value: f"{{{value}}}",
    lambda value: value.urn,
]
GUESS_KINDS = [
    "random",
    "time-based",
    "small number",
    "near victim",
    "near own",
    "malformed",
    "text",
]


def reference(dealer: Dealer, estate: Estate, name: str) -> str:
    """Return a real path, name, token or id of the estate for the parameter `name`, an id in any spelling."""
    kind = PARAMETER_KINDS[name]
    if kind == "path":
        return dealer.deal("paths", estate.paths)
    if kind == "name":
        return dealer.deal("names", estate.file_names)
    if kind == PUBLIC_TOKEN:
        return dealer.deal("public tokens", estate.public_tokens)
    real = dealer.deal(f"{kind} ids", [*estate.ids_of(kind), *estate.all_ids])
    return dealer.deal("spellings", SPELLINGS)(uuid.UUID(real))


def references(
    dealer: Dealer, route: Route, estate: Estate, tokens_of: Estate | None = None
) -> dict[str, str]:
    """Return values of the estate for the route's parameters; public tokens from `tokens_of`.

    A victim's public token opens the victim's link under the victim's base URL, as it
    should, so attacks on that URL take the intruder's own public tokens instead.
    """
    owner = {PUBLIC_TOKEN: tokens_of or estate}
    return {
        name: reference(dealer, owner.get(PARAMETER_KINDS[name], estate), name)
        for name in route.params
    }


def body(dealer: Dealer, data: st.DataObject, route: Route, estate: Estate) -> dict[str, Any]:
    paths = [*estate.paths, "taken/elsewhere.txt"]
    source, destination = dealer.deal("from", paths), dealer.deal("to", paths)
    recipient = dealer.deal("recipients", estate.recipients)
    return body_for(route, source, destination, data.draw(st.booleans()), recipient)


def host_spellings(slug: str) -> list[str]:
    return [f"{slug}.{BASE_DOMAIN}", f"{slug.upper()}.{BASE_DOMAIN}", f"{slug}.{BASE_DOMAIN}."]


def near(real: str, delta: int) -> str:
    """Return an id a few steps from a real one, as an attacker counting up from it would."""
    return str(uuid.UUID(int=(uuid.UUID(real).int + delta) % 2**128))


def names_one_object(guess: str) -> bool:
    """Return False for a guess that changes the route instead of naming an object in it.

    An empty segment or one of dots is removed from the URL (`/trash/.` is
    `/trash/`), and a slash adds a segment, so the request may then reach
    another of the intruder's own routes, such as emptying its own trash.
    """
    return guess.strip(".") != "" and "/" not in guess


def guessed_id(dealer: Dealer, data: st.DataObject, victim: Estate, intruder: Estate) -> str:
    kind = dealer.deal("guess kinds", GUESS_KINDS)
    if kind == "random":
        return str(data.draw(st.uuids(), label="random id"))
    if kind == "time-based":
        return str(data.draw(st.uuids(version=1), label="time-based id"))
    if kind == "small number":
        return str(uuid.UUID(int=data.draw(st.integers(0, 4096), label="number")))
    if kind == "near victim":
        real = dealer.deal("victim ids", [*victim.all_ids, *victim.hidden_ids])
        return near(real, data.draw(st.integers(-3, 3), label="step"))
    if kind == "near own":
        # Never the intruder's own ids: those exist, and it may use them.
        real = dealer.deal("own ids", intruder.all_ids)
        return near(real, data.draw(st.integers(-3, 3).filter(bool), label="step"))
    if kind == "malformed":
        return dealer.deal("malformed", MALFORMED_IDS)
    return data.draw(st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40))


# Another tenant's tokens ----------------------------------------------------------------


@ROUND_SETTINGS
@given(data=st.data())
def test_foreign_tokens_get_401_everywhere(
    data: st.DataObject, routes: list[Route], victim: Estate, intruder: Estate, attacker_for
) -> None:
    attacker: Attacker = attacker_for("another tenant's token")
    dealer = Dealer(data)
    forms = [
        ("path", None),
        ("path", BASE_DOMAIN),
        *(("host", h) for h in host_spellings(victim.slug)),
    ]

    for route in dealer.shuffled(routes):
        form, host = dealer.deal("forms", forms)
        target = fill(route, references(dealer, route, victim, tokens_of=intruder))
        expect = None
        if route.guarded:
            expect = frozenset({401})
        elif route.public:
            expect = NOT_FOUND  # the intruder's own public token, under the victim's URL
        attacker.send(
            Probe(
                route,
                f"/t/{victim.slug}{target}" if form == "path" else target,
                host=host,
                token=dealer.deal("tokens", intruder.tokens),
                guarded=route.guarded or route.public,
                expect=expect,
                **body(dealer, data, route, victim),
            )
        )

    attacker.end_round()


# Another tenant's ids and paths ---------------------------------------------------------


@ROUND_SETTINGS
@given(data=st.data())
def test_victim_references_miss_in_own_tenant(
    data: st.DataObject, routes: list[Route], victim: Estate, intruder: Estate, attacker_for
) -> None:
    attacker: Attacker = attacker_for("another tenant's ids and paths")
    dealer = Dealer(data)
    forms = [("path", None), *(("host", h) for h in host_spellings(intruder.slug))]

    for route in dealer.shuffled(routes):
        form, host = dealer.deal("forms", forms)
        target = fill(route, references(dealer, route, victim))
        # The victim's public tokens too: under the intruder's URL they must find nothing.
        by_id = (bool(route.id_params) and route.guarded) or route.public
        expect = NOT_FOUND_OR_ADMINS_ONLY if route.admin else NOT_FOUND
        attacker.send(
            Probe(
                route,
                f"/t/{intruder.slug}{target}" if form == "path" else target,
                host=host,
                token=dealer.deal("tokens", intruder.tokens),
                guarded=by_id,
                expect=expect if by_id else None,
                **body(dealer, data, route, victim),
            )
        )

    attacker.end_round()


@ROUND_SETTINGS
@given(data=st.data())
def test_guessed_ids_miss_in_own_tenant(
    data: st.DataObject, routes: list[Route], victim: Estate, intruder: Estate, attacker_for
) -> None:
    attacker: Attacker = attacker_for("guessed ids")
    dealer = Dealer(data)
    by_id = [route for route in routes if route.id_params and route.guarded]
    assert by_id

    # Each round tries every route that takes an id once.
    for route in dealer.shuffled(by_id):
        guesses = {name: guessed_id(dealer, data, victim, intruder) for name in route.params}
        attacker.send(
            Probe(
                route,
                f"/t/{intruder.slug}{fill(route, guesses)}",
                token=dealer.deal("tokens", intruder.tokens),
                guarded=all(map(names_one_object, guesses.values())),
                **body(dealer, data, route, intruder),
            )
        )

    attacker.end_round()


# Host and path naming two tenants -------------------------------------------------------


@ROUND_SETTINGS
@given(data=st.data())
def test_host_path_mixes_get_400(
    data: st.DataObject, routes: list[Route], victim: Estate, intruder: Estate, attacker_for
) -> None:
    attacker: Attacker = attacker_for("host and path mixes")
    dealer = Dealer(data)
    pairs = [(victim.slug, intruder.slug), (intruder.slug, victim.slug)]

    for route in dealer.shuffled(routes):
        host_slug, path_slug = dealer.deal("host, path", pairs)
        target = fill(route, references(dealer, route, victim))
        attacker.send(
            Probe(
                route,
                f"/t/{path_slug}{target}",
                host=dealer.deal(f"{host_slug} hosts", host_spellings(host_slug)),
                token=dealer.deal("tokens", [*intruder.tokens, None]),
                guarded=True,
                expect=frozenset({400}),
                **body(dealer, data, route, victim),
            )
        )

    attacker.end_round()


# Tricks with paths and hosts ------------------------------------------------------------


def fullwidth(character: str) -> str:
    """Return the percent-encoded fullwidth form of a lowercase letter, which NFKC folds back."""
    if not "a" <= character <= "z":
        return character
    return f"%EF%BD%{0x81 + ord(character) - ord('a'):02X}"


def path_tricks(victim: str, intruder: str) -> list[str]:
    """Return path prefixes that name the victim in spellings a confused parser might accept."""
    return [
        f"/t/%{ord(victim[0]):02X}{victim[1:]}",  # one letter percent-encoded
        "/t/" + "".join(f"%{ord(c):02X}" for c in victim),
        f"/t/{victim.upper()}",
        f"/t/{victim.capitalize()}",
        f"/t/%D0%B0{victim[1:]}",  # a Cyrillic look-alike of the first letter
        "/t/" + "".join(map(fullwidth, victim)),
        f"/t/{victim}%E2%80%8B",  # zero-width space
        f"/t/{PUNYCODE_LOOKALIKE}",
        f"/t/{victim}.",
        f"/t/{victim}%2e",
        f"/t/{victim}%00",
        f"/t/%20{victim}",
        f"/t/{victim}%20",
        f"//t/{victim}",
        f"/t//{victim}",
        f"/./t/{victim}",
        f"/t/./{victim}",
        f"/T/{victim}",
        f"/t/{victim}/.",
        f"/t/{victim};{intruder}",
        f"/t/{intruder}/../{victim}",
        f"/t/{intruder}/%2e%2e/{victim}",
        f"/t/{intruder}%2F..%2F{victim}",
    ]


def host_tricks(victim: str) -> list[str]:
    """Return Host headers that name the victim in spellings a lax comparison might accept."""
    return [
        f"{victim.upper()}.{BASE_DOMAIN}",
        f"{victim.capitalize()}.{BASE_DOMAIN.upper()}",
        f"{victim}.{BASE_DOMAIN}.",
        f"{victim}.{BASE_DOMAIN}..",
        f"{victim}.{BASE_DOMAIN}:1",
        f"{victim}.{BASE_DOMAIN}.:80",
        f"{victim}..{BASE_DOMAIN}",
        f".{victim}.{BASE_DOMAIN}",
        f"{victim}.{BASE_DOMAIN}.evil.example",
        f"%{ord(victim[0]):02X}{victim[1:]}.{BASE_DOMAIN}",
        f"{victim}%2e{BASE_DOMAIN}",
        f"{PUNYCODE_LOOKALIKE}.{BASE_DOMAIN}",
        f"{victim}.{BASE_DOMAIN}\t",
        f"{victim}\u0430.{BASE_DOMAIN}",
    ]


def tricks(victim: str, intruder: str) -> list[tuple[str, Any]]:
    """Return every trick aimed at the victim: path prefixes, hosts, and two hosts at once."""
    hosts = (f"{victim}.{BASE_DOMAIN}", f"{intruder}.{BASE_DOMAIN}")
    return [
        *(("path", prefix) for prefix in path_tricks(victim, intruder)),
        *(("host", host) for host in host_tricks(victim)),
        # The absolute form of RFC 9112, which names a host in the request line itself.
        ("absolute", f"http://{victim}.{BASE_DOMAIN}"),
        *(("two hosts", pair) for pair in (hosts, hosts[::-1])),
        *(("forwarded", pair) for pair in (hosts, hosts[::-1])),
    ]


def apply_trick(trick: tuple[str, Any], target: str) -> dict[str, Any]:
    """Return the target, Host and extra headers of a request that plays the trick."""
    kind, value = trick
    if kind == "path":
        return {"target": value + target}
    if kind == "host":
        return {"target": target, "host": value}
    if kind == "absolute":
        return {"target": value + target}
    header = "Host" if kind == "two hosts" else "X-Forwarded-Host"
    return {"target": target, "host": value[0], "extra_headers": ((header, value[1]),)}


@ROUND_SETTINGS
@given(data=st.data())
def test_path_and_host_tricks_never_reach_victim(
    data: st.DataObject, routes: list[Route], victim: Estate, intruder: Estate, attacker_for
) -> None:
    attacker: Attacker = attacker_for("path and host tricks")
    dealer = Dealer(data)
    every_trick = tricks(victim.slug, intruder.slug)

    for route in dealer.shuffled(routes):
        target = fill(route, references(dealer, route, victim, tokens_of=intruder))
        trick = dealer.deal("tricks", every_trick)
        request = apply_trick(trick, target)
        # A request that also names the intruder may reach the intruder's own tenant, where
        # its token works. The oracle still checks that nothing of the victim comes back.
        names_intruder = intruder.slug in repr(trick).lower()
        attacker.send(
            Probe(
                route,
                raw=True,
                token=dealer.deal("tokens", intruder.tokens),
                guarded=(route.guarded or route.public) and not names_intruder,
                **request,
                **body(dealer, data, route, victim),
            )
        )

    attacker.end_round()
