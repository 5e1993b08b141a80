"""The operator API's usage report, behind operator tokens that tenants' tokens cannot replace."""

from __future__ import annotations

import httpx
import pytest

from strongroom.runtime import Runtime
from strongroom.tenancy.operators import create_operator_token, revoke_operator_token
from strongroom.tenancy.usage_report import as_csv, as_document, monthly_usage
from tests.conftest import Cast

USAGE = "/api/v1/operator/usage"


@pytest.fixture
def operator_headers(runtime: Runtime) -> dict[str, str]:
    _row, secret = create_operator_token(runtime.engine, "billing")
    return {"Authorization": f"Bearer {secret}"}


def test_operator_usage_returns_cli_document(
    client: httpx.Client, runtime: Runtime, metered: Cast, operator_headers: dict[str, str]
) -> None:
    response = client.get(USAGE, params={"month": "2026-11"}, headers=operator_headers)

    assert response.status_code == 200
    assert response.json() == as_document(monthly_usage(runtime.catalog, "2026-11"))
    assert response.json()["acme"]["requests"] == 15


def test_operator_usage_of_one_tenant(
    client: httpx.Client, metered: Cast, operator_headers: dict[str, str]
) -> None:
    response = client.get(
        USAGE, params={"month": "2026-11", "tenant": "globex"}, headers=operator_headers
    )

    assert response.status_code == 200
    assert list(response.json()) == ["globex"]


def test_operator_usage_as_csv(
    client: httpx.Client, runtime: Runtime, metered: Cast, operator_headers: dict[str, str]
) -> None:
    response = client.get(
        USAGE, params={"month": "2026-11", "format": "csv"}, headers=operator_headers
    )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.text == as_csv("2026-11", monthly_usage(runtime.catalog, "2026-11"))


def test_operator_usage_bad_month_is_problem(
    client: httpx.Client, cast: Cast, operator_headers: dict[str, str]
) -> None:
    response = client.get(USAGE, params={"month": "2026-13"}, headers=operator_headers)

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == (
        "month '2026-13' is not in the form YYYY-MM; give one such as 2026-11"
    )


def test_operator_usage_bad_format_is_problem(
    client: httpx.Client, cast: Cast, operator_headers: dict[str, str]
) -> None:
    response = client.get(
        USAGE, params={"month": "2026-11", "format": "xml"}, headers=operator_headers
    )

    assert response.status_code == 400
    assert response.json()["detail"] == "format 'xml' is not offered; use json or csv"


def test_operator_usage_unknown_tenant_is_404(
    client: httpx.Client, cast: Cast, operator_headers: dict[str, str]
) -> None:
    response = client.get(
        USAGE, params={"month": "2026-11", "tenant": "nobody"}, headers=operator_headers
    )

    assert response.status_code == 404
    assert "'nobody'" in response.json()["detail"]


def test_operator_usage_without_token_is_401(client: httpx.Client, cast: Cast) -> None:
    response = client.get(USAGE, params={"month": "2026-11"})

    assert response.status_code == 401
    assert "strongroom operator token create" in response.json()["detail"]


def test_operator_usage_tenant_admin_token_is_401(client: httpx.Client, cast: Cast) -> None:
    response = client.get(USAGE, params={"month": "2026-11"}, headers=cast.acme_admin.headers)

    assert response.status_code == 401
    assert response.json()["detail"] == "the operator token is invalid or revoked"


def test_operator_usage_made_up_token_is_401(client: httpx.Client, cast: Cast) -> None:
    headers = {"Authorization": "Bearer sro_" + "A" * 43}

    response = client.get(USAGE, params={"month": "2026-11"}, headers=headers)

    assert response.status_code == 401
    assert response.json()["detail"] == "the operator token is invalid or revoked"


def test_operator_usage_revoked_token_is_401(client: httpx.Client, runtime: Runtime) -> None:
    row, secret = create_operator_token(runtime.engine, "old billing")
    revoke_operator_token(runtime.engine, row.id)

    response = client.get(
        USAGE, params={"month": "2026-11"}, headers={"Authorization": f"Bearer {secret}"}
    )

    assert response.status_code == 401


def test_operator_usage_under_tenant_url_is_404(
    client: httpx.Client, cast: Cast, operator_headers: dict[str, str]
) -> None:
    response = client.get(
        f"/t/acme{USAGE}", params={"month": "2026-11"}, headers=operator_headers
    )

    assert response.status_code == 404
    assert "platform's own URL" in response.json()["detail"]


def test_operator_routes_are_not_in_openapi(client: httpx.Client, cast: Cast) -> None:
    document = client.get("/t/acme/api/v1/openapi.json").json()

    assert not [path for path in document["paths"] if "operator" in path]
