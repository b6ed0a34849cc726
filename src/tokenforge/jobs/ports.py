"""The queue port: the in-process backend implements it now, RabbitMQ next.

Contract (tested for every backend by ``tests/contract/test_queue_contract.py``):

* ``publish`` returns only once the broker has accepted the message (publisher
  confirm); messages are persistent where the backend can persist. ``message_id`` lets
  consumers de-duplicate; delivery is at-least-once.
* ``consume`` runs ``handler`` for each delivery with at most ``prefetch`` unacknowledged
  deliveries at a time. The handler must call exactly one of ``ack()`` (after its DB
  commit) or ``nack(requeue=...)``. A handler that raises is treated as
  ``nack(requeue=True)``. ``nack(requeue=True, delay_s=d)`` with ``d > 0`` brings the
  message back no sooner than ``d`` seconds later as a fresh delivery (its count starts
  again at 1): the way to wait out an outage without burning the delivery limit.
* A message delivered more than ``delivery_limit`` times goes to the dead-letter store
  instead of the handler; ``dead_letters(topic)`` lists them.
* No vendor type appears in these signatures.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(slots=True)
class Delivery:
    topic: str
    message_id: str
    body: dict
    delivery_count: int  # 1 on first delivery
    _ack: Callable[[], Awaitable[None]] = field(repr=False, default=None)  # type: ignore[assignment]
    _nack: Callable[[bool, float], Awaitable[None]] = field(repr=False, default=None)  # type: ignore[assignment]
    settled: bool = False

    async def ack(self) -> None:
        if not self.settled:
            self.settled = True
            await self._ack()

    async def nack(self, *, requeue: bool = True, delay_s: float = 0.0) -> None:
        if not self.settled:
            self.settled = True
            await self._nack(requeue, delay_s)


Handler = Callable[[Delivery], Awaitable[None]]


class Subscription(Protocol):
    async def stop(self) -> None:
        """Stop taking deliveries and wait for running handlers to finish."""


class JobQueue(Protocol):
    async def publish(self, topic: str, body: dict, *, message_id: str) -> None: ...

    async def consume(self, topic: str, handler: Handler, *, prefetch: int) -> Subscription: ...

    async def dead_letters(self, topic: str) -> list[Delivery]: ...

    async def close(self) -> None: ...
