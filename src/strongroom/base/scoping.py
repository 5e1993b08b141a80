"""The one helper that builds tenant-scoped keys for blobs, caches, locks, jobs and rate limits.

Every such key starts with `tenants/` and the tenant id, so two tenants can never share one,
and a key built without a tenant is a programming error caught here.
"""

from __future__ import annotations

import uuid


def tenant_scoped_key(tenant_id: uuid.UUID, namespace: str, *parts: str) -> str:
    if not isinstance(tenant_id, uuid.UUID):
        raise TypeError(f"tenant_id must be a UUID, got {type(tenant_id).__name__}")
    for part in (namespace, *parts):
        if not part or "/" in part or part in {".", ".."}:
            raise ValueError(f"key part {part!r} is empty or contains a path separator")
    return "/".join(("tenants", str(tenant_id), namespace, *parts))
