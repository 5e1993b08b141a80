"""The key hierarchy above blobs: the master key and each tenant's versioned keys.

The master key comes from `STRONGROOM_MASTER_KEY` or a key file and lives only
in process memory. It wraps every version of every tenant key; the wrapped
versions are catalog rows. Tenant keys in turn wrap blob keys, which live in
the tenant's own store beside the blob rows (see `strongroom.drive.blobs`).
"""

from __future__ import annotations

import base64
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from strongroom.base.config import Settings, decode_master_key
from strongroom.base.errors import ConfigurationError, IntegrityError, NotFound
from strongroom.base.logging import get_logger
from strongroom.storage import crypto
from strongroom.tenancy.models import TenantKeyRow

log = get_logger(__name__)


def load_master_key(settings: Settings) -> bytes:
    """Return the master key from the environment or the key file, creating the file if allowed.

    Only the embedded default creates a key file by itself: a replica of a
    scaled-out deployment that made up its own key would encrypt with a key
    the others do not have.
    """
    if settings.master_key:
        return decode_master_key(settings.master_key, source="STRONGROOM_MASTER_KEY")

    path = settings.resolved_master_key_file
    if path.exists():
        return _read_key_file(path)
    if settings.master_key_file is not None or not settings.is_embedded:
        raise ConfigurationError(
            f"STRONGROOM_MASTER_KEY_FILE: {path} does not exist; create it with 32 random bytes "
            "in base64, or set STRONGROOM_MASTER_KEY"
        )
    return _create_key_file(path)


def _read_key_file(path: Path) -> bytes:
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"STRONGROOM_MASTER_KEY_FILE: cannot read {path}: {exc}") from exc
    try:
        return decode_master_key(text, source=f"STRONGROOM_MASTER_KEY_FILE ({path})")
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None


def _create_key_file(path: Path) -> bytes:
    key = crypto.generate_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(base64.b64encode(key).decode("ascii") + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    log.warning(
        "master_key_created",
        path=str(path),
        advice="back this file up apart from the data; without it no file can be decrypted",
    )
    return key


@dataclass(frozen=True)
class TenantKey:
    tenant_id: uuid.UUID
    version: int
    key: bytes


def new_tenant_key_row(master_key: bytes, tenant_id: uuid.UUID, version: int) -> TenantKeyRow:
    key = crypto.generate_key()
    wrapped = crypto.wrap_key(master_key, key, crypto.tenant_key_context(tenant_id, version))
    return TenantKeyRow(tenant_id=tenant_id, version=version, wrapped_key=wrapped)


class Keyring:
    """Unwraps tenant keys from catalog rows and keeps them for a short time.

    The cache is short so that a key destroyed by another replica (when a
    tenant is deleted) stops being usable here within `ttl_seconds`.
    """

    def __init__(self, master_key: bytes, engine: Engine, ttl_seconds: float = 60.0) -> None:
        self._master_key = master_key
        self._engine = engine
        self._ttl = ttl_seconds
        self._cache: dict[tuple[uuid.UUID, int | None], tuple[float, TenantKey]] = {}
        self._lock = threading.Lock()

    @property
    def master_key(self) -> bytes:
        return self._master_key

    def current(self, tenant_id: uuid.UUID) -> TenantKey:
        return self._get(tenant_id, None)

    def version(self, tenant_id: uuid.UUID, version: int) -> TenantKey:
        return self._get(tenant_id, version)

    def forget(self, tenant_id: uuid.UUID) -> None:
        with self._lock:
            for cache_key in [k for k in self._cache if k[0] == tenant_id]:
                del self._cache[cache_key]

    def _get(self, tenant_id: uuid.UUID, version: int | None) -> TenantKey:
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get((tenant_id, version))
        if cached and cached[0] > now:
            return cached[1]

        with Session(self._engine) as session:
            row = self._load_row(session, tenant_id, version)
        try:
            key = crypto.unwrap_key(
                self._master_key,
                row.wrapped_key,
                crypto.tenant_key_context(tenant_id, row.version),
            )
        except crypto.DecryptionFailed as exc:
            raise IntegrityError(
                f"key version {row.version} of tenant {tenant_id} does not unwrap with this "
                "master key; check that STRONGROOM_MASTER_KEY is the key this catalog was made with"
            ) from exc
        tenant_key = TenantKey(tenant_id, row.version, key)

        with self._lock:
            self._cache[(tenant_id, version)] = (now + self._ttl, tenant_key)
        return tenant_key

    @staticmethod
    def _load_row(session: Session, tenant_id: uuid.UUID, version: int | None) -> TenantKeyRow:
        query = select(TenantKeyRow).where(TenantKeyRow.tenant_id == tenant_id)
        if version is None:
            query = query.order_by(TenantKeyRow.version.desc()).limit(1)
        else:
            query = query.where(TenantKeyRow.version == version)
        row = session.scalars(query).first()
        if row is None:
            raise NotFound(f"tenant {tenant_id} has no key version {version or 'at all'}")
        return row


def latest_key_version(session: Session, tenant_id: uuid.UUID) -> int:
    latest = session.scalar(
        select(func.max(TenantKeyRow.version)).where(TenantKeyRow.tenant_id == tenant_id)
    )
    return latest or 0
