"""The plan commands and the tenant's limits, modules and settings commands, run as subprocesses."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services.strongroom import StrongroomProcess

# Rich fits tables to the terminal. Without one it assumes 80 columns and cuts names short.
WIDE_TERMINAL = {"COLUMNS": "250"}


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[StrongroomProcess]:
    process = StrongroomProcess(tmp_path / "data", extra_env=WIDE_TERMINAL)
    try:
        yield process
    finally:
        process.stop()


def test_plan_lifecycle(cli: StrongroomProcess) -> None:
    created = cli.cli(
        "plan", "create", "basic", "--storage", "5000", "--users", "3",
        "--modules", "versioning,webdav", "--setting", "password_policy.min_length=14",
    )
    tenant = cli.cli("tenant", "create", "acme", "--plan", "basic")
    listed = cli.cli("plan", "list")
    shown = cli.cli("plan", "show", "basic")
    refused = cli.cli("plan", "delete", "basic")
    moved = cli.cli("tenant", "set-plan", "acme", "default")
    deleted = cli.cli("plan", "delete", "basic")

    assert created.returncode == 0, created.stderr
    assert tenant.returncode == 0, tenant.stderr
    assert "on plan basic" in tenant.stdout
    assert any(line.split()[:3] == ["│", "basic", "│"] for line in listed.stdout.splitlines())
    plan = json.loads(shown.stdout)
    assert plan["storage_bytes"] == 5000
    assert plan["max_users"] == 3
    assert plan["modules"] == ["versioning", "webdav"]
    assert plan["settings"] == {"password_policy": {"min_length": 14}}
    assert plan["tenants"] == 1
    assert refused.returncode == 1
    assert "error: plan 'basic' is the plan of 1 tenant" in refused.stderr
    assert moved.returncode == 0, moved.stderr
    assert deleted.returncode == 0, deleted.stderr


def test_tenant_limits_modules_settings(cli: StrongroomProcess) -> None:
    cli.cli("tenant", "create", "acme")

    limits = cli.cli(
        "tenant", "limits", "acme", "--requests-per-minute", "120", "--storage", "1000000",
        "--max-file-size", "2000",
    )
    bad_limit = cli.cli("tenant", "limits", "acme", "--storage", "lots")
    disabled = cli.cli("tenant", "modules", "acme", "--disable", "webdav")
    unknown = cli.cli("tenant", "modules", "acme", "--enable", "ftp")
    changed = cli.cli(
        "tenant", "settings", "acme", "--set", "time_zone=Asia/Tokyo", "--set", "versions_kept=4",
        "--set", "blocked_extensions=exe,bat",
    )
    invalid = cli.cli("tenant", "settings", "acme", "--set", "max_file_size=5000")
    shown = cli.cli("tenant", "show", "acme")

    assert limits.returncode == 0, limits.stderr
    described = json.loads(limits.stdout)
    assert described["limits"]["requests_per_minute"] == 120
    assert described["limits"]["storage_bytes"] == 1000000
    assert described["plan_limits"]["requests_per_minute"] is None
    assert bad_limit.returncode == 1
    assert "storage_bytes 'lots' is invalid" in bad_limit.stderr
    assert disabled.returncode == 0, disabled.stderr
    assert any(line.split()[1:4] == ["webdav", "│", "disabled"] for line in disabled.stdout.splitlines())
    assert unknown.returncode == 1
    assert "module 'ftp' does not exist" in unknown.stderr
    assert changed.returncode == 0, changed.stderr
    settings = json.loads(changed.stdout)
    assert settings["time_zone"] == "Asia/Tokyo"
    assert settings["versions_kept"] == 4
    assert settings["blocked_extensions"] == ["exe", "bat"]
    assert invalid.returncode == 1
    assert "max_file_size: 5000 bytes is more than the 2000 bytes" in invalid.stderr
    tenant = json.loads(shown.stdout)
    assert tenant["quota_bytes"] == 1000000
    assert "webdav" not in tenant["modules"]
