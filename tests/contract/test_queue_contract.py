"""The queue contract (jobs/ports.py), run on every backend."""

from __future__ import annotations

import asyncio

import pytest

from tokenforge.jobs.backends.memory import MemoryQueue


@pytest.fixture(params=["memory"])
async def queue(request):
    q = MemoryQueue(delivery_limit=3)
    yield q
    await q.close()


async def collect(queue, topic, n, *, prefetch=10, action="ack"):
    got: list = []
    done = asyncio.Event()

    async def handler(delivery):
        got.append(delivery)
        if len(got) >= n:
            done.set()
        if action == "ack":
            await delivery.ack()
        elif action == "raise":
            raise RuntimeError("handler bug")
        elif action == "nack":
            await delivery.nack(requeue=True)

    sub = await queue.consume(topic, handler, prefetch=prefetch)
    await asyncio.wait_for(done.wait(), 5)
    return sub, got


async def test_published_messages_are_delivered_once_when_acked(queue):
    for i in range(5):
        await queue.publish("t", {"i": i}, message_id=f"m{i}")
    sub, got = await collect(queue, "t", 5)
    await sub.stop()
    assert sorted(d.body["i"] for d in got) == [0, 1, 2, 3, 4]
    assert all(d.delivery_count == 1 for d in got)


async def test_failed_handler_redelivers_then_dead_letters(queue):
    await queue.publish("t", {"x": 1}, message_id="poison")
    sub, got = await collect(queue, "t", 3, action="raise")
    await sub.stop()
    assert [d.delivery_count for d in got] == [1, 2, 3]
    # the 4th delivery exceeds the limit: dead-lettered, not handed to the handler
    for _ in range(100):
        if await queue.dead_letters("t"):
            break
        await asyncio.sleep(0)
    dead = await queue.dead_letters("t")
    assert [d.message_id for d in dead] == ["poison"]


async def test_prefetch_bounds_unacked_deliveries(queue):
    release = asyncio.Event()
    in_flight = 0
    peak = 0
    seen = 0
    all_seen = asyncio.Event()

    async def handler(delivery):
        nonlocal in_flight, peak, seen
        in_flight += 1
        peak = max(peak, in_flight)
        seen += 1
        if seen == 10:
            all_seen.set()
        await release.wait()
        in_flight -= 1
        await delivery.ack()

    for i in range(10):
        await queue.publish("t", {"i": i}, message_id=f"m{i}")
    sub = await queue.consume("t", handler, prefetch=3)
    for _ in range(50):
        await asyncio.sleep(0)
    assert peak == 3
    release.set()
    await asyncio.wait_for(all_seen.wait(), 5)
    await sub.stop()
    assert peak == 3
