"""In-process queue for the embedded default (no broker).

Same contract as every backend (``jobs/ports.py``), minus durability across process
restarts: the database outbox and the sweeper's start-up pass (``jobs/sweeper.py``)
cover that. A message nacked with a delay waits on the event loop's clock; ``close()``
drops such messages (the sweeper re-enqueues their jobs from the database).

:meth:`MemoryQueue.join` waits until a topic has nothing ready, delayed or in flight:
tests await it instead of polling.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from tokenforge.jobs.backends import finish_handlers
from tokenforge.jobs.ports import STOP_TIMEOUT_S, Body, Delivery, Handler

log = logging.getLogger(__name__)


class _Topic:
    def __init__(self, name: str) -> None:
        self.name = name
        #: (message_id, body, deliveries so far) waiting for a consumer
        self.ready: deque[tuple[str, Body, int]] = deque()
        self.available = asyncio.Condition()
        self.dead: list[Delivery] = []
        #: headers of messages not yet acked, by message id
        self.headers: dict[str, dict[str, str]] = {}
        self.delayed = 0  # nacked with a delay, not yet back in ``ready``
        self.in_flight = 0  # taken by a consumer, handler not finished
        self._changed = asyncio.Event()

    def idle(self) -> bool:
        return not self.ready and not self.delayed and not self.in_flight

    def changed(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_changed(self) -> None:
        await self._changed.wait()

    def dead_letter(self, message_id: str, body: Body, deliveries: int) -> None:
        self.dead.append(
            Delivery(self.name, message_id, body, deliveries, self.headers.get(message_id, {}), settled=True)
        )


class MemorySubscription:
    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()

    async def stop(self, *, timeout_s: float | None = STOP_TIMEOUT_S) -> None:
        """No handler starts after this is called; running ones get ``timeout_s`` to
        finish, then are cancelled (their unsettled deliveries are requeued)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])
        await finish_handlers(set(self._running), timeout_s)


