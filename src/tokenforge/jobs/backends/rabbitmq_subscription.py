"""One consumer of a RabbitMQ work queue, and settling deliveries on a channel that may die.

A subscription has a channel of its own (``basic.qos`` = prefetch) and a semaphore of the
same size, so at most ``prefetch`` handlers run. Handlers run in tasks of their own:
aiormq runs consumer callbacks in channel tasks, which die with the channel. When the
channel is reopened (a reconnect, or the broker closed it after a channel error) the
subscription consumes again itself (``reopen_callbacks``) rather than relying on
aio-pika's ``RobustQueue`` restore (decision 0011 lists the aio-pika issues).

aio-pika swallows what a reopen callback raises, so consuming again runs in a task of the
subscription that retries with backoff until it consumes or is stopped; ``consuming``
says whether it does (``RabbitQueue.ping`` fails while one does not).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from aio_pika.abc import AbstractIncomingMessage, AbstractRobustChannel, AbstractRobustQueue
from aio_pika.exceptions import CONNECTION_EXCEPTIONS

from tokenforge.jobs.backends import finish_handlers
from tokenforge.jobs.ports import STOP_TIMEOUT_S, Delivery, Handler

log = logging.getLogger(__name__)

#: What aio-pika raises when the broker, the channel or the connection fails.
BROKER_ERRORS: tuple[type[BaseException], ...] = (*CONNECTION_EXCEPTIONS, asyncio.TimeoutError)
#: Bound on round trips that must not wait for a reconnect (consumer cancel, channel close).
RPC_TIMEOUT_S = 5.0
#: Pause before the first retry of a failed re-consume, and the most it grows to (doubling).
RESUME_BACKOFF_S, RESUME_BACKOFF_MAX_S = 0.5, 15.0

#: Turns a message into the port's delivery, or settles it itself and returns None.
Deliver = Callable[[str, AbstractIncomingMessage], Awaitable[Delivery | None]]


async def settle(action: str, op: Awaitable[None], message_id: str | None) -> None:
    """Run an ack/nack/reject; on a dead channel log it (the broker redelivers) and go on."""
    try:
        await op
    except BROKER_ERRORS as exc:
        log.warning(
            "could not %s message %s (%s); the broker delivers it again", action, message_id, type(exc).__name__
        )


class RabbitSubscription:
    """Consumes ``topic`` until :meth:`stop`; ``busy`` counts its deliveries not yet finished."""

    def __init__(
        self,
        topic: str,
        handler: Handler,
        channel: AbstractRobustChannel,
        queue: AbstractRobustQueue,
        prefetch: int,
        *,
        deliver: Deliver,
        busy: Counter[str],
        on_stopped: Callable[[RabbitSubscription], None],
    ) -> None:
        self._topic = topic
        self._handler = handler
        self._channel = channel
        self._queue = queue
        self._slots = asyncio.Semaphore(prefetch)
        self._deliver = deliver
        self._busy = busy
        self._on_stopped = on_stopped
        self._running: set[asyncio.Task[None]] = set()
        self._tag: str | None = None
        self._stopped = False
        self._consuming = False
        self._resuming: asyncio.Task[None] | None = None
        channel.reopen_callbacks.add(self._on_reopen)
        channel.close_callbacks.add(self._on_channel_closed)

    @property
    def topic(self) -> str:
        return self._topic

    @property
    def consuming(self) -> bool:
        """True while the broker delivers to this subscription: false from a channel loss
        until it consumes again, and after :meth:`stop`."""
        return self._consuming and not self._stopped

    async def start(self) -> None:
        # robust=False: consuming again after a reopen is this class's job (_on_reopen).
        self._tag = await self._queue.consume(self._on_message, no_ack=False, robust=False)
        self._consuming = True

    def _on_channel_closed(self, channel: Any, exc: BaseException | None = None) -> None:
        self._consuming = False

    async def _on_reopen(self, channel: Any) -> None:
        """The channel is back: consume again (in :meth:`_resume`, which retries). A stopped
        subscription's channel (aio-pika reopens closed channels too on a reconnect) is
        closed again."""
        if self._stopped:
            await self._close()
            return
        self._consuming = False
        if self._resuming is None or self._resuming.done():
            self._resuming = asyncio.create_task(self._resume(), name=f"queue-resume-{self._topic}")

    async def _resume(self) -> None:
        """Declare the queue (in case the broker lost it) and consume, until that works or
        the subscription stops; the first failure of an outage is logged, and the pause
        between attempts doubles up to ``RESUME_BACKOFF_MAX_S``."""
        pause, failures = RESUME_BACKOFF_S, 0
        while not self._stopped:
            try:
                async with asyncio.timeout(RPC_TIMEOUT_S):
                    await self._queue.declare()
                    await self.start()
            except BROKER_ERRORS as exc:
                if not failures:
                    log.warning(
                        "cannot consume %s again after the channel was reopened (%s); retrying",
                        self._topic,
                        type(exc).__name__,
                    )
                failures += 1
                await asyncio.sleep(pause)
                pause = min(pause * 2, RESUME_BACKOFF_MAX_S)
                continue
            log.info("consuming %s again after the channel was reopened (%d failed attempts)", self._topic, failures)
            return

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        if self._stopped:  # arrived after stop(): no handler may start
            await settle("requeue", message.nack(requeue=True), message.message_id)
            return
        self._busy[self._topic] += 1
        task = asyncio.create_task(self._run(message), name=f"queue-handler-{self._topic}")
        self._running.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._busy[self._topic] -= 1

    async def _run(self, message: AbstractIncomingMessage) -> None:
        async with self._slots:
            if self._stopped:
                await settle("requeue", message.nack(requeue=True), message.message_id)
                return
            delivery = await self._deliver(self._topic, message)
            if delivery is None:
                return
            try:
                await self._handler(delivery)
            except Exception:
                log.exception("handler failed for message %s", delivery.message_id)
            finally:
                if not delivery.settled:  # raised, returned unsettled, or cancelled by stop()
                    await delivery.nack(requeue=True)

    async def stop(self, *, timeout_s: float | None = STOP_TIMEOUT_S) -> None:
        """Cancel the consumer at once, give running handlers ``timeout_s`` to finish, then
        cancel the rest (their deliveries are requeued) and close the channel."""
        if not self._stopped:
            self._stopped = True
            if self._resuming is not None and not self._resuming.done():
                self._resuming.cancel()
                await asyncio.wait([self._resuming])
            if self._tag is not None and not self._channel.is_closed:
                try:
                    await asyncio.wait_for(self._queue.cancel(self._tag), RPC_TIMEOUT_S)
                except BROKER_ERRORS as exc:  # the channel died: its consumer went with it
                    log.warning("could not cancel the consumer of %s (%s)", self._topic, type(exc).__name__)
        await finish_handlers(set(self._running), timeout_s)
        await self._close()
        self._on_stopped(self)

    async def _close(self) -> None:
        """Close the channel (unacked deliveries go back to the queue); a dead one is left."""
        if self._channel.is_closed:
            return
        try:
            await asyncio.wait_for(self._channel.close(), RPC_TIMEOUT_S)
        except BROKER_ERRORS as exc:
            log.warning("could not close the channel of %s (%s)", self._topic, type(exc).__name__)
