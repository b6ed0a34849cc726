"""The read-through cache the API answers hot reads from: single flight, fill leases,
TTLs with jitter, invalidation after commit, and a circuit that keeps a dead store from
slowing requests down.

A read (:meth:`Cache.read`) returns the stored bytes or runs ``load`` (a database read
that renders the response body) and stores its result:

* **Stampedes.** Concurrent misses of one key in a process share one ``load`` (one future
  per key). So do concurrent reads answered from the database without the store (it is
  down, or the key's invalidation has not reached it yet): they have flights of their own,
  which never store what they load. Across processes the store hands out one fill lease per
  key (Redis ``SET NX PX``); a process that does not get it waits up to ``lock_wait_s`` for
  the value, then loads from the database without storing.
* **Invalidation.** :meth:`Cache.invalidate` is synchronous and called after commit
  (:func:`tokenforge.cache.entries.install_cache_invalidation`). It marks the keys dirty
  at once, so no later read in this process uses the store for them, and drops their
  flights, so no later read shares a load that started before it. A background task
  deletes them in the store (bumps a generation for lists), retrying while the store is
  down; the marks are cleared when the store has done it. Deleting a key also deletes its
  fill lease, so a value loaded before the commit is never stored after it, in any process.
  A mark older than the longest TTL is dropped unsent: whatever it would delete has
  expired (this bounds the marks kept through a long outage).
* **Degraded mode.** When the store fails, the request is answered from the database, the
  outage is logged once (and its end once), every read meanwhile counts as
  ``tokenforge_cache_requests_total{result="error"}``, and the store is not asked again for
  ``retry_after_s``; then one request probes it, and reads use it again once it answers.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from tokenforge.cache.ports import CacheBackend, CacheUnavailable
from tokenforge.observability.metrics import CACHE_REQUESTS

log = logging.getLogger(__name__)

#: Renders a response body from the database; raises (a 404, an outage) to answer without storing.
Loader = Callable[[], Awaitable[bytes]]


@dataclass(frozen=True, slots=True)
class Entry:
    """A kind of cached response. ``name`` is its key namespace and its metric label
    (``cache``); entries ``by_generation`` (lists) are invalidated all at once by bumping
    a generation counter that is part of their keys."""

    name: str
    ttl_s: float
    by_generation: bool = False


@dataclass(frozen=True, slots=True)
class _Mark:
    seq: int
    at: float


class Cache:
    """Read-through cache over one backend (or none); one per process, used from its event loop."""

    def __init__(
        self,
        backend: CacheBackend | None,
        *,
        prefix: str = "tf:2",
        ttl_s: Mapping[str, float] | None = None,
        jitter: float = 0.15,
        lease_s: float = 2.0,
        lock_wait_s: float = 0.25,
        retry_after_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """``backend`` None: no caching (``none://``), every read loads. ``prefix`` starts
        every key (bump its version when response bodies change shape); ``ttl_s`` overrides
        entries' TTLs by name; each stored value lives its TTL ± ``jitter`` (a fraction)."""
        self._backend = backend
        self._prefix = prefix
        self._ttl_overrides = dict(ttl_s or {})
        self._jitter = jitter
        self._lease_s = lease_s
        self._lock_wait_s = lock_wait_s
        self._retry_after_s = retry_after_s
        self._clock = clock
        self._sleep = sleep
        self._flights: dict[str, asyncio.Future[bytes]] = {}  # resolved key → the load that fills it
        self._uncached_flights: dict[str, asyncio.Future[bytes]] = {}  # key → a load that stores nothing
        self._dirty_keys: dict[str, _Mark] = {}
        self._dirty_generations: dict[str, _Mark] = {}
        self._seq = 0
        self._longest_ttl_s = 0.0
        self._flusher: asyncio.Task[None] | None = None
        self._open_until = 0.0  # the store is not asked before this (clock time)
        self._down_since: float | None = None

    @property
    def kind(self) -> str:
        """``memory``, ``redis`` or ``none``."""
        return self._backend.kind if self._backend is not None else "none"

    @property
    def up(self) -> bool:
        """False from a failure of the store until it answers again."""
        return self._down_since is None

    async def read(self, entry: Entry, key: str, load: Loader) -> bytes:
        """The body cached under ``entry``/``key``, or else ``load()``'s, which is stored.
        What ``load`` raises reaches every caller that shared its flight; nothing is stored."""
        backend = self._backend
        if backend is None:
            return await load()
        full = f"{self._prefix}:{entry.name}:{key}"
        generation_key = self._generation_key(entry) if entry.by_generation else None
        if self._dirty(full, generation_key):
            _count(entry, "miss" if self.up else "error")  # its invalidation has not reached the store yet
            return await self._uncached(full, load)
        if not self._may_ask():
            _count(entry, "error")
            return await self._uncached(full, load)
        try:
            resolved, value = await backend.get(full, generation_key)
        except CacheUnavailable as exc:
            self._failed(exc)
            _count(entry, "error")
            return await self._uncached(full, load)
        self._answered()
        if value is not None:
            _count(entry, "hit")
            return value
        _count(entry, "miss")
        return await self._single_flight(
            self._flights, resolved, lambda flight: self._fill(backend, entry, resolved, load, flight)
        )

    async def peek(self, entry: Entry, key: str) -> bytes | None:
        """The body stored under ``entry``/``key`` when :meth:`read` would answer with it from
        the store, else None (no store, an invalidation not yet sent, the store down or not
        holding it). One store round trip at most; never loads, never fills, never probes a
        store that failed (the :meth:`read` that follows a None does). A hit counts as one;
        a None counts nothing, so the :meth:`read` after it counts that request once."""
        backend = self._backend
        if backend is None or self._down_since is not None or self._clock() < self._open_until:
            return None
        full = f"{self._prefix}:{entry.name}:{key}"
        generation_key = self._generation_key(entry) if entry.by_generation else None
        if self._dirty(full, generation_key):
            return None
        try:
            _, value = await backend.get(full, generation_key)
        except CacheUnavailable as exc:
            self._failed(exc)
            return None
        if value is None or self._dirty(full, generation_key):  # invalidated while asking: doubt it
            return None
        self._answered()
        _count(entry, "hit")
        return value

    def invalidate(self, entry: Entry, keys: Iterable[str] = ()) -> None:
        """Forget ``keys`` of ``entry`` (every key of an entry ``by_generation``). Call after
        commit; returns at once (see the module docstring). Needs a running event loop."""
        if self._backend is None:
            return
        self._seq += 1
        mark = _Mark(self._seq, self._clock())
        self._longest_ttl_s = max(self._longest_ttl_s, self._ttl_base(entry))
        if entry.by_generation:
            self._dirty_generations[self._generation_key(entry)] = mark
            namespace = f"{self._prefix}:{entry.name}:"
            for flights in (self._flights, self._uncached_flights):
                for key in [k for k in flights if k.startswith(namespace)]:
                    del flights[key]
        else:
            for key in keys:
                full = f"{self._prefix}:{entry.name}:{key}"
                self._dirty_keys[full] = mark
                self._flights.pop(full, None)  # readers from now on must not get what it loads
                self._uncached_flights.pop(full, None)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush(), name="cache-invalidation")

    async def settled(self) -> None:
        """Return once every invalidation so far has reached the store."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)

    async def ping(self) -> None:
        """Ask the store now (readiness checks); raises :class:`CacheUnavailable`."""
        if self._backend is not None:
            try:
                await self._backend.ping()
            except CacheUnavailable as exc:
                self._failed(exc)
                raise
            self._answered()

    async def close(self, *, timeout_s: float = 1.0) -> None:
        """Send pending invalidations (for up to ``timeout_s`` unless the store is down),
        then release the store."""
        if self._flusher is not None and not self._flusher.done():
            if self.up:
                try:
                    await asyncio.wait_for(asyncio.shield(self._flusher), timeout_s)
                except TimeoutError:
                    pass
            if self._dirty_keys or self._dirty_generations:
                log.warning(
                    "cache closed with %d invalidations not sent",
                    len(self._dirty_keys) + len(self._dirty_generations),
                )
            self._flusher.cancel()
            try:
                await self._flusher
            except asyncio.CancelledError:
                pass
        if self._backend is not None:
            await self._backend.close()

    # -- reads ------------------------------------------------------------------------------

    async def _uncached(self, key: str, load: Loader) -> bytes:
        """``load()`` without the store, shared by concurrent reads of ``key`` (an outage must not
        send every reader of a hot key to the database). These flights are apart from the ones
        that fill the store, and an invalidation of ``key`` drops them too, so a read that starts
        after it loads afresh."""
        return await self._single_flight(self._uncached_flights, key, lambda _flight: load())

    async def _single_flight(
        self,
        flights: dict[str, asyncio.Future[bytes]],
        key: str,
        compute: Callable[[asyncio.Future[bytes]], Awaitable[bytes]],
    ) -> bytes:
        """One ``compute`` per key of ``flights`` at a time; concurrent callers share its result."""
        while True:
            flight = flights.get(key)
            if flight is None:
                flight = asyncio.get_running_loop().create_future()
                flights[key] = flight
                try:
                    value = await compute(flight)
                except BaseException as exc:
                    _land(flights, key, flight, exc)
                    raise
                _land(flights, key, flight, value)
                return value
            try:
                return await asyncio.shield(flight)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
                # the request that led the flight was cancelled, not this one: lead one

    async def _fill(
        self, backend: CacheBackend, entry: Entry, key: str, load: Loader, flight: asyncio.Future[bytes]
    ) -> bytes:
        try:
            claim = await backend.claim(key, self._lease_s)
        except CacheUnavailable as exc:
            self._failed(exc)
            return await load()
        if claim.value is not None:
            return claim.value
        if claim.lease is None:  # another process is loading it
            waited = await self._wait_for(backend, key)
            return waited if waited is not None else await load()
        try:
            value = await load()
        except BaseException:  # even when cancelled: other processes need not wait for the lease to expire
            await self._give_back(backend, key, None, entry, claim.lease)
            raise
        # Invalidated while loading (this flight was dropped): the value may predate the commit.
        await self._give_back(backend, key, value if self._flights.get(key) is flight else None, entry, claim.lease)
        return value

    async def _give_back(self, backend: CacheBackend, key: str, value: bytes | None, entry: Entry, lease: str) -> None:
        """Store ``value`` (None: nothing) under the lease and release it."""
        try:
            await backend.fill(key, value, self._ttl(entry), lease)
        except CacheUnavailable as exc:
            self._failed(exc)

    async def _wait_for(self, backend: CacheBackend, key: str) -> bytes | None:
        """The value another process is filling, if it lands within ``lock_wait_s``."""
        deadline = self._clock() + self._lock_wait_s
        pause_s = 0.005
        while self._clock() < deadline:
            await self._sleep(min(pause_s, max(0.0, deadline - self._clock())))
            pause_s *= 2
            try:
                _, value = await backend.get(key)
            except CacheUnavailable as exc:
                self._failed(exc)
                return None
            if value is not None:
                return value
        return None

    # -- invalidation -----------------------------------------------------------------------

    async def _flush(self) -> None:
        backend = self._backend
        assert backend is not None
        while self._dirty_keys or self._dirty_generations:
            self._drop_expired_marks()
            wait_s = self._open_until - self._clock()
            if self._down_since is not None and wait_s > 0:
                await self._sleep(wait_s)
                continue
            keys, generations = dict(self._dirty_keys), dict(self._dirty_generations)
            if not keys and not generations:
                return
            try:
                await backend.invalidate(list(keys), list(generations))
            except CacheUnavailable as exc:
                self._failed(exc)
                continue
            except Exception:  # a bug must not stop invalidation for good
                log.exception("cache invalidation failed")
                await self._sleep(self._retry_after_s)
                continue
            self._answered()
            for sent, dirty in ((keys, self._dirty_keys), (generations, self._dirty_generations)):
                for key, mark in sent.items():
                    if dirty.get(key) == mark:  # not invalidated again meanwhile
                        del dirty[key]

    def _drop_expired_marks(self) -> None:
        horizon = self._clock() - self._longest_ttl_s * (1 + self._jitter)
        for dirty in (self._dirty_keys, self._dirty_generations):
            for key in [k for k, mark in dirty.items() if mark.at < horizon]:
                del dirty[key]

    # -- the circuit ------------------------------------------------------------------------

    def _may_ask(self) -> bool:
        now = self._clock()
        if now >= self._open_until:
            if self._down_since is not None:  # half-open: this caller probes, the others wait
                self._open_until = now + self._retry_after_s
            return True
        return False

    def _failed(self, exc: CacheUnavailable) -> None:
        now = self._clock()
        self._open_until = now + self._retry_after_s
        if self._down_since is None:
            self._down_since = now
            log.warning(
                "cache (%s) unreachable, answering from the database and retrying every %.1f s: %s",
                self.kind,
                self._retry_after_s,
                exc.message,
            )

    def _answered(self) -> None:
        if self._down_since is not None:
            log.warning("cache (%s) reachable again after %.1f s", self.kind, self._clock() - self._down_since)
            self._down_since = None
            self._open_until = 0.0

    # -- keys and TTLs ----------------------------------------------------------------------

    def _dirty(self, full: str, generation_key: str | None) -> bool:
        """Whether an invalidation of the key (or of its generation) has not reached the store yet."""
        return full in self._dirty_keys or (generation_key is not None and generation_key in self._dirty_generations)

    def _generation_key(self, entry: Entry) -> str:
        return f"{self._prefix}:{entry.name}:generation"

    def _ttl_base(self, entry: Entry) -> float:
        return self._ttl_overrides.get(entry.name, entry.ttl_s)

    def _ttl(self, entry: Entry) -> float:
        """The entry's TTL ± jitter, so entries filled together do not expire together."""
        return self._ttl_base(entry) * random.uniform(1 - self._jitter, 1 + self._jitter)


def _land(
    flights: dict[str, asyncio.Future[bytes]], key: str, flight: asyncio.Future[bytes], outcome: bytes | BaseException
) -> None:
    """Hand ``outcome`` to the callers sharing ``flight`` and forget it (if an invalidation has not)."""
    if flights.get(key) is flight:
        del flights[key]
    if isinstance(outcome, asyncio.CancelledError):
        flight.cancel()
    elif isinstance(outcome, BaseException):
        flight.set_exception(outcome)
        flight.exception()  # retrieved: no "never retrieved" warning when nobody waited
    else:
        flight.set_result(outcome)


def _count(entry: Entry, result: str) -> None:
    CACHE_REQUESTS.labels(entry.name, result).inc()
