"""A queue that connects on first use, for processes that rarely need the broker.

The API process never publishes (the relay does, from the outbox) and asks the broker only
about dead letters, so it must start, and accept launches into the outbox, while the broker
is down. :class:`LazyQueue` opens the real queue at its first use and again after a failed
attempt; until then every call raises ``TransientError`` (``BROKER_UNAVAILABLE``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from tokenforge.jobs.ports import Body, Delivery, Handler, JobQueue, Subscription


class LazyQueue:
    def __init__(self, connect: Callable[[], Awaitable[JobQueue]]) -> None:
        self._connect = connect
        self._queue: JobQueue | None = None
        self._lock = asyncio.Lock()

    async def _opened(self) -> JobQueue:
        if self._queue is None:
            async with self._lock:
                if self._queue is None:
                    self._queue = await self._connect()  # raises TransientError when down
        return self._queue

    async def publish(self, topic: str, body: Body, *, message_id: str, headers: dict[str, str] | None = None) -> None:
        await (await self._opened()).publish(topic, body, message_id=message_id, headers=headers)

    async def consume(self, topic: str, handler: Handler, *, prefetch: int) -> Subscription:
        return await (await self._opened()).consume(topic, handler, prefetch=prefetch)

    async def dead_letters(self, topic: str) -> list[Delivery]:
        return await (await self._opened()).dead_letters(topic)

    async def take_dead_letters(self, topic: str, *, limit: int) -> list[Delivery]:
        return await (await self._opened()).take_dead_letters(topic, limit=limit)

    async def depth(self, topic: str) -> int:
        return await (await self._opened()).depth(topic)

    async def ping(self) -> None:
        queue = await self._opened()
        ping = getattr(queue, "ping", None)
        if ping is not None:
            await ping()

    async def close(self) -> None:
        if self._queue is not None:
            await self._queue.close()
