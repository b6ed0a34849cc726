"""In-process queue for the embedded default (no broker).

Same contract as the RabbitMQ backend, minus durability across process restarts: the
database outbox and the startup recovery sweep (``jobs.worker.recover``) cover that.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict, deque

from tokenforge.jobs.ports import Delivery, Handler

log = logging.getLogger(__name__)


class _Topic:
    def __init__(self) -> None:
        self.ready: deque[tuple[str, dict, int]] = deque()
        self.available = asyncio.Condition()
        self.dead: list[Delivery] = []


class MemorySubscription:
    def __init__(self, task: asyncio.Task, running: set[asyncio.Task]) -> None:
        self._task = task
        self._running = running

    async def stop(self) -> None:
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)


class MemoryQueue:
    def __init__(self, *, delivery_limit: int = 20) -> None:
        self.delivery_limit = delivery_limit
        self._topics: dict[str, _Topic] = defaultdict(_Topic)
        self._subscriptions: list[MemorySubscription] = []
        self._delayed: set[asyncio.TimerHandle] = set()
        self._puts: set[asyncio.Task] = set()

    async def publish(self, topic: str, body: dict, *, message_id: str) -> None:
        await self._put(topic, message_id, body, 0)

    async def _put(self, topic: str, message_id: str, body: dict, deliveries: int) -> None:
        t = self._topics[topic]
        async with t.available:
            t.ready.append((message_id, body, deliveries))
            t.available.notify()

    async def consume(self, topic: str, handler: Handler, *, prefetch: int) -> MemorySubscription:
        t = self._topics[topic]
        slots = asyncio.Semaphore(prefetch)
        running: set[asyncio.Task] = set()

        async def run(delivery: Delivery) -> None:
            try:
                await handler(delivery)
            except Exception:
                log.exception("handler failed for message %s", delivery.message_id)
                await delivery.nack(requeue=True)
            finally:
                if not delivery.settled:  # contract breach: treat as requeue
                    await delivery.nack(requeue=True)
                slots.release()

        async def loop() -> None:
            while True:
                await slots.acquire()
                async with t.available:
                    await t.available.wait_for(lambda: bool(t.ready))
                    message_id, body, deliveries = t.ready.popleft()
                deliveries += 1
                delivery = Delivery(topic, message_id, body, deliveries)
                if deliveries > self.delivery_limit:
                    t.dead.append(delivery)
                    slots.release()
                    continue
                delivery._ack = _noop
                delivery._nack = self._requeuer(topic, message_id, body, deliveries)
                task = asyncio.create_task(run(delivery))
                running.add(task)
                task.add_done_callback(running.discard)

        sub = MemorySubscription(asyncio.create_task(loop()), running)
        self._subscriptions.append(sub)
        return sub

    def _requeuer(self, topic: str, message_id: str, body: dict, deliveries: int):
        async def nack(requeue: bool, delay_s: float = 0.0) -> None:
            if requeue and delay_s > 0:
                self._later(delay_s, topic, message_id, body)
            elif requeue:
                await self._put(topic, message_id, body, deliveries)
            else:
                self._topics[topic].dead.append(Delivery(topic, message_id, body, deliveries))

        return nack

    def _later(self, delay_s: float, topic: str, message_id: str, body: dict) -> None:
        """Put the message back after ``delay_s`` as a fresh delivery (lost if the process
        stops first: the sweeper re-enqueues its job from the database)."""
        loop = asyncio.get_running_loop()

        def put() -> None:
            self._delayed.discard(handle)
            task = loop.create_task(self._put(topic, message_id, body, 0))
            self._puts.add(task)
            task.add_done_callback(self._puts.discard)

        handle = loop.call_later(delay_s, put)
        self._delayed.add(handle)

    async def dead_letters(self, topic: str) -> list[Delivery]:
        return list(self._topics[topic].dead)

    async def close(self) -> None:
        for handle in self._delayed:
            handle.cancel()
        self._delayed.clear()
        for sub in self._subscriptions:
            await sub.stop()
        self._subscriptions.clear()


async def _noop() -> None:
    return None