class MemoryQueue:
    def __init__(self, *, delivery_limit: int = 20) -> None:
        if delivery_limit < 1:
            raise ValueError("delivery_limit must be at least 1")
        self.delivery_limit = delivery_limit
        self._topics: dict[str, _Topic] = {}
        self._subscriptions: list[MemorySubscription] = []
        self._delayed: set[asyncio.TimerHandle] = set()
        self._puts: set[asyncio.Task[None]] = set()

    def _topic(self, name: str) -> _Topic:
        topic = self._topics.get(name)
        if topic is None:
            topic = self._topics[name] = _Topic(name)
        return topic

    async def publish(self, topic: str, body: Body, *, message_id: str, headers: dict[str, str] | None = None) -> None:
        t = self._topic(topic)
        if headers:
            t.headers[message_id] = dict(headers)
        await self._put(t, message_id, body, 0)

    async def _put(self, t: _Topic, message_id: str, body: Body, deliveries: int, *, delayed: bool = False) -> None:
        async with t.available:
            t.ready.append((message_id, body, deliveries))
            if delayed:
                t.delayed -= 1
            t.available.notify()
        t.changed()

    async def consume(self, topic: str, handler: Handler, *, prefetch: int) -> MemorySubscription:
        if prefetch < 1:
            raise ValueError("prefetch must be at least 1")
        t = self._topic(topic)
        slots = asyncio.Semaphore(prefetch)
        sub = MemorySubscription()

        async def run(delivery: Delivery) -> None:
            try:
                await handler(delivery)
            except Exception:
                log.exception("handler failed for message %s", delivery.message_id)
            finally:
                try:
                    if not delivery.settled:  # raised, returned unsettled, or cancelled by stop()
                        await delivery.nack(requeue=True)
                finally:
                    slots.release()
                    t.in_flight -= 1
                    t.changed()

        async def loop() -> None:
            while True:
                await slots.acquire()
                try:
                    async with t.available:
                        await t.available.wait_for(lambda: bool(t.ready))
                        message_id, body, deliveries = t.ready.popleft()
                        t.in_flight += 1
                except BaseException:
                    slots.release()
                    raise
                deliveries += 1
                delivery = Delivery(topic, message_id, body, deliveries, t.headers.get(message_id, {}))
                delivery._ack = self._acker(t, message_id)
                delivery._nack = self._nacker(t, message_id, body, deliveries)
                task = asyncio.create_task(run(delivery), name=f"queue-handler-{topic}")
                sub._running.add(task)
                task.add_done_callback(sub._running.discard)

        sub._task = asyncio.create_task(loop(), name=f"queue-consumer-{topic}")
        self._subscriptions.append(sub)
        return sub

    @staticmethod
    def _acker(t: _Topic, message_id: str) -> Callable[[], Awaitable[None]]:
        async def ack() -> None:
            t.headers.pop(message_id, None)

        return ack

    def _nacker(
        self, t: _Topic, message_id: str, body: Body, deliveries: int
    ) -> Callable[[bool, float], Awaitable[None]]:
        async def nack(requeue: bool, delay_s: float = 0.0) -> None:
            if not requeue:
                t.dead_letter(message_id, body, deliveries)
            elif delay_s > 0:
                self._later(delay_s, t, message_id, body)
            elif deliveries >= self.delivery_limit:
                log.warning("message %s dead-lettered after %d deliveries", message_id, deliveries)
                t.dead_letter(message_id, body, deliveries)
            else:
                await self._put(t, message_id, body, deliveries)

        return nack

    def _later(self, delay_s: float, t: _Topic, message_id: str, body: Body) -> None:
        """Put the message back no sooner than ``delay_s`` from now, as a fresh delivery."""
        loop = asyncio.get_running_loop()
        due = loop.time() + delay_s
        t.delayed += 1
        timer: list[asyncio.TimerHandle] = []

        def fire() -> None:
            self._delayed.discard(timer[0])
            if loop.time() < due:  # the loop may run a timer up to its clock resolution early
                timer[0] = loop.call_at(due, fire)
                self._delayed.add(timer[0])
                return
            task = loop.create_task(self._put(t, message_id, body, 0, delayed=True))
            self._puts.add(task)
            task.add_done_callback(self._puts.discard)

        timer.append(loop.call_at(due, fire))
        self._delayed.add(timer[0])

    async def dead_letters(self, topic: str, *, limit: int | None = None) -> list[Delivery]:
        """The dead letters of ``topic``, oldest first (the first ``limit``; all by default)."""
        return list(self._topic(topic).dead[:limit])

    async def take_dead_letters(self, topic: str, *, limit: int) -> list[Delivery]:
        """Up to ``limit`` dead letters, unsettled: ``ack()`` drops one, ``nack()`` puts it back."""
        t = self._topic(topic)
        taken, t.dead[:limit] = t.dead[:limit], []
        out = []
        for dead in taken:
            delivery = Delivery(topic, dead.message_id, dead.body, dead.delivery_count, dead.headers)

            async def drop() -> None:
                pass

            async def put_back(requeue: bool, delay_s: float = 0.0, dead: Delivery = dead) -> None:
                t.dead.append(dead)

            delivery._ack, delivery._nack = drop, put_back
            out.append(delivery)
        return out

    async def depth(self, topic: str) -> int:
        """Messages ready (not delayed, not in a handler)."""
        return len(self._topic(topic).ready)

    async def join(self, topic: str, *, timeout_s: float) -> None:
        """Wait until ``topic`` has no message ready, delayed or in a running handler.

        Raises ``TimeoutError`` after ``timeout_s`` (e.g. messages are ready but nothing
        consumes the topic)."""
        t = self._topic(topic)
        async with asyncio.timeout(timeout_s):
            while not t.idle():
                await t.wait_changed()

    async def close(self) -> None:
        for handle in self._delayed:
            handle.cancel()
        self._delayed.clear()
        for sub in self._subscriptions:
            await sub.stop()
        self._subscriptions.clear()
