"""Queue backends behind the port of :mod:`tokenforge.jobs.ports`, chosen by URL."""

from __future__ import annotations

from tokenforge.jobs.ports import JobQueue


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
