"""A queue that connects on first use, for processes that rarely need the broker.

The API process never publishes (the relay does, from the outbox) and asks the broker only
about dead letters, so it must start, and accept launches into the outbox while the broker
is down. :class:`LazyQueue` opens the real queue at its first use and again after a failed
attempt; until then every call raises ``TransientError`` (``BROKER_UNAVAILABLE``).

Callers give up early (a readiness probe after one second), but a cancelled aio-pika
connect goes on connecting and a late success would hold a connection nobody closes. So
the connect runs in one task of the queue's own that callers await shielded: it is never
cancelled, all callers share it, a failed one is dropped (the next use tries again), and
what it connects after :meth:`close` is closed at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from tokenforge.errors import ErrorCode, TransientError
from tokenforge.jobs.ports import Body, Delivery, Handler, JobQueue, Subscription


class LazyQueue:
    def __init__(self, connect: Callable[[], Awaitable[JobQueue]]) -> None:
        self._connect = connect
        self._queue: JobQueue | None = None
        self._connecting: asyncio.Task[JobQueue] | None = None
        self._closed = False

    async def _opened(self) -> JobQueue:
        if self._queue is not None:
            return self._queue
        if self._closed:
            raise TransientError("the queue is closed", code=ErrorCode.BROKER_UNAVAILABLE)
        if self._connecting is None:
            self._connecting = asyncio.create_task(self._connect_once(), name="queue-connect")
            self._connecting.add_done_callback(self._connected)
        return await asyncio.shield(self._connecting)  # raises TransientError when down

    async def _connect_once(self) -> JobQueue:
        queue = await self._connect()
        if self._closed:  # closed while connecting: nobody will use it
            await queue.close()
            raise TransientError("the queue is closed", code=ErrorCode.BROKER_UNAVAILABLE)
        self._queue = queue
        return queue

    def _connected(self, task: asyncio.Task[JobQueue]) -> None:
        """Drop a failed connect so that the next use tries again (its error is retrieved:
        the callers that awaited it may all have given up)."""
        if task.cancelled() or task.exception() is not None:
            self._connecting = None

    async def publish(self, topic: str, body: Body, *, message_id: str, headers: dict[str, str] | None = None) -> None:
        await (await self._opened()).publish(topic, body, message_id=message_id, headers=headers)

    async def consume(self, topic: str, handler: Handler, *, prefetch: int) -> Subscription:
        return await (await self._opened()).consume(topic, handler, prefetch=prefetch)

    async def dead_letters(self, topic: str, *, limit: int | None = None) -> list[Delivery]:
        return await (await self._opened()).dead_letters(topic, limit=limit)

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
        """Close the connected queue; a connect still running closes what it gets."""
        self._closed = True
        if self._queue is not None:
            queue, self._queue = self._queue, None
            await queue.close()
