"""WebDAV locks kept apart per drive: WsgiDAV's lock storage, one instance per tenant and drive.

WsgiDAV's lock manager keys locks by URL path and by token. Every user's
drive is mounted at the same `{base}/dav/`, so the same path names a
different file in each drive, and every tenant has a `/dav/x` too. One shared
storage would let a lock in one drive block writes to, and show its owner
text and token in, every other drive with that path. Here each drive gets a
storage of its own under `tenant_scoped_key`, chosen by the tenant that the
request middleware put in the request's context and by the drive that the
WebDAV application put there (`current_drive`).

The storages live in this process by default. With STRONGROOM_REDIS_URL they
live in Redis (`redis_locks.py`), under keys that contain the same
`tenant_scoped_key`, so that replicas behind a load balancer share them.

A lock lasts at most `MAX_LOCK_SECONDS`: a longer or `Infinite` timeout
is cut to it, so a lock that its client forgot ends on its own.
"""

from __future__ import annotations

import contextvars
import threading
import uuid
from typing import Any

import redis
from wsgidav.lock_man.lock_storage import LockStorageDict

from strongroom.base.errors import MissingTenantContext
from strongroom.base.logging import get_logger
from strongroom.base.scoping import tenant_scoped_key
from strongroom.interfaces.webdav.redis_locks import RedisLockScripts, RedisLockStorage
from strongroom.tenancy.context import current_tenant

log = get_logger(__name__)

# One hour, an estimate: long enough for a client to refresh its lock in time, since
# WsgiDAV's own default is a week, and short enough that a crashed client's lock soon ends.
MAX_LOCK_SECONDS = 3600

# The drive that the request's paths name: WebDAV shows each user their own drive, which
# the drive functions identify by its owner's user id. Set per request by `app.py`.
current_drive: contextvars.ContextVar[uuid.UUID | None] = contextvars.ContextVar(
    "current_drive", default=None
)


def capped_timeout(timeout: float | None) -> float:
    """Return `timeout` in seconds, cut to MAX_LOCK_SECONDS; None and -1 (Infinite) get the maximum."""
    if timeout is None or timeout < 0 or timeout > MAX_LOCK_SECONDS:
        return float(MAX_LOCK_SECONDS)
    return float(timeout)


class DriveLockStorage:
    """The interface of WsgiDAV's LockStorageDict, each call sent to the current drive's storage.

    Without a Redis client, each drive's storage is a LockStorageDict in this
    process. With one, it is a RedisLockStorage that every replica shares.

    NOTE: WsgiDAV's LockManager rejects a LOCK on a path while a PUT to it is
    being written, but it counts those writes in its own process, so a LOCK
    through another replica is granted during the PUT.
    """

    def __init__(self, redis_client: redis.Redis | None = None) -> None:
        self._storages: dict[str, LockStorageDict] = {}
        self._guard = threading.Lock()
        self._scripts = (
            None if redis_client is None else RedisLockScripts(redis_client, MAX_LOCK_SECONDS)
        )

    def __repr__(self) -> str:
        if self._scripts is not None:
            return f"{type(self).__name__}(Redis)"
        return f"{type(self).__name__}({len(self._storages)} drives)"

    def _storage(self) -> LockStorageDict | RedisLockStorage:
        tenant = current_tenant.get()
        if tenant is None:
            raise MissingTenantContext("a WebDAV lock was used outside a tenant's request")
        drive = current_drive.get()
        if drive is None:
            # A lock without a drive would be shared by all drives of the tenant.
            raise MissingTenantContext("a WebDAV lock was used outside a drive's request")
        key = tenant_scoped_key(tenant.id, "dav-locks", str(drive))
        if self._scripts is not None:
            return RedisLockStorage(self._scripts, key)
        with self._guard:
            storage = self._storages.get(key)
            if storage is None:
                storage = self._storages[key] = LockStorageDict()
                storage.open()
            return storage

    def open(self) -> None:
        """Do nothing: each drive's storage is opened when it is first used."""

    def close(self) -> None:
        """Close the storages in this process, but not a Redis client, which the runtime closes."""
        with self._guard:
            for storage in self._storages.values():
                storage.close()
            self._storages.clear()

    def cleanup(self) -> None:
        """Purge expired locks in this process; Redis expires its locks by itself."""
        with self._guard:
            storages = list(self._storages.values())
        for storage in storages:
            storage.cleanup()

    def clear(self) -> None:
        self._storage().clear()

    def get(self, token: str) -> dict[str, Any] | None:
        return self._storage().get(token)

    def create(self, path: str, lock: dict[str, Any]) -> dict[str, Any]:
        requested = lock.get("timeout")
        lock["timeout"] = capped_timeout(None if requested is None else float(requested))
        if lock["timeout"] != requested:
            log.info("webdav_lock_timeout_capped", seconds=lock["timeout"])
        return self._storage().create(path, lock)

    def refresh(self, token: str, *, timeout: float) -> dict[str, Any]:
        return self._storage().refresh(token, timeout=capped_timeout(timeout))

    def delete(self, token: str) -> bool:
        return self._storage().delete(token)

    def get_lock_list(
        self, path: str, *, include_root: bool, include_children: bool, token_only: bool
    ) -> list[Any]:
        return self._storage().get_lock_list(
            path,
            include_root=include_root,
            include_children=include_children,
            token_only=token_only,
        )
