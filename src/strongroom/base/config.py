"""Settings read from `STRONGROOM_*` environment variables, validated once at start."""

from __future__ import annotations

import base64
import binascii
import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Literal

from limits import parse_many
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from strongroom.base.errors import ConfigurationError

MASTER_KEY_BYTES = 32
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Settings(BaseSettings):
    """Every setting of a Strongroom process; one instance per process."""

    model_config = SettingsConfigDict(env_prefix="STRONGROOM_", extra="ignore")

    data_dir: Path = Field(
        default=Path("./strongroom-data"),
        description="Folder for the embedded database, the local blob store and the key file.",
    )
    database_url: str | None = Field(
        default=None,
        description="sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DB; "
        "default a SQLite file in the data directory.",
    )
    blob_dir: Path | None = Field(
        default=None,
        description="Folder of the local blob store; default DATA_DIR/blobs.",
    )
    master_key: str | None = Field(
        default=None,
        repr=False,
        description="The master key: 32 bytes, base64 encoded.",
    )
    master_key_file: Path | None = Field(
        default=None,
        description="File holding the base64 master key; default DATA_DIR/master.key.",
    )
    base_domain: str = Field(
        default="localhost",
        description="Tenants are served at SLUG.BASE_DOMAIN as well as under /t/SLUG.",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_format: Literal["json", "console"] = "json"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    auto_migrate: bool | None = Field(
        default=None,
        description="Migrate on start; default on for SQLite, off for PostgreSQL.",
    )
    default_quota: int | None = Field(
        default=None,
        ge=0,
        description="Storage quota in bytes given to new tenants; none means unlimited.",
    )
    chunk_size: int = Field(
        default=1024 * 1024,
        ge=4096,
        le=16 * 1024 * 1024,
        description="Plaintext bytes per encrypted chunk of new blobs.",
    )
    upload_idle_timeout: float = Field(
        default=60.0,
        gt=0,
        description="Seconds an upload may send nothing before it is discarded with 408.",
    )
    tus_max_size: int = Field(
        default=1024**4,
        ge=0,
        description="Largest resumable (tus) upload in bytes, announced as Tus-Max-Size.",
    )
    tus_expiry_seconds: float = Field(
        default=24 * 3600,
        gt=0,
        description="Seconds an unfinished resumable upload is kept after its last request; "
        "then it expires and its stored part is deleted.",
    )
    open_tenant_databases: int = Field(
        default=50,
        ge=1,
        description="PostgreSQL tenant databases (database level) kept connected at once; "
        "beyond it the least recently used are closed.",
    )
    open_tenant_files: int = Field(
        default=200,
        ge=1,
        description="SQLite tenant files (database level) kept open at once; beyond it the "
        "least recently used are closed.",
    )
    tenant_pool_size: int = Field(
        default=2,
        ge=1,
        description="Pooled connections per tenant database or file, and as many more on demand.",
    )
    prepared_statements: bool = Field(
        default=True,
        description="Let psycopg prepare statements it runs often; turn it off behind a "
        "pooler in transaction mode that cannot keep them, such as PgBouncer before 1.21.",
    )
    tenant_cache_seconds: float = Field(
        default=2.0,
        ge=0,
        description="How long a replica trusts its cached copy of a tenant's catalog row.",
    )
    redis_url: str | None = Field(
        default=None,
        repr=False,
        description="redis://[:PASSWORD@]HOST:PORT/DB or rediss://...; rate-limit counters, "
        "transfer slots, WebDAV locks and the job queue live there, shared by every replica. "
        "Default: the counters and locks in this process and the queue in a SQLite file of the "
        "data directory.",
    )
    basic_auth_failures_per_minute: int = Field(
        default=10,
        ge=1,
        le=10_000,
        description="Failed WebDAV logins (HTTP Basic) that one client address may make in a "
        "tenant per minute; further attempts get 429 until the minute has passed.",
    )
    token_cache_seconds: float = Field(
        default=2.0,
        ge=0,
        le=60,
        description="How long a replica trusts an API token it has checked; a revocation made "
        "elsewhere takes effect here within this time. 0 checks every request.",
    )

    login_limit_per_address: str = Field(
        default="20/minute",
        description="Login attempts one client address may make to one tenant, as "
        "COUNT/PERIOD (second, minute, hour or day); separate several limits with ';'.",
    )
    login_limit_per_account: str = Field(
        default="5/minute;30/hour",
        description="Failed logins and second-factor codes one account may have, in the "
        "same notation; past it the account's logins wait, whatever the address.",
    )
    session_idle_minutes: int = Field(
        default=60,
        ge=1,
        le=7 * 24 * 60,
        description="Minutes a web session lasts without a request before it ends.",
    )
    session_max_hours: int = Field(
        default=12,
        ge=1,
        le=30 * 24,
        description="Hours a web session lasts at most, however active, before a new login.",
    )
    secure_cookies: bool | None = Field(
        default=None,
        description="Mark web cookies Secure; default: when the request came over https.",
    )

    @field_validator("login_limit_per_address", "login_limit_per_account")
    @classmethod
    def check_rate_limit(cls, value: str) -> str:
        try:
            parse_many(value)
        except ValueError:
            raise ValueError(
                f"{value!r} is not a rate limit; write COUNT/PERIOD such as 5/minute, "
                "and separate several with ';'"
            ) from None
        return value

    smtp_host: str | None = Field(
        default=None,
        description="SMTP server for notification e-mail; unset, mail is logged and not sent.",
    )
    smtp_port: int = Field(default=587, ge=1, le=65535, description="Port of the SMTP server.")
    smtp_user: str | None = Field(
        default=None, description="User name to log in to the SMTP server."
    )
    smtp_password: str | None = Field(
        default=None, repr=False, description="Password to log in to the SMTP server."
    )
    smtp_from: str = Field(
        default="strongroom@localhost", description="Sender address of notification e-mail."
    )
    smtp_starttls: bool = Field(
        default=True,
        description="Upgrade the SMTP connection with STARTTLS before logging in or sending.",
    )
    serve_worker: bool | None = Field(
        default=None,
        description="Run the job consumer in a thread of `strongroom serve`; default on with "
        "the SQLite job queue and off with Redis, where `strongroom worker` runs the jobs.",
    )
    metering_flush_seconds: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="Seconds between two writes of a server's request and transfer counts to "
        "the catalog; a server that is killed loses at most this much metering.",
    )
    metrics_token: str | None = Field(
        default=None,
        repr=False,
        min_length=16,
        description="Bearer token that /metrics requires, at least 16 characters; without "
        "it /metrics is open on the platform URL.",
    )
    metrics_refresh_seconds: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="Seconds between two recomputations of the per-plan and heaviest-tenant "
        "gauges from the catalog.",
    )

    webhook_retry_delays: str = Field(
        default="30,120,600,3600",
        description="Seconds to wait before each retry of a failed webhook delivery, separated "
        "by commas; a delivery is tried once more than this list is long, then marked dead.",
    )
    webhook_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="Seconds one webhook delivery may take to connect and to get its response.",
    )
    webhook_block_private_addresses: bool = Field(
        default=True,
        description="Reject webhook URLs whose host is or resolves to a loopback, private, "
        "link-local or other non-public address, so that tenant admins cannot make the server "
        "call the operator's internal services. Turn off only where every tenant is trusted.",
    )
    webhook_blocked_networks: str = Field(
        default="",
        description="Further networks that webhook deliveries never reach, as CIDR blocks "
        "separated by commas (such as 203.0.113.0/24,2001:db8::/32), blocked even when "
        "private addresses are allowed.",
    )
    webhook_delivered_retention_days: int = Field(
        default=30,
        ge=1,
        le=3650,
        description="Days a delivered webhook delivery is kept after its delivery, for the "
        "delivery list; a daily job deletes older ones.",
    )
    webhook_dead_retention_days: int = Field(
        default=90,
        ge=1,
        le=3650,
        description="Days a dead webhook delivery is kept after its last attempt, so that an "
        "admin can still replay it; a daily job deletes older ones.",
    )

    export_retention_days: float = Field(
        default=7.0,
        gt=0,
        le=365,
        description="Days a finished export (audit trail, usage) stays downloadable; the hourly "
        "export sweep then deletes it and its encrypted content.",
    )
    export_max_held_bytes: int = Field(
        default=1024**3,
        ge=1,
        description="Bytes of content that one tenant's ready exports may hold, outside its storage "
        "quota; a tenant at the limit gets 409 for a new export until it deletes one or one "
        "expires.",
    )

    @field_validator("webhook_retry_delays")
    @classmethod
    def check_retry_delays(cls, value: str) -> str:
        parse_retry_delays(value)
        return value

    @field_validator("webhook_blocked_networks")
    @classmethod
    def check_blocked_networks(cls, value: str) -> str:
        parse_networks(value)
        return value

    @field_validator("database_url")
    @classmethod
    def check_database_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if value.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:", "postgres:")):
            return value
        raise ValueError(
            f"{value!r} is not a supported database URL; "
            "use sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DB"
        )

    @field_validator("redis_url")
    @classmethod
    def check_redis_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if value.startswith(("redis://", "rediss://", "unix://")):
            return value
        # The value may carry a password, so the message does not repeat it.
        raise ValueError(
            "the value is not a Redis URL; use redis://HOST:PORT/DB, rediss://HOST:PORT/DB "
            "or unix:///PATH"
        )

    @field_validator("master_key")
    @classmethod
    def check_master_key(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        decode_master_key(value, source="STRONGROOM_MASTER_KEY")
        return value

    @field_validator("base_domain")
    @classmethod
    def check_base_domain(cls, value: str) -> str:
        domain = value.strip().lower().rstrip(".")
        labels = domain.split(".")
        if not domain or any(not label or len(label) > 63 for label in labels):
            raise ValueError(
                f"{value!r} is not a domain name; use a name such as files.example.org"
            )
        return domain

    @model_validator(mode="after")
    def check_key_sources(self) -> Settings:
        if self.master_key and self.master_key_file:
            raise ValueError(
                "STRONGROOM_MASTER_KEY and STRONGROOM_MASTER_KEY_FILE are both set; set only one"
            )
        return self

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return normalise_database_url(self.database_url)
        return f"sqlite:///{(self.data_dir / 'strongroom.db').resolve()}"

    @property
    def resolved_blob_dir(self) -> Path:
        return (self.blob_dir or self.data_dir / "blobs").resolve()

    @property
    def resolved_master_key_file(self) -> Path:
        return (self.master_key_file or self.data_dir / "master.key").resolve()

    @property
    def webhook_retry_schedule(self) -> tuple[float, ...]:
        return parse_retry_delays(self.webhook_retry_delays)

    @property
    def webhook_blocked_network_list(self) -> tuple[IPNetwork, ...]:
        return parse_networks(self.webhook_blocked_networks)

    @property
    def is_embedded(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def should_serve_worker(self) -> bool:
        if self.serve_worker is not None:
            return self.serve_worker
        return self.redis_url is None

    @property
    def should_auto_migrate(self) -> bool:
        if self.auto_migrate is not None:
            return self.auto_migrate
        return self.is_embedded


def normalise_database_url(url: str) -> str:
    """Point postgresql:// URLs at the psycopg 3 driver, which SQLAlchemy does not pick by default."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def parse_retry_delays(text: str) -> tuple[float, ...]:
    """Parse seconds separated by commas; an empty text means no retry."""
    delays = []
    for part in text.split(","):
        if not part.strip():
            continue
        try:
            seconds = float(part)
        except ValueError:
            raise ValueError(
                f"{part.strip()!r} is not a number of seconds; write delays such as 30,120,600"
            ) from None
        if not 0 <= seconds <= 7 * 24 * 3600:
            raise ValueError(f"{part.strip()!r} seconds is outside 0 to 604800 (one week)")
        delays.append(seconds)
    return tuple(delays)


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """Parse CIDR blocks separated by commas."""
    networks = []
    for part in text.split(","):
        if not part.strip():
            continue
        try:
            networks.append(ipaddress.ip_network(part.strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"{part.strip()!r} is not a network; write CIDR blocks such as 10.0.0.0/8 or fc00::/7"
            ) from None
    return tuple(networks)


def decode_master_key(text: str, source: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            f"{source} is not valid base64; generate a key with: "
            "python -c 'import os,base64;print(base64.b64encode(os.urandom(32)).decode())'"
        ) from None
    if len(key) != MASTER_KEY_BYTES:
        raise ValueError(
            f"{source} decodes to {len(key)} bytes; the master key must be exactly "
            f"{MASTER_KEY_BYTES} bytes (44 characters of base64)"
        )
    return key


def load_settings(**overrides: object) -> Settings:
    """Read the environment into Settings, or raise one ConfigurationError naming each bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            variable = f"STRONGROOM_{field.upper()}" if field else "configuration"
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{variable}: {message}")
        raise ConfigurationError("; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
