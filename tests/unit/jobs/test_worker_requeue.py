"""A step that cannot be recorded comes back later, never at once and never dead-lettered."""

from __future__ import annotations

import asyncio
import time

from tokenforge.errors import ErrorCode, TransientError
from tokenforge.jobs.backends.memory import MemoryQueue
from tokenforge.jobs.handlers.launch import launch_topic
from tokenforge.jobs.policy import RetryPolicy
from tokenforge.jobs.worker import Worker

TOPIC = launch_topic("solana")


class DownThenUp:
    """A handler whose database is down for the first ``failures`` steps."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures, self.error = failures, error
        self.calls: list[float] = []
        self.done = asyncio.Event()

    async def handle(self, job_id: str) -> None:
        self.calls.append(time.monotonic())
        if len(self.calls) <= self.failures:
            raise self.error
        self.done.set()


async def run(handler: DownThenUp, policy: RetryPolicy) -> MemoryQueue:
    queue = MemoryQueue(delivery_limit=2)
    worker = Worker(None, queue, handler, prefetch={"solana": 4}, policy=policy, owner="test:1:x")  # type: ignore[arg-type]
    await worker.start()
    await queue.publish(TOPIC, {"job_id": "j1"}, message_id="m1")
    await asyncio.wait_for(handler.done.wait(), 30)
    await worker._subscriptions[0].stop()
    return queue


async def test_database_outage_brings_the_delivery_back_after_a_pause_past_the_delivery_limit():
    handler = DownThenUp(5, TransientError("down", code=ErrorCode.DB_UNAVAILABLE))
    queue = await run(handler, RetryPolicy(base_s=0.05, outage_max_s=0.2))
    gaps = [b - a for a, b in zip(handler.calls, handler.calls[1:], strict=False)]
    assert len(handler.calls) == 6  # 5 outages, then the step ran: more than the delivery limit of 2
    assert all(gap >= 0.09 for gap in gaps), gaps  # never at once (the pause is at least 0.1 s)
    assert await queue.dead_letters(TOPIC) == []


async def test_a_bug_while_recording_an_error_also_waits_instead_of_spinning():
    handler = DownThenUp(2, RuntimeError("bug in error handling"))
    await run(handler, RetryPolicy(base_s=0.05, outage_max_s=0.2))
    assert len(handler.calls) == 3 and handler.calls[1] - handler.calls[0] >= 0.09
