"""`strongroom usage` and `strongroom operator token`, run as commands on a served data directory."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import httpx
import pytest

from tests.services.strongroom import StrongroomProcess

# Rich fits tables to the terminal. Without one it assumes 80 columns and cuts ids short.
WIDE_TERMINAL = {"COLUMNS": "250"}
BODY = b"metered content " * 100


def this_month() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StrongroomProcess]:
    """A data directory whose server served acme one upload and two downloads, then stopped.

    The server flushes its meter only when it stops (the interval is an hour), so
    the counts that the commands report prove the flush at stop.
    """
    data_dir = tmp_path_factory.mktemp("served") / "data"
    server = StrongroomProcess(
        data_dir, extra_env={**WIDE_TERMINAL, "STRONGROOM_METERING_FLUSH_SECONDS": "3600"}
    )
    token = server.make_member("acme", "alice@acme.test")
    server.cli("tenant", "create", "globex")
    server.start()
    try:
        headers = {"Authorization": f"Bearer {token}"}
        base = f"{server.url}/t/acme/api/v1"
        httpx.put(f"{base}/files/a.txt", content=BODY, headers=headers).raise_for_status()
        for _ in range(2):
            httpx.get(f"{base}/files/a.txt", headers=headers).raise_for_status()
    finally:
        server.stop()
    yield server


def test_usage_json_reports_metered_traffic(served: StrongroomProcess) -> None:
    result = served.cli("usage", "--month", this_month(), "--format", "json")

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert sorted(document) == ["acme", "globex"]
    assert document["acme"]["requests"] == 3
    assert document["acme"]["bytes_in"] == len(BODY)
    assert document["acme"]["bytes_out"] == 2 * len(BODY)
    assert document["acme"]["active_users"] == 1
    assert document["acme"]["storage_byte_hours"] == 0  # no hour has been rolled up yet
    assert document["globex"]["requests"] == 0


def test_usage_csv_of_one_tenant(served: StrongroomProcess) -> None:
    month = this_month()

    result = served.cli("usage", "--month", month, "--tenant", "acme", "--format", "csv")

    assert result.returncode == 0, result.stderr
    header, line = result.stdout.splitlines()
    assert header.split(",")[:6] == [
        "month", "slug", "tenant_id", "requests", "bytes_in", "bytes_out"
    ]
    fields = line.split(",")
    assert fields[:2] == [month, "acme"]
    assert fields[3:6] == ["3", str(len(BODY)), str(2 * len(BODY))]


def test_usage_bad_month_is_rejected(served: StrongroomProcess) -> None:
    result = served.cli("usage", "--month", "January")

    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: month 'January' is not in the form YYYY-MM; give one such as 2026-11"
    )


def test_usage_unknown_tenant_is_rejected(served: StrongroomProcess) -> None:
    result = served.cli("usage", "--month", this_month(), "--tenant", "nobody")

    assert result.returncode == 1
    assert "no tenant has the slug 'nobody'" in result.stderr


def test_operator_token_create_prints_only_token(served: StrongroomProcess) -> None:
    created = served.cli("operator", "token", "create", "billing")
    listed = served.cli("operator", "token", "list")

    secret = created.stdout.strip()
    assert created.returncode == 0, created.stderr
    assert secret.startswith("sro_")
    assert len(created.stdout.splitlines()) == 1
    assert "billing" in listed.stdout
    assert secret not in listed.stdout
    assert secret[:11] in listed.stdout


def test_operator_token_revoke_unknown_is_rejected(served: StrongroomProcess) -> None:
    result = served.cli("operator", "token", "revoke", "not-an-id")

    assert result.returncode == 1
    assert "no operator token has the id 'not-an-id'" in result.stderr

