"""Test doubles for the cache (a clock the test moves, a store the test can take down), and
what cache tests count: cache results, SQL statements."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterator
from contextlib import contextmanager

from prometheus_client import REGISTRY
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from tokenforge.cache import Cache
from tokenforge.cache.memory import MemoryBackend
from tokenforge.cache.ports import CacheUnavailable, Claim


class FakeClock:
    """Time that moves only when the test says; ``sleep`` returns once it has moved far enough."""

    def __init__(self) -> None:
        self.now = 1000.0
        self._moved = asyncio.Event()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self._moved.set()
        self._moved = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        until = self.now + seconds
        while self.now < until:
            await self._moved.wait()


class FlakyBackend(MemoryBackend):
    """The memory backend, failing every call while ``down``; counts the calls that reached it.
    While ``invalidations_held`` is set to an unset event, invalidations wait for it (a store slow
    to confirm a delete: the keys stay dirty meanwhile). ``answered()`` returns once no call is
    waiting for the store."""

    kind = "flaky"

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.down = False
        self.calls = 0
        self.fills: list[float] = []  # the TTL of every value stored
        self.invalidations_held: asyncio.Event | None = None
        self._waiting = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def answered(self) -> None:
        await self._idle.wait()

    async def _reach(self) -> None:
        self.calls += 1
        if self.down:
            self._waiting += 1
            self._idle.clear()
            try:
                await asyncio.sleep(0)  # a real store fails after a round trip, letting others run meanwhile
            finally:
                self._waiting -= 1
                if not self._waiting:
                    self._idle.set()
            raise CacheUnavailable("flaky: connection refused")

    async def get(self, key: str, generation_key: str | None = None) -> tuple[str, bytes | None]:
        await self._reach()
        return await super().get(key, generation_key)

    async def claim(self, key: str, ttl_s: float) -> Claim:
        await self._reach()
        return await super().claim(key, ttl_s)

    async def fill(self, key: str, value: bytes | None, ttl_s: float, lease: str) -> bool:
        await self._reach()
        stored = await super().fill(key, value, ttl_s, lease)
        if stored:
            self.fills.append(ttl_s)
        return stored

    async def invalidate(self, keys: Collection[str], generation_keys: Collection[str]) -> None:
        await self._reach()
        if self.invalidations_held is not None:
            await self.invalidations_held.wait()
        await super().invalidate(keys, generation_keys)


def cache_count(cache: str, result: str) -> float:
    """``tokenforge_cache_requests_total{cache, result}`` now."""
    return REGISTRY.get_sample_value("tokenforge_cache_requests_total", {"cache": cache, "result": result}) or 0.0


@contextmanager
def sql_statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """Every SQL statement ``engine`` sends while the block runs, in order."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


def container_cache(container) -> Cache:
    """The container's cache (bootstrap opens it from ``cache_url`` and subscribes it to the feed)."""
    return container.cache
