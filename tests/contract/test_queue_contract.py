"""The queue contract (``jobs/ports.py``), run on every backend.

A backend enters the suite through ``BACKENDS``: an async context manager that opens it
with a given delivery limit and yields a :class:`Backend`, the queue plus a ``join``
that waits until a topic has nothing ready, delayed or in flight, and a ``drop`` that
deletes a topic's broker state. Every case uses its own topic, so a broker shared by the
whole run (RabbitMQ) needs no cleaning between cases; each case's queues are deleted after
it, so run after run leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest

from tests.conftest import require_service
from tokenforge.jobs.backends.memory import MemoryQueue
from tokenforge.jobs.ports import Delivery, JobQueue

DELIVERY_LIMIT = 3
JOIN_TIMEOUT_S = 5.0
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"


async def _nothing_to_drop(topic: str) -> None:
    pass


@dataclass
class Backend:
    queue: JobQueue
    #: waits until the topic has nothing ready, delayed or in flight (TimeoutError after 5 s)
    join: Callable[[str], Awaitable[None]]
    #: deletes whatever the topic left in the broker
    drop: Callable[[str], Awaitable[None]] = _nothing_to_drop


@asynccontextmanager
async def memory_backend(delivery_limit: int) -> AsyncIterator[Backend]:
    queue = MemoryQueue(delivery_limit=delivery_limit)
    try:
        yield Backend(queue, lambda topic: queue.join(topic, timeout_s=JOIN_TIMEOUT_S))
    finally:
        await queue.close()


@asynccontextmanager
async def rabbitmq_backend(delivery_limit: int) -> AsyncIterator[Backend]:
    require_service("RabbitMQ", "127.0.0.1", 5672)
    from tokenforge.jobs.backends.rabbitmq import RabbitQueue

    queue = await RabbitQueue.connect(RABBITMQ_URL, delivery_limit=delivery_limit)
    try:
        yield Backend(queue, lambda topic: queue.join(topic, timeout_s=JOIN_TIMEOUT_S), queue.delete_topic)
    finally:
        await queue.close()


BACKENDS = {"memory": memory_backend, "rabbitmq": rabbitmq_backend}


@pytest.fixture(params=sorted(BACKENDS))
async def backend(request, topic):
    async with BACKENDS[request.param](DELIVERY_LIMIT) as opened:
        try:
            yield opened
        finally:
            await opened.drop(topic)


@pytest.fixture
def topic() -> str:
    return f"contract.{uuid.uuid4().hex[:12]}"


async def publish(backend: Backend, topic: str, n: int, prefix: str = "m") -> list[str]:
    ids = [f"{prefix}{i}" for i in range(n)]
    for i, message_id in enumerate(ids):
        await backend.queue.publish(topic, {"i": i}, message_id=message_id)
    return ids


async def dead_ids(backend: Backend, topic: str) -> list[str]:
    return [d.message_id for d in await backend.queue.dead_letters(topic)]


# ---------------------------------------------------------------- delivery and settling


async def test_acked_messages_are_delivered_exactly_once(backend, topic):
    got: list[Delivery] = []

    async def handler(delivery):
        got.append(delivery)
        await delivery.ack()

    await publish(backend, topic, 5)
    sub = await backend.queue.consume(topic, handler, prefetch=10)
    await backend.join(topic)
    await sub.stop()
    assert sorted(d.body["i"] for d in got) == [0, 1, 2, 3, 4]
    assert all(d.delivery_count == 1 for d in got)
    assert await dead_ids(backend, topic) == []


async def test_nack_without_requeue_dead_letters_at_once(backend, topic):
    got: list[Delivery] = []

    async def handler(delivery):
        got.append(delivery)
        await delivery.nack(requeue=False)

    await publish(backend, topic, 1, prefix="malformed")
    sub = await backend.queue.consume(topic, handler, prefetch=10)
    await backend.join(topic)
    await sub.stop()
    assert [d.delivery_count for d in got] == [1], "not delivered again"
    assert await dead_ids(backend, topic) == ["malformed0"]


async def test_failing_handler_is_redelivered_up_to_the_limit_then_dead_lettered(backend, topic):
    got: list[int] = []

    async def handler(delivery):
        got.append(delivery.delivery_count)
        raise RuntimeError("handler bug")

    await publish(backend, topic, 1, prefix="poison")
    sub = await backend.queue.consume(topic, handler, prefetch=10)
    await backend.join(topic)
    await sub.stop()
    assert got == [1, 2, 3] == list(range(1, DELIVERY_LIMIT + 1))
    assert await dead_ids(backend, topic) == ["poison0"]


async def test_requeue_without_delay_counts_towards_the_limit(backend, topic):
    got: list[int] = []

    async def handler(delivery):
        got.append(delivery.delivery_count)
        await delivery.nack(requeue=True)

    await publish(backend, topic, 1)
    sub = await backend.queue.consume(topic, handler, prefetch=10)
    await backend.join(topic)
    await sub.stop()
    assert got == [1, 2, 3]
    assert await dead_ids(backend, topic) == ["m0"]


async def test_a_handler_returning_without_settling_is_a_requeue(backend, topic):
    got: list[int] = []

    async def handler(delivery):
        got.append(delivery.delivery_count)
        if delivery.delivery_count == 2:
            await delivery.ack()
        # first delivery: returns without ack or nack

    await publish(backend, topic, 1)
    sub = await backend.queue.consume(topic, handler, prefetch=10)
    await backend.join(topic)
    await sub.stop()
    assert got == [1, 2]
    assert await dead_ids(backend, topic) == []


# ---------------------------------------------------------------- delayed requeue


async def test_delayed_nack_comes_back_no_sooner_than_the_delay_as_a_fresh_delivery(backend, topic):
    delay_s = 0.25
    seen: list[tuple[int, float]] = []

    async def handler(delivery):
        seen.append((delivery.delivery_count, time.monotonic()))
        if len(seen) == 1:
            await delivery.nack(requeue=True, delay_s=delay_s)
        else:
            await delivery.ack()

    await publish(backend, topic, 1)
    sub = await backend.queue.consume(topic, handler, prefetch=10)
    await backend.join(topic)
    await sub.stop()
    assert [count for count, _ in seen] == [1, 1]
    assert seen[1][1] - seen[0][1] >= delay_s
    assert await dead_ids(backend, topic) == []


async def test_delayed_nacks_do_not_use_up_the_delivery_limit(backend, topic):
    counts: list[int] = []

    async def handler(delivery):
        counts.append(delivery.delivery_count)
        if len(counts) <= 2 * DELIVERY_LIMIT:
            await delivery.nack(requeue=True, delay_s=0.01)  # e.g. the database is down
        else:
            await delivery.ack()

    await publish(backend, topic, 1)
    sub = await backend.queue.consume(topic, handler, prefetch=10)
    await backend.join(topic)
    await sub.stop()
    assert counts == [1] * (2 * DELIVERY_LIMIT + 1)
    assert await dead_ids(backend, topic) == []


async def test_a_delayed_message_is_kept_when_its_consumer_stops(backend, topic):
    delay_s = 0.2
    nacked = asyncio.Event()
    nacked_at: list[float] = []

    async def first(delivery):
        nacked_at.append(time.monotonic())
        await delivery.nack(requeue=True, delay_s=delay_s)
        nacked.set()

    await publish(backend, topic, 1)
    sub = await backend.queue.consume(topic, first, prefetch=10)
    await asyncio.wait_for(nacked.wait(), JOIN_TIMEOUT_S)
    await sub.stop()

    later: list[tuple[Delivery, float]] = []

    async def second(delivery):
        later.append((delivery, time.monotonic()))
        await delivery.ack()

    sub = await backend.queue.consume(topic, second, prefetch=10)
    await backend.join(topic)
    await sub.stop()
    assert [(d.message_id, d.delivery_count) for d, _ in later] == [("m0", 1)]
    assert later[0][1] - nacked_at[0] >= delay_s


async def test_a_delayed_message_that_keeps_failing_dies_after_the_limit_counted_from_its_fresh_delivery(
    backend, topic
):
    counts: list[int] = []

    async def handler(delivery):
        counts.append(delivery.delivery_count)
        if len(counts) == 1:
            await delivery.nack(requeue=True, delay_s=0.01)
        else:
            raise RuntimeError("handler bug")

    await publish(backend, topic, 1, prefix="poison")
    sub = await backend.queue.consume(topic, handler, prefetch=10)
    await backend.join(topic)
    await sub.stop()
    assert counts == [1, 1, 2, 3]
    [dead] = await backend.queue.dead_letters(topic)
    assert (dead.message_id, dead.delivery_count) == ("poison0", DELIVERY_LIMIT)


# ---------------------------------------------------------------- flow control and shutdown


async def test_prefetch_bounds_the_deliveries_in_flight(backend, topic):
    prefetch, total = 3, 10
    in_flight = peak = 0
    releases: list[asyncio.Event] = []
    started = asyncio.Event()

    async def handler(delivery):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        release = asyncio.Event()
        releases.append(release)
        started.set()
        await release.wait()
        in_flight -= 1
        await delivery.ack()

    await publish(backend, topic, total)
    sub = await backend.queue.consume(topic, handler, prefetch=prefetch)
    released = 0
    while released < total:
        while len(releases) <= released:  # wait for the next delivery to start
            started.clear()
            await asyncio.wait_for(started.wait(), JOIN_TIMEOUT_S)
        assert in_flight <= prefetch
        releases[released].set()  # finishing one frees one slot
        released += 1
    await backend.join(topic)
    await sub.stop()
    assert peak == prefetch
    assert len(releases) == total


async def test_stop_waits_for_a_running_handler_whose_ack_counts_and_starts_no_new_one(backend, topic):
    running = asyncio.Event()
    release = asyncio.Event()
    log: list[str] = []

    async def handler(delivery):
        log.append(f"start {delivery.message_id}")
        running.set()
        await release.wait()
        await delivery.ack()
        log.append(f"acked {delivery.message_id}")

    await publish(backend, topic, 2)  # m1 is ready while m0 holds the only slot
    sub = await backend.queue.consume(topic, handler, prefetch=1)
    await asyncio.wait_for(running.wait(), JOIN_TIMEOUT_S)
    stopping = asyncio.create_task(sub.stop())
    done, _ = await asyncio.wait({stopping}, timeout=0.1)
    assert not done, "stop() returned while a handler was still running"
    await backend.queue.publish(topic, {"i": 2}, message_id="m2")  # published after stop()
    release.set()
    await asyncio.wait_for(stopping, JOIN_TIMEOUT_S)
    log.append("stopped")
    assert log == ["start m0", "acked m0", "stopped"]

    rest: list[Delivery] = []

    async def successor(delivery):
        rest.append(delivery)
        await delivery.ack()

    sub = await backend.queue.consume(topic, successor, prefetch=10)
    await backend.join(topic)
    await sub.stop()
    assert sorted((d.message_id, d.delivery_count) for d in rest) == [("m1", 1), ("m2", 1)], "m0's ack counted"


async def test_stop_cancels_a_hung_handler_after_its_timeout_and_requeues_its_delivery(backend, topic):
    hung = asyncio.Event()
    cancelled: list[int] = []

    async def handler(delivery):
        hung.set()
        try:
            await asyncio.Event().wait()  # never settles, never returns
        except asyncio.CancelledError:
            cancelled.append(delivery.delivery_count)
            raise

    await publish(backend, topic, 1)
    sub = await backend.queue.consume(topic, handler, prefetch=10)
    await asyncio.wait_for(hung.wait(), JOIN_TIMEOUT_S)
    started = time.monotonic()
    await asyncio.wait_for(sub.stop(timeout_s=0.2), JOIN_TIMEOUT_S)
    assert time.monotonic() - started >= 0.2
    assert cancelled == [1]

    got: list[int] = []

    async def successor(delivery):
        got.append(delivery.delivery_count)
        await delivery.ack()

    sub = await backend.queue.consume(topic, successor, prefetch=10)
    await backend.join(topic)
    await sub.stop()
    assert got == [2], "the hung delivery was requeued and counted"
    assert await dead_ids(backend, topic) == []


async def test_join_times_out_while_messages_wait_for_a_consumer(backend, topic):
    await publish(backend, topic, 1)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(backend.join(topic), 0.1)


# ---------------------------------------------------------------- message properties, dead letters, depth


async def test_message_id_and_headers_arrive_unchanged_also_on_dead_letters(backend, topic):
    headers = {"x-request-id": "req-1", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    got: list[Delivery] = []

    async def handler(delivery):
        got.append(delivery)
        await delivery.nack(requeue=False)

    await backend.queue.publish(topic, {"job_id": "j1", "n": [1, 2]}, message_id="launch-j1", headers=headers)
    sub = await backend.queue.consume(topic, handler, prefetch=1)
    await backend.join(topic)
    await sub.stop()
    assert [(d.message_id, d.body, d.headers) for d in got] == [("launch-j1", {"job_id": "j1", "n": [1, 2]}, headers)]
    [dead] = await backend.queue.dead_letters(topic)
    assert (dead.message_id, dead.body, dead.headers) == ("launch-j1", {"job_id": "j1", "n": [1, 2]}, headers)


async def dead_letter_all(backend: Backend, topic: str, n: int) -> None:
    async def handler(delivery):
        await delivery.nack(requeue=False)

    await publish(backend, topic, n, prefix="dead")
    sub = await backend.queue.consume(topic, handler, prefetch=10)
    await backend.join(topic)
    await sub.stop()


async def test_listing_dead_letters_leaves_them_settled_and_in_place(backend, topic):
    await dead_letter_all(backend, topic, 2)
    listed = await backend.queue.dead_letters(topic)
    for delivery in listed:
        await delivery.ack()  # settled: does nothing
    assert sorted(d.message_id for d in listed) == ["dead0", "dead1"]
    assert sorted(await dead_ids(backend, topic)) == ["dead0", "dead1"], "listing twice shows the same"


async def test_listing_dead_letters_with_a_limit_reads_at_most_that_many_and_keeps_all(backend, topic):
    await dead_letter_all(backend, topic, 3)
    first = await backend.queue.dead_letters(topic, limit=2)
    assert len(first) == 2 and all(d.settled for d in first)
    assert {d.message_id for d in first} <= {"dead0", "dead1", "dead2"}
    assert sorted(await dead_ids(backend, topic)) == ["dead0", "dead1", "dead2"], "a bounded listing keeps them all"
    assert len(await backend.queue.dead_letters(topic, limit=10)) == 3


async def test_taken_dead_letters_are_removed_by_ack_and_put_back_by_nack(backend, topic):
    await dead_letter_all(backend, topic, 3)
    taken = await backend.queue.take_dead_letters(topic, limit=2)
    assert len(taken) == 2 and not any(d.settled for d in taken)
    assert {d.body["i"] for d in taken} <= {0, 1, 2}
    acked, put_back = taken
    await acked.ack()
    await put_back.nack()
    left = sorted(await dead_ids(backend, topic))
    assert acked.message_id not in left
    assert left == sorted({"dead0", "dead1", "dead2"} - {acked.message_id})

    rest = await backend.queue.take_dead_letters(topic, limit=10)
    assert sorted(d.message_id for d in rest) == left
    for delivery in rest:
        await delivery.ack()
    assert await dead_ids(backend, topic) == []
    assert await backend.queue.take_dead_letters(topic, limit=10) == []


async def test_depth_counts_the_messages_ready_for_a_consumer(backend, topic):
    assert await backend.queue.depth(topic) == 0
    await publish(backend, topic, 3)
    assert await backend.queue.depth(topic) == 3

    async def handler(delivery):
        await delivery.ack()

    sub = await backend.queue.consume(topic, handler, prefetch=10)
    await backend.join(topic)
    await sub.stop()
    assert await backend.queue.depth(topic) == 0
