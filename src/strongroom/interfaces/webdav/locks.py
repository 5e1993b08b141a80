"""WebDAV locks kept apart per tenant: WsgiDAV's lock storage, one instance per tenant key.

WsgiDAV's lock manager keys locks by URL path and by token. Both forms of a
tenant's base URL map to the same paths, and every tenant has a `/dav/x`, so
one shared storage would let one tenant's lock block or reveal another's.
Here each tenant gets a storage of its own under `tenant_scoped_key`, chosen
by the tenant that the request middleware put in the request's context.
"""

from __future__ import annotations

import threading
from typing import Any

from wsgidav.lock_man.lock_storage import LockStorageDict

from strongroom.base.errors import MissingTenantContext
from strongroom.base.scoping import tenant_scoped_key
from strongroom.tenancy.context import current_tenant


class TenantLockStorage:
    """The interface of WsgiDAV's LockStorageDict, each call sent to the current tenant's storage.

    NOTE: locks live in this process, so replicas behind a load balancer do not
    see each other's locks. WsgiDAV's Redis lock storage would share them, once
    its keys carry the tenant as these do.
    """

    def __init__(self) -> None:
        self._storages: dict[str, LockStorageDict] = {}
        self._guard = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self._storages)} tenants)"

    def _storage(self) -> LockStorageDict:
        tenant = current_tenant.get()
        if tenant is None:
            raise MissingTenantContext("a WebDAV lock was used outside a tenant's request")
        key = tenant_scoped_key(tenant.id, "dav-locks")
        with self._guard:
            storage = self._storages.get(key)
            if storage is None:
                storage = self._storages[key] = LockStorageDict()
                storage.open()
            return storage

    def open(self) -> None:
        """Do nothing: each tenant's storage is opened when it is first used."""

    def close(self) -> None:
        with self._guard:
            for storage in self._storages.values():
                storage.close()
            self._storages.clear()

    def cleanup(self) -> None:
        with self._guard:
            storages = list(self._storages.values())
        for storage in storages:
            storage.cleanup()

    def clear(self) -> None:
        self._storage().clear()

    def get(self, token: str) -> dict[str, Any] | None:
        return self._storage().get(token)

    def create(self, path: str, lock: dict[str, Any]) -> dict[str, Any]:
        return self._storage().create(path, lock)

    def refresh(self, token: str, *, timeout: float) -> dict[str, Any]:
        return self._storage().refresh(token, timeout=timeout)

    def delete(self, token: str) -> bool:
        return self._storage().delete(token)

    def get_lock_list(
        self, path: str, *, include_root: bool, include_children: bool, token_only: bool
    ) -> list[Any]:
        return self._storage().get_lock_list(
            path, include_root=include_root, include_children=include_children, token_only=token_only
        )
