"""Thread pools made on first use, one per purpose, shared by the whole process."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

_pools: dict[str, ThreadPoolExecutor] = {}
_lock = threading.Lock()


def shared_pool(name: str, threads: int) -> ThreadPoolExecutor:
    """Return the process's pool called `name`, made with `threads` threads on its first use.

    Commands that never need a pool start no thread for it. The name is also the
    prefix of the pool's thread names, as py-spy and /proc show them.
    """
    with _lock:
        pool = _pools.get(name)
        if pool is None:
            pool = _pools[name] = ThreadPoolExecutor(threads, thread_name_prefix=name)
        return pool
