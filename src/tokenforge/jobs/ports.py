"""The queue port: the in-process backend (``backends/memory.py``) and RabbitMQ (``backends/rabbitmq.py``).

Contract (tested for every backend by ``tests/contract/test_queue_contract.py``):

* ``publish`` returns only once the broker has accepted the message (publisher
  confirm); messages are persistent where the backend can persist. ``message_id`` lets
  consumers de-duplicate; delivery is at-least-once. ``headers`` (string to string:
  request id, trace context) arrive unchanged in ``Delivery.headers``.
* ``consume`` runs ``handler`` for each delivery with at most ``prefetch`` deliveries
  in flight (handed to the handler and not yet finished) at a time. The handler must
  call exactly one of ``ack()`` (after its DB commit) or ``nack(requeue=...)``; a second
  call is ignored.

  - ``nack(requeue=False)``: the message goes to the dead-letter store at once and is
    not delivered again.
  - ``nack(requeue=True)``: delivered again (its ``delivery_count`` one higher).
  - ``nack(requeue=True, delay_s=d)`` with ``d > 0``: delivered again no sooner than
    ``d`` seconds later, as a fresh delivery (``delivery_count`` starts again at 1): the
    way to wait out an outage without burning the delivery limit. The message stays in
    the broker meanwhile: a consumer that stops does not lose it, the next one gets it.
  - A handler that raises, or returns without settling, is treated as
    ``nack(requeue=True)``.
* A message is handed to handlers at most ``delivery_limit`` times (counted since its
  last fresh delivery); when a delivery with that count is requeued, the message goes to
  the dead-letter store instead. ``dead_letters(topic, limit=None)`` lists the
  dead-lettered deliveries, the oldest ``limit`` of them (all by default; settled:
  ``ack``/``nack`` on them do nothing) and leaves them in place.
  ``take_dead_letters(topic, limit=n)`` hands out up to ``n`` of them unsettled: ``ack()``
  removes one from the dead-letter store for good, ``nack()`` (any arguments) puts it back
  (so the database can record the job dead before the broker forgets the message).
* ``depth(topic)`` (optional, for the queue-depth gauge): messages ready for a consumer.
* ``Subscription.stop(timeout_s=...)`` stops taking deliveries at once (no handler starts
  after it is called) and waits for the running handlers to finish; their ``ack`` and
  ``nack`` still count. A handler still running after ``timeout_s`` is cancelled and its
  unsettled delivery is requeued (it counts as a delivery), so a hung handler can delay a
  shutdown by ``timeout_s`` at most and never loses its message. ``timeout_s=None``
  waits without limit.
* No vendor type appears in these signatures.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

#: A message body: a JSON object.
Body = dict[str, Any]


@dataclass(slots=True)
class Delivery:
    topic: str
    message_id: str
    body: Body
    delivery_count: int  # 1 on first delivery
    headers: dict[str, str] = field(default_factory=dict)
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


#: How long ``Subscription.stop()`` waits for running handlers by default.
STOP_TIMEOUT_S = 30.0


class Subscription(Protocol):
    async def stop(self, *, timeout_s: float | None = STOP_TIMEOUT_S) -> None:
        """Stop taking deliveries; wait up to ``timeout_s`` for running handlers, then
        cancel the rest (their deliveries are requeued). See the module docstring."""


class JobQueue(Protocol):
    async def publish(
        self, topic: str, body: Body, *, message_id: str, headers: dict[str, str] | None = None
    ) -> None: ...

    async def consume(self, topic: str, handler: Handler, *, prefetch: int) -> Subscription: ...

    async def dead_letters(self, topic: str, *, limit: int | None = None) -> list[Delivery]: ...

    async def take_dead_letters(self, topic: str, *, limit: int) -> list[Delivery]: ...

    async def depth(self, topic: str) -> int: ...

    async def close(self) -> None: ...
