"""WebDAV locks of one drive in Redis, shared by every replica: the interface of LockStorageDict.

Keys, for the drive whose `tenant_scoped_key` is SCOPE:

- `strongroom:{SCOPE}:lock:TOKEN`, a string: the lock as JSON, with the lock's
  timeout as the key's expiry, so Redis ends a lock that is not refreshed.
- `strongroom:{SCOPE}:index`, a hash from token to scope, depth and root path,
  for the lookups by path. A field whose lock key has expired is dropped by
  the next script that reads it. The hash itself expires one lock timeout
  after its last write, so it never outlives the last of its locks for long.

The braces make SCOPE a Redis Cluster hash tag, so all keys of one drive are
in one slot, as the scripts require. Every change runs as one Lua script, so
two replicas never see a lock half written. `create` checks for conflicting
locks in the same script, so of two replicas that take an exclusive lock on
one path at the same moment, only one succeeds.

A lock's `expire` is computed from the key's remaining time (PTTL) and this
process's clock, so replicas whose clocks differ still agree on when a lock
ends.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from redis.commands.core import Script
from wsgidav.dav_error import (
    HTTP_LOCKED,
    HTTP_PRECONDITION_FAILED,
    HTTP_SERVICE_UNAVAILABLE,
    DAVError,
    DAVErrorCondition,
    PRECONDITION_CODE_LockConflict,
)
from wsgidav.lock_man.lock_manager import generate_lock_token, normalize_lock_root, validate_lock

from strongroom.base.logging import get_logger

log = get_logger(__name__)

KEY_PREFIX = "strongroom"

# True when the path `path` lies strictly below the folder `parent`; both are normalised
# lock roots, such as "/" or "/a/b", as normalize_lock_root makes them.
IS_BELOW = """
local function is_below(path, parent)
    if path == parent then
        return false
    end
    if parent == '/' then
        return true
    end
    return string.sub(path, 1, #parent + 1) == parent .. '/'
end
"""

# KEYS[1]: index. ARGV: lock key prefix, token, lock JSON, lock milliseconds, index entry
# (scope letter, depth letter, root), index milliseconds. Returns the root of a conflicting
# lock, or nil once the lock is stored. The rules are those of WsgiDAV 4.3's
# LockManager._check_lock_permission: two shared locks never conflict, a lock conflicts
# with one on the same root and with a depth-infinity lock above it, and a depth-infinity
# lock conflicts with any lock below it.
CREATE = (
    IS_BELOW
    + """
local new_scope = string.sub(ARGV[5], 1, 1)
local new_depth = string.sub(ARGV[5], 2, 2)
local new_root = string.sub(ARGV[5], 3)
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
    local token, entry = entries[i], entries[i + 1]
    if redis.call('EXISTS', ARGV[1] .. token) == 0 then
        redis.call('HDEL', KEYS[1], token)
    else
        local scope = string.sub(entry, 1, 1)
        local depth = string.sub(entry, 2, 2)
        local root = string.sub(entry, 3)
        local both_shared = scope == 's' and new_scope == 's'
        if root == new_root and not both_shared then
            return root
        end
        if depth == 'i' and is_below(new_root, root) and not both_shared then
            return root
        end
        if new_depth == 'i' and is_below(root, new_root) then
            return root
        end
    end
end
redis.call('SET', ARGV[1] .. ARGV[2], ARGV[3], 'PX', ARGV[4])
redis.call('HSET', KEYS[1], ARGV[2], ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return nil
"""
)

# The start of the scripts that read one lock: its JSON in `value`, or nil returned after
# dropping the token of an expired lock from the index (KEYS[1]).
_READ_LOCK = """
local key = ARGV[1] .. ARGV[2]
local value = redis.call('GET', key)
if not value then
    redis.call('HDEL', KEYS[1], ARGV[2])
    return nil
end
"""

# KEYS[1]: index. ARGV: lock key prefix, token. Returns {lock JSON, milliseconds left}, or
# nil after dropping the token from the index.
GET = _READ_LOCK + """
return {value, redis.call('PTTL', key)}
"""

# KEYS[1]: index. ARGV: lock key prefix, token, lock milliseconds, timeout in seconds,
# index milliseconds. Returns the updated lock JSON, or nil when the lock has expired, so
# that a refresh never brings an ended lock back.
REFRESH = _READ_LOCK + """
local lock = cjson.decode(value)
lock['timeout'] = tonumber(ARGV[4])
value = cjson.encode(lock)
redis.call('SET', key, value, 'PX', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return value
"""

# KEYS[1]: index. ARGV: lock key prefix, token. Returns 1 if the lock existed, else 0.
DELETE = """
redis.call('HDEL', KEYS[1], ARGV[2])
return redis.call('DEL', ARGV[1] .. ARGV[2])
"""

# KEYS[1]: index. ARGV: lock key prefix, path, "1" to include the path's own locks, "1" to
# include the locks below it. Returns lock JSON and milliseconds left, alternating.
LIST = (
    IS_BELOW
    + """
local found = {}
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
    local token, root = entries[i], string.sub(entries[i + 1], 3)
    if (ARGV[3] == '1' and root == ARGV[2]) or (ARGV[4] == '1' and is_below(root, ARGV[2])) then
        local key = ARGV[1] .. token
        local value = redis.call('GET', key)
        if value then
            table.insert(found, value)
            table.insert(found, redis.call('PTTL', key))
        else
            redis.call('HDEL', KEYS[1], token)
        end
    end
end
return found
"""
)

# KEYS[1]: index. ARGV: lock key prefix. Returns the number of locks deleted.
CLEAR = """
local tokens = redis.call('HKEYS', KEYS[1])
for _, token in ipairs(tokens) do
    redis.call('DEL', ARGV[1] .. token)
end
redis.call('DEL', KEYS[1])
return #tokens
"""


class RedisLockScripts:
    """Lock scripts registered on one Redis client, shared by the storages of every drive."""

    def __init__(self, client: redis.Redis, max_lock_seconds: float) -> None:
        self.client = client
        # The index outlives each write by the longest lock, so it outlives every lock in it.
        self.index_milliseconds = _milliseconds(max_lock_seconds)
        self.create: Script = client.register_script(CREATE)
        self.get: Script = client.register_script(GET)
        self.refresh: Script = client.register_script(REFRESH)
        self.delete: Script = client.register_script(DELETE)
        self.list: Script = client.register_script(LIST)
        self.clear: Script = client.register_script(CLEAR)


class RedisLockStorage:
    """The locks of one drive in Redis, with the methods of WsgiDAV's LockStorageDict.

    `scope` is the drive's `tenant_scoped_key`, which every key of this storage
    contains. The caller caps the timeout, because this class stores the one it is given.
    """

    def __init__(self, scripts: RedisLockScripts, scope: str) -> None:
        self._scripts = scripts
        base = f"{KEY_PREFIX}:{{{scope}}}"
        self._index = f"{base}:index"
        self._lock_prefix = f"{base}:lock:"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._index!r})"

    def open(self) -> None:
        """Do nothing: the runtime owns the Redis client."""

    def close(self) -> None:
        """Do nothing: the runtime owns the Redis client and closes it."""

    def cleanup(self) -> None:
        """Do nothing: Redis expires the locks, and reads drop their index entries."""

    def clear(self) -> None:
        with redis_errors():
            self._scripts.clear(keys=[self._index], args=[self._lock_prefix])

    def get(self, token: str) -> dict[str, Any] | None:
        with redis_errors():
            found = self._scripts.get(keys=[self._index], args=[self._lock_prefix, token])
        if found is None:
            return None
        value, milliseconds = found
        return decode_lock(value, milliseconds)

    def create(self, path: str, lock: dict[str, Any]) -> dict[str, Any]:
        """Store a new lock on `path` and return it with its root, token and expiry set.

        Raises DAVError 423 when a lock stored since the lock manager's check
        conflicts with it, as one taken through another replica can.
        """
        if lock.get("token") is not None or lock.get("expire") is not None:
            raise ValueError("create takes a new lock, without a token or an expiry")
        root = normalize_lock_root(path)
        timeout = float(lock["timeout"])
        lock.update(root=root, timeout=timeout, token=generate_lock_token())
        lock["expire"] = time.time() + timeout
        validate_lock(lock)
        entry = f"{lock['scope'][0]}{lock['depth'][0]}{root}"
        with redis_errors():
            conflict = self._scripts.create(
                keys=[self._index],
                args=[
                    self._lock_prefix,
                    lock["token"],
                    encode_lock(lock),
                    _milliseconds(timeout),
                    entry,
                    self._scripts.index_milliseconds,
                ],
            )
        if conflict is not None:
            log.info("webdav_lock_conflict_between_replicas")
            condition = DAVErrorCondition(PRECONDITION_CODE_LockConflict)
            condition.add_href(conflict.decode())
            raise DAVError(HTTP_LOCKED, err_condition=condition)
        return lock

    def refresh(self, token: str, *, timeout: float) -> dict[str, Any]:
        """Restart the lock's timeout; raise DAVError 412 when the lock has ended meanwhile."""
        with redis_errors():
            value = self._scripts.refresh(
                keys=[self._index],
                args=[
                    self._lock_prefix,
                    token,
                    _milliseconds(timeout),
                    repr(float(timeout)),
                    self._scripts.index_milliseconds,
                ],
            )
        if value is None:
            raise DAVError(
                HTTP_PRECONDITION_FAILED,
                context_info="the lock expired or was released before its refresh; take a new lock",
            )
        return decode_lock(value, _milliseconds(timeout))

    def delete(self, token: str) -> bool:
        with redis_errors():
            deleted = self._scripts.delete(keys=[self._index], args=[self._lock_prefix, token])
        return bool(deleted)

    def get_lock_list(
        self, path: str, *, include_root: bool, include_children: bool, token_only: bool
    ) -> list[Any]:
        root = normalize_lock_root(path)
        with redis_errors():
            found = self._scripts.list(
                keys=[self._index],
                args=[
                    self._lock_prefix,
                    root,
                    "1" if include_root else "0",
                    "1" if include_children else "0",
                ],
            )
        locks = [decode_lock(found[i], found[i + 1]) for i in range(0, len(found), 2)]
        if token_only:
            return [lock["token"] for lock in locks]
        return locks


def encode_lock(lock: dict[str, Any]) -> str:
    """Return the lock as JSON, without its expiry, which the key's own expiry replaces.

    The owner is an XML fragment in bytes, kept in base64 because JSON has no bytes.
    """
    stored = {name: value for name, value in lock.items() if name != "expire"}
    stored["owner"] = base64.b64encode(lock["owner"]).decode("ascii")
    return json.dumps(stored, ensure_ascii=False)


def decode_lock(value: bytes, milliseconds_left: int) -> dict[str, Any]:
    lock = json.loads(value)
    lock["owner"] = base64.b64decode(lock["owner"])
    lock["timeout"] = float(lock["timeout"])
    lock["expire"] = time.time() + milliseconds_left / 1000
    return lock


def _milliseconds(seconds: float) -> int:
    if seconds <= 0:
        raise ValueError(f"a lock timeout of {seconds!r} seconds is not positive; cap it first")
    return max(1, round(seconds * 1000))


@contextmanager
def redis_errors() -> Iterator[None]:
    """Turn a failure of Redis into a 503: without the shared locks, no write can be checked."""
    try:
        yield
    except redis.RedisError as error:
        log.warning("webdav_lock_store_failed", error_type=type(error).__name__, error=str(error))
        raise DAVError(
            HTTP_SERVICE_UNAVAILABLE,
            context_info="the WebDAV lock store is unavailable; retry in a moment",
        ) from error
