"""The per-process cache backend (``memory://``): a dict with TTLs, bounded by LRU eviction.

The embedded default and tests. Every process has its own; a process that only reads
(an API process) never learns of another process's writes through it, so scaled-out
deployments use Redis.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Collection

from tokenforge.cache.ports import Claim

#: Entries kept at most; the least recently used go first (expired ones are dropped on sight).
DEFAULT_MAX_ENTRIES = 10_000


class MemoryBackend:
    kind = "memory"

    def __init__(self, *, max_entries: int = DEFAULT_MAX_ENTRIES, clock: Callable[[], float] = time.monotonic) -> None:
        self._max_entries = max_entries
        self._clock = clock
        self._values: OrderedDict[str, tuple[float, bytes]] = OrderedDict()  # key → (expires at, value)
        self._leases: dict[str, tuple[float, str]] = {}  # key → (expires at, token)
        self._generations: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._values)

    async def get(self, key: str, generation_key: str | None = None) -> tuple[str, bytes | None]:
        if generation_key is not None:
            key = f"{key}:g{self._generations.get(generation_key, 0)}"
        entry = self._values.get(key)
        if entry is None:
            return key, None
        if entry[0] <= self._clock():
            del self._values[key]
            return key, None
        self._values.move_to_end(key)
        return key, entry[1]

    async def claim(self, key: str, ttl_s: float) -> Claim:
        _, value = await self.get(key)
        if value is not None:
            return Claim(value=value)
        now = self._clock()
        held = self._leases.get(key)
        if held is not None and held[0] > now:
            return Claim()
        token = secrets.token_hex(8)
        self._leases[key] = (now + ttl_s, token)
        return Claim(lease=token)

    async def fill(self, key: str, value: bytes | None, ttl_s: float, lease: str) -> bool:
        held = self._leases.get(key)
        now = self._clock()
        if held is None or held[1] != lease or held[0] <= now:
            return False
        del self._leases[key]
        if value is None:
            return False
        self._values[key] = (now + ttl_s, value)
        self._values.move_to_end(key)
        while len(self._values) > self._max_entries:
            self._values.popitem(last=False)
        return True

    async def invalidate(self, keys: Collection[str], generation_keys: Collection[str]) -> None:
        for key in keys:
            self._values.pop(key, None)
            self._leases.pop(key, None)
        for key in generation_keys:
            self._generations[key] = self._generations.get(key, 0) + 1

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._values.clear()
        self._leases.clear()
