"""Cache for hot reads (token detail, token lists, chain list), chosen by URL.

``memory://`` keeps entries in this process, ``redis://…`` shares them between processes,
``none://`` caches nothing. :mod:`tokenforge.cache.core` says how reads, stampedes,
invalidation and a dead store are handled; :mod:`tokenforge.cache.entries` what is cached
and what invalidates it; ``docs/decisions/0012-cache.md`` why.
"""

from __future__ import annotations

from typing import Any

from tokenforge.cache.core import Cache, Entry
from tokenforge.cache.entries import CHAIN_LIST, TOKEN, TOKEN_LIST, install_cache_invalidation
from tokenforge.cache.ports import CacheUnavailable

__all__ = [
    "CHAIN_LIST",
    "TOKEN",
    "TOKEN_LIST",
    "Cache",
    "CacheUnavailable",
    "Entry",
    "install_cache_invalidation",
    "open_cache",
]


def open_cache(url: str, *, timeout_s: float | None = None, **options: Any) -> Cache:
    """The cache for ``url``; connects lazily (a Redis that is down only degrades reads).

    ``timeout_s``: Redis connect and answer timeout; ``options`` go to :class:`Cache`
    (``prefix``, ``ttl_s``, ``retry_after_s``, …)."""
    if url.startswith("none://"):
        return Cache(None, **options)
    if url.startswith("memory://"):
        from tokenforge.cache.memory import MemoryBackend

        return Cache(MemoryBackend(), **options)
    if url.startswith(("redis://", "rediss://")):
        from tokenforge.cache.redis import DEFAULT_TIMEOUT_S, RedisBackend

        return Cache(RedisBackend(url, timeout_s=timeout_s or DEFAULT_TIMEOUT_S), **options)
    raise ValueError("cache URL must start with memory://, redis://, rediss:// or none://")  # never echo it
