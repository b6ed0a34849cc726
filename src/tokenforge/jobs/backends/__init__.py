"""Queue backends behind the port of :mod:`tokenforge.jobs.ports`, chosen by URL."""

from __future__ import annotations

import asyncio
import logging

from tokenforge.jobs.ports import JobQueue

log = logging.getLogger(__name__)


async def open_queue(url: str, *, delivery_limit: int, lazy: bool = False) -> JobQueue:
    """``memory://`` → the in-process queue; ``amqp://…`` → RabbitMQ, connected now, or at
    first use when ``lazy`` (:class:`~tokenforge.jobs.backends.lazy.LazyQueue`)."""
    if url.startswith("memory://"):
        from tokenforge.jobs.backends.memory import MemoryQueue

        return MemoryQueue(delivery_limit=delivery_limit)
    from tokenforge.jobs.backends.rabbitmq import RabbitQueue

    if lazy:
        from tokenforge.jobs.backends.lazy import LazyQueue

        return LazyQueue(lambda: RabbitQueue.connect(url, delivery_limit=delivery_limit))
    return await RabbitQueue.connect(url, delivery_limit=delivery_limit)


async def finish_handlers(running: set[asyncio.Task[None]], timeout_s: float | None) -> None:
    """A stopping subscription's part of the contract: wait up to ``timeout_s`` for the
    running handlers, then cancel the rest (their unsettled deliveries are requeued by the
    handler wrappers)."""
    if not running:
        return
    _, late = await asyncio.wait(running, timeout=timeout_s)
    if late:
        log.warning("cancelling %d queue handlers still running after %.1fs", len(late), timeout_s or 0)
        for task in late:
            task.cancel()
        await asyncio.wait(late)
