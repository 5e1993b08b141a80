"""Attacks on public links and upload requests: another tenant's tokens, and guessed tokens.

A public token opens a link without any other credential, so it must belong
to one tenant: under another tenant's base URL it must fail exactly as a
made-up token does, with the same status and the same body. And no guess
near a real token, such as its shown prefix or one character changed, may
open anything.
"""

from __future__ import annotations

import re
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.security.attacks import BASE_DOMAIN, Attacker, Probe, fill
from tests.security.conftest import HEALTH_CHECKS
from tests.security.dealing import Dealer
from tests.security.estate import Estate
from tests.security.raw_http import Reply
from tests.security.routes import Route
from tests.security.test_api_attacks import body, names_one_object, references

NOT_FOUND = frozenset({404})
# Fewer rounds than the other families: a round here is two requests per public route,
# and the suite's time on five levels is tight.
LINK_ROUND_SETTINGS = settings(max_examples=10, deadline=None, suppress_health_check=HEALTH_CHECKS)
TOKEN_ALPHABET = string.ascii_letters + string.digits + "-_"
ACCEPTS = ["text/html", "application/json", "*/*", "application/problem+json"]
REQUEST_ID = re.compile(rb'"request_id":"[0-9a-f]+"')


def public_routes(routes: list[Route]) -> list[Route]:
    found = [route for route in routes if route.public]
    assert found, "the application serves no public link routes"
    return found


def made_up_token(data: st.DataObject, length: int) -> str:
    alphabet = st.sampled_from(TOKEN_ALPHABET)
    return data.draw(st.text(alphabet, min_size=length, max_size=length), label="made-up token")


def with_token(route: Route, values: dict[str, str], token: str) -> str:
    filled = dict(values)
    for name in route.params:
        if name == "token":
            filled[name] = token
    return fill(route, filled)


def comparable(reply: Reply, token: str) -> tuple[int, bytes, str]:
    """Return what a client can tell of a reply, with the token it sent and the request id left out."""
    text = REQUEST_ID.sub(b"", reply.body).replace(token.encode(), b"TOKEN")
    return reply.status, text, reply.headers.get("content-type", "")


@LINK_ROUND_SETTINGS
@given(data=st.data())
def test_foreign_public_tokens_fail_like_unknown(
    data: st.DataObject, routes: list[Route], victim: Estate, intruder: Estate, attacker_for
) -> None:
    attacker: Attacker = attacker_for("another tenant's link tokens")
    dealer = Dealer(data)
    forms = [("path", None), ("host", f"{intruder.slug}.{BASE_DOMAIN}")]

    for route in dealer.shuffled(public_routes(routes)):
        form, host = dealer.deal("forms", forms)
        values = references(dealer, route, victim)
        real = dealer.deal("victim tokens", victim.public_tokens)
        fake = made_up_token(data, len(real))
        accept = (("Accept", dealer.deal("accepts", ACCEPTS)),)
        replies = []
        for token in (real, fake):
            target = with_token(route, values, token)
            probe = Probe(
                route,
                f"/t/{intruder.slug}{target}" if form == "path" else target,
                host=host,
                guarded=True,
                expect=NOT_FOUND,
                extra_headers=accept,
                **body(dealer, data, route, victim),
            )
            replies.append(comparable(attacker.send(probe), token))

        assert replies[0] == replies[1], f"{route}: a victim's token fails unlike a made-up one"

    attacker.end_round()


def guesses_near(data: st.DataObject, dealer: Dealer, victim: Estate) -> str:
    """Return a token an attacker might try: made up, or a near miss of a real one."""
    real = dealer.deal("victim tokens", victim.public_tokens)
    kind = dealer.deal(
        "guess kinds",
        ["made up", "prefix", "one changed", "one short", "one more", "upper case", "malformed"],
    )
    if kind == "made up":
        return made_up_token(data, len(real))
    if kind == "prefix":
        return real[:6]  # what the owner's listing shows
    if kind == "one changed":
        position = data.draw(st.integers(0, len(real) - 1), label="position")
        replacement = "A" if real[position] != "A" else "B"
        return real[:position] + replacement + real[position + 1 :]
    if kind == "one short":
        return real[:-1]
    if kind == "one more":
        return real + "A"
    if kind == "upper case":
        return real.upper() if real.upper() != real else real.lower()
    return dealer.deal(
        "malformed tokens", ["%00", "%2e%2e", "'", "*", "%", "a" * 5000, real + "%00", "%C3%A9" * 20]
    )


@LINK_ROUND_SETTINGS
@given(data=st.data())
def test_guessed_public_tokens_miss(
    data: st.DataObject, routes: list[Route], victim: Estate, intruder: Estate, attacker_for
) -> None:
    attacker: Attacker = attacker_for("guessed link tokens")
    dealer = Dealer(data)

    for route in dealer.shuffled(public_routes(routes) * 2):
        values = references(dealer, route, victim)
        guess = guesses_near(data, dealer, victim)
        target = with_token(route, values, guess)
        one_segment = names_one_object(guess)
        attacker.send(
            Probe(
                route,
                f"/t/{victim.slug}{target}",
                guarded=True,
                expect=NOT_FOUND if one_segment else None,
                raw=True,
                extra_headers=(("Accept", dealer.deal("accepts", ACCEPTS)),),
                **body(dealer, data, route, intruder),
            )
        )

    attacker.end_round()

