"""Text values with the NUL character get a 400 on every backend, never a 500."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import Cast

NUL_NAME = "laptop\u0000name"


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("tokens", {"name": NUL_NAME}),
        ("me/app-passwords", {"name": NUL_NAME}),
    ],
)
def test_nul_in_text_is_400(client: httpx.Client, cast: Cast, route: str, body: dict) -> None:
    alice = cast.acme_member

    response = client.post(alice.url(route), json=body, headers=alice.headers)

    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "NUL" in response.json()["detail"]
