"""Settings from `STRONGROOM_*` variables, and where the master key comes from."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from strongroom.base.config import load_settings
from strongroom.base.errors import ConfigurationError
from strongroom.tenancy.keys import load_master_key

GOOD_KEY = base64.b64encode(bytes(range(32))).decode()
POSTGRES_URL = "postgresql://strongroom@127.0.0.1:5432/strongroom"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hide the caller's own STRONGROOM_* variables, which would change every default."""
    for name in list(os.environ):
        if name.startswith("STRONGROOM_"):
            monkeypatch.delenv(name)


# Defaults -----------------------------------------------------------------------------


def test_load_settings_defaults_to_embedded_sqlite() -> None:
    settings = load_settings()

    assert settings.is_embedded
    assert settings.should_auto_migrate
    assert settings.resolved_database_url == (
        f"sqlite:///{Path('strongroom-data', 'strongroom.db').resolve()}"
    )


def test_load_settings_paths_under_data_dir() -> None:
    settings = load_settings()

    assert settings.data_dir == Path("strongroom-data")
    assert settings.resolved_blob_dir == Path("strongroom-data", "blobs").resolve()
    assert settings.resolved_master_key_file == Path("strongroom-data", "master.key").resolve()


def test_load_settings_default_listens_on_loopback() -> None:
    settings = load_settings()

    assert settings.host == "127.0.0.1"
    assert settings.port == 8000


def test_load_settings_default_chunk_and_quota() -> None:
    settings = load_settings()

    assert settings.chunk_size == 1024 * 1024
    assert settings.default_quota is None
    assert settings.master_key is None


def test_load_settings_reads_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STRONGROOM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("STRONGROOM_PORT", "9001")
    monkeypatch.setenv("STRONGROOM_BASE_DOMAIN", "Files.Example.ORG.")

    settings = load_settings()

    assert settings.data_dir == tmp_path
    assert settings.port == 9001
    assert settings.base_domain == "files.example.org"


def test_load_settings_postgres_url_uses_psycopg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRONGROOM_DATABASE_URL", POSTGRES_URL)

    settings = load_settings()

    assert settings.resolved_database_url.startswith("postgresql+psycopg://")
    assert not settings.is_embedded
    # Replicas must not race to migrate a shared database on start.
    assert not settings.should_auto_migrate


# Bad values ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("STRONGROOM_PORT", "abc"),
        ("STRONGROOM_PORT", "70000"),
        ("STRONGROOM_DATABASE_URL", "mysql://x"),
        ("STRONGROOM_MASTER_KEY", base64.b64encode(b"0123456789").decode()),
        ("STRONGROOM_MASTER_KEY", "not base64!"),
        ("STRONGROOM_BASE_DOMAIN", "files..example.org"),
        ("STRONGROOM_LOG_LEVEL", "loud"),
        ("STRONGROOM_LOG_FORMAT", "xml"),
        ("STRONGROOM_CHUNK_SIZE", "100"),
        ("STRONGROOM_DEFAULT_QUOTA", "-1"),
        ("STRONGROOM_AUTO_MIGRATE", "perhaps"),
        ("STRONGROOM_TENANT_CACHE_SECONDS", "-1"),
        ("STRONGROOM_METRICS_TOKEN", "short"),
    ],
)
def test_load_settings_bad_value_names_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(ConfigurationError) as raised:
        load_settings()

    assert variable in raised.value.detail


def test_load_settings_short_key_gives_length(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRONGROOM_MASTER_KEY", base64.b64encode(b"0123456789").decode())

    with pytest.raises(ConfigurationError) as raised:
        load_settings()

    assert "decodes to 10 bytes" in raised.value.detail


def test_load_settings_names_every_bad_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRONGROOM_PORT", "abc")
    monkeypatch.setenv("STRONGROOM_DATABASE_URL", "mysql://x")

    with pytest.raises(ConfigurationError) as raised:
        load_settings()

    assert "STRONGROOM_PORT" in raised.value.detail
    assert "STRONGROOM_DATABASE_URL" in raised.value.detail


def test_load_settings_redis_url_hides_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRONGROOM_REDIS_URL", "http://user:hunter22@cache.example:6379")

    with pytest.raises(ConfigurationError) as raised:
        load_settings()

    assert "STRONGROOM_REDIS_URL: the value is not a Redis URL" in raised.value.detail
    assert "hunter22" not in raised.value.detail


def test_load_settings_redis_url_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRONGROOM_REDIS_URL", "redis://127.0.0.1:6379/2")

    assert load_settings().redis_url == "redis://127.0.0.1:6379/2"
    assert "6379" not in repr(load_settings())


def test_load_settings_rejects_both_key_sources(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("STRONGROOM_MASTER_KEY", GOOD_KEY)
    monkeypatch.setenv("STRONGROOM_MASTER_KEY_FILE", str(tmp_path / "master.key"))

    with pytest.raises(ConfigurationError) as raised:
        load_settings()

    assert "STRONGROOM_MASTER_KEY and STRONGROOM_MASTER_KEY_FILE" in raised.value.detail


# The master key -----------------------------------------------------------------------


def test_load_master_key_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STRONGROOM_MASTER_KEY", GOOD_KEY)
    settings = load_settings(data_dir=tmp_path)

    key = load_master_key(settings)

    assert key == bytes(range(32))
    assert not settings.resolved_master_key_file.exists()


def test_load_master_key_creates_private_file(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data")

    key = load_master_key(settings)

    path = settings.resolved_master_key_file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert base64.b64decode(path.read_text()) == key


def test_load_master_key_creation_logs_warning(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)

    with capture_logs() as logs:
        key = load_master_key(settings)

    warnings = [entry for entry in logs if entry["log_level"] == "warning"]
    assert [entry["event"] for entry in warnings] == ["master_key_created"]
    assert warnings[0]["path"] == str(settings.resolved_master_key_file)
    assert base64.b64encode(key).decode() not in repr(logs)


def test_load_master_key_reuses_created_file(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    first = load_master_key(settings)

    second = load_master_key(settings)

    assert second == first


def test_load_master_key_postgres_never_invents(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("STRONGROOM_DATABASE_URL", POSTGRES_URL)
    settings = load_settings(data_dir=tmp_path)

    with pytest.raises(ConfigurationError) as raised:
        load_master_key(settings)

    assert "STRONGROOM_MASTER_KEY" in raised.value.detail
    assert not settings.resolved_master_key_file.exists()


def test_load_master_key_missing_file_rejected(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere.key"
    settings = load_settings(data_dir=tmp_path, master_key_file=path)

    with pytest.raises(ConfigurationError) as raised:
        load_master_key(settings)

    assert str(path) in raised.value.detail
    assert not path.exists()


@pytest.mark.parametrize(
    "content",
    [
        b"not a key\n",
        base64.b64encode(bytes(16)) + b"\n",
        b"\xff\xfe binary",
    ],
    ids=["not-base64", "16-bytes", "not-ascii"],
)
def test_load_master_key_bad_file_named(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "master.key"
    path.write_bytes(content)
    settings = load_settings(data_dir=tmp_path, master_key_file=path)

    with pytest.raises(ConfigurationError) as raised:
        load_master_key(settings)

    assert str(path) in raised.value.detail
