"""The cache backend port: a few atomic primitives that :class:`~tokenforge.cache.core.Cache`
builds single flight, fill leases and invalidation on.

Contract (tested for every backend by ``tests/unit/cache/contract.py``):

* Values are opaque ``bytes`` (serialized response bodies); keys are ``str``.
* ``get(key, generation_key=None)`` resolves the key an entry lives under and reads it in
  one step: without a generation key that is ``key`` itself; with one it is
  ``f"{key}:g{n}"`` where ``n`` is the generation key's current integer value (``0`` when
  it was never bumped). Returns ``(resolved_key, value or None)``. The resolved key is what
  ``claim``/``fill`` take.
* ``claim(key, ttl_s)`` looks at a missing value again and, in the same atomic step, takes
  the right to fill it: a :class:`Claim` with the value when somebody stored it meanwhile,
  else with a fresh opaque lease token (one holder at a time, expiring after ``ttl_s``),
  else empty (another holder is filling it).
* ``fill(key, value, ttl_s, lease)`` stores ``value`` for ``ttl_s`` seconds **only if**
  ``lease`` is still the key's lease, and gives the lease up; ``value=None`` only gives it
  up. True when stored. An invalidation between ``lease`` and ``fill`` removes the lease,
  so a value read from the database before a commit can never be stored after the commit
  was announced (the leases of Facebook's memcache paper).
* ``invalidate(keys, generation_keys)`` deletes ``keys`` with their leases and adds one to
  each generation key, atomically for each key (entries under an old generation are never
  read again and expire by their TTL).
* ``ping()`` answers or raises; ``close()`` releases connections (idempotent).
* Every failure to reach the store raises :class:`CacheUnavailable` (vendor exceptions are
  translated at the adapter); nothing else is raised for an unreachable store.
* No vendor type appears in these signatures.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol

from tokenforge.errors import TransientError


class CacheUnavailable(TransientError):
    """The cache store did not answer (refused, timed out, or answered with an error).

    Never reaches a client: :class:`~tokenforge.cache.core.Cache` answers from the
    database instead. The message names no URL (it may carry a password)."""


@dataclass(frozen=True, slots=True)
class Claim:
    """What :meth:`CacheBackend.claim` found: the value, or a lease to fill it, or neither."""

    value: bytes | None = None
    lease: str | None = None


class CacheBackend(Protocol):
    #: what the store is ("memory", "redis"), for logs
    kind: str

    async def get(self, key: str, generation_key: str | None = None) -> tuple[str, bytes | None]:
        """``(resolved key, value or None)``; see the module docstring."""

    async def claim(self, key: str, ttl_s: float) -> Claim:
        """The value of ``key`` if present, else a fill lease on it unless another holder has one."""

    async def fill(self, key: str, value: bytes | None, ttl_s: float, lease: str) -> bool:
        """Store ``value`` (when not None) if ``lease`` still holds ``key``; release it."""

    async def invalidate(self, keys: Collection[str], generation_keys: Collection[str]) -> None:
        """Delete ``keys`` and their leases; bump each generation key."""

    async def ping(self) -> None:
        """Return when the store answers; raise :class:`CacheUnavailable` otherwise."""

    async def close(self) -> None:
        """Release connections."""
