"""What the RabbitMQ backend declares: queue names and their arguments (no I/O).

Every argument is explicit because RabbitMQ 3.10's defaults differ from 4.x's; decision
0011 explains each. All queues are durable quorum queues under ``prefix``:

* ``<prefix>work.<topic>``: published to through the default exchange, consumed.
* ``<prefix>dead.<topic>``: its dead letters, bound to the direct exchange ``<prefix>dead``.
* ``<prefix>delay.<ms>ms.<topic>``: delay buckets without consumers whose expired
  messages are dead-lettered back to the work queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_PREFIX = "tokenforge."
#: Delay buckets in milliseconds; a delay is rounded up to the next one.
DELAY_BUCKETS_MS = (10, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000, 900_000, 3_600_000)


def bucket_ms(delay_ms: int) -> int:
    """The smallest delay bucket of at least ``delay_ms`` (the largest bucket beyond it)."""
    return next((ms for ms in DELAY_BUCKETS_MS if ms >= delay_ms), DELAY_BUCKETS_MS[-1])


@dataclass(frozen=True, slots=True)
class Topology:
    prefix: str
    delivery_limit: int

    @property
    def dead_exchange(self) -> str:
        return f"{self.prefix}dead"

    def work(self, topic: str) -> str:
        return f"{self.prefix}work.{topic}"

    def dead(self, topic: str) -> str:
        return f"{self.prefix}dead.{topic}"

    def delay(self, topic: str, ms: int) -> str:
        return f"{self.prefix}delay.{ms}ms.{topic}"

    def every_queue(self, topic: str) -> list[str]:
        """All the queues ``topic`` may have, delay buckets included."""
        return [self.work(topic), self.dead(topic), *(self.delay(topic, ms) for ms in DELAY_BUCKETS_MS)]

    def work_arguments(self, topic: str) -> dict[str, Any]:
        """``x-delivery-limit`` is one less than the port's limit: the quorum queue
        dead-letters a message returned *more* often than the limit (verified on 3.10)."""
        return {
            "x-queue-type": "quorum",
            "x-delivery-limit": self.delivery_limit - 1,
            "x-dead-letter-exchange": self.dead_exchange,
            "x-dead-letter-routing-key": self.dead(topic),
            "x-dead-letter-strategy": "at-least-once",  # needs x-overflow=reject-publish
            "x-overflow": "reject-publish",
        }

    @staticmethod
    def dead_arguments() -> dict[str, Any]:
        """No delivery limit (unlimited on 3.10): listing dead letters returns them."""
        return {"x-queue-type": "quorum", "x-overflow": "reject-publish"}

    def delay_arguments(self, topic: str, ms: int) -> dict[str, Any]:
        """One TTL for the whole queue, so expiry follows queue order (no head-of-line wait)."""
        return {
            "x-queue-type": "quorum",
            "x-message-ttl": ms,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": self.work(topic),
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }
