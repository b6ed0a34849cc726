"""Queue backends behind the port of :mod:`tokenforge.jobs.ports`, chosen by URL."""

from __future__ import annotations

from tokenforge.jobs.ports import JobQueue


async def open_queue(url: str, *, delivery_limit: int) -> JobQueue:
    """``memory://`` → the in-process queue; ``amqp://…`` → RabbitMQ (connects now)."""
    if url.startswith("memory://"):
        from tokenforge.jobs.backends.memory import MemoryQueue

        return MemoryQueue(delivery_limit=delivery_limit)
    from tokenforge.jobs.backends.rabbitmq import RabbitQueue

    return await RabbitQueue.connect(url, delivery_limit=delivery_limit)
