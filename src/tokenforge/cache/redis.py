"""The Redis cache backend (``redis://`` / ``rediss://``), on redis-py's asyncio client.

Shared by every process, so a worker's invalidation reaches every API process. Built to
fail fast: short socket timeouts, no retries with back-off (redis-py retries three times
with up to 10 s of back-off by default), one immediate retry only for a connection that
turns out to be dead (pooled connections all die when Redis restarts). Each primitive is
one round trip; read, claim and fill are Lua scripts so that "current generation, then the
value under it", "the value, or else the lease" and "store only while the lease is mine"
are each atomic.

The read script builds the value key from the generation it reads, so it addresses a key
it was not given: fine on one Redis server (what TokenForge runs), not on Redis Cluster.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Collection
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from tokenforge.cache.ports import CacheUnavailable, Claim

T = TypeVar("T")

#: Seconds to connect or to wait for an answer: Redis answers a loopback or LAN request in
#: well under a millisecond, so anything slower is treated as an outage.
DEFAULT_TIMEOUT_S = 0.2

_GET_CURRENT = """
local k = ARGV[1] .. ':g' .. (redis.call('GET', KEYS[1]) or '0')
return {k, redis.call('GET', k)}
"""

_CLAIM = """
local v = redis.call('GET', KEYS[1])
if v then return {1, v} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2, ARGV[1]} end
return {0}
"""

_FILL = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
if ARGV[2] == '1' then
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
  return 1
end
return 0
"""


def lease_key(key: str) -> str:
    return f"{key}:lock"


class RedisBackend:
    kind = "redis"

    def __init__(self, url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        """Connects lazily: a Redis that is down at start only makes reads degraded."""
        self._redis: Redis = Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
            client_name="tokenforge",
        )
        self._get_current = self._redis.register_script(_GET_CURRENT)
        self._claim = self._redis.register_script(_CLAIM)
        self._fill = self._redis.register_script(_FILL)

    async def _call(self, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        except (RedisError, OSError) as exc:  # the message names host and port, never the password
            raise CacheUnavailable(f"redis: {type(exc).__name__}: {exc}") from None

    async def get(self, key: str, generation_key: str | None = None) -> tuple[str, bytes | None]:
        if generation_key is None:
            return key, await self._call(lambda: self._redis.get(key))
        resolved, value = await self._call(lambda: self._get_current(keys=[generation_key], args=[key]))
        return resolved.decode(), value

    async def claim(self, key: str, ttl_s: float) -> Claim:
        token = secrets.token_hex(8)
        found = await self._call(lambda: self._claim(keys=[key, lease_key(key)], args=[token, _ms(ttl_s)]))
        if found[0] == 1:
            return Claim(value=found[1])
        return Claim(lease=token) if found[0] == 2 else Claim()

    async def fill(self, key: str, value: bytes | None, ttl_s: float, lease: str) -> bool:
        args: list[Any] = [lease, "0", b"", 1] if value is None else [lease, "1", value, _ms(ttl_s)]
        return bool(await self._call(lambda: self._fill(keys=[key, lease_key(key)], args=args)))

    async def invalidate(self, keys: Collection[str], generation_keys: Collection[str]) -> None:
        async def send() -> None:
            async with self._redis.pipeline(transaction=False) as pipe:
                if keys:
                    pipe.delete(*keys, *(lease_key(k) for k in keys))
                for key in generation_keys:
                    pipe.incr(key)
                await pipe.execute()

        await self._call(send)

    async def ping(self) -> None:
        await self._call(lambda: self._redis.execute_command("PING"))

    async def close(self) -> None:
        await self._redis.aclose()


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
