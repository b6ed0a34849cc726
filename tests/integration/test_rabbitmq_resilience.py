"""The RabbitMQ backend survives what an operator does to a broker: connections closed
under it, the broker application restarted, delays longer than any delay bucket.

Every message published must be handled (acked) in the end, none lost: publishers retry
on ``TransientError`` the way the outbox relay does, consumers are restored by the
backend after the reconnect, and a delivery whose channel died is delivered again.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from tests.conftest import require_service, require_tool
from tokenforge.errors import ErrorCode, TransientError
from tokenforge.jobs.backends import rabbitmq_topology
from tokenforge.jobs.backends.rabbitmq import RabbitQueue
from tokenforge.jobs.ports import Delivery

pytestmark = pytest.mark.integration

URL = "amqp://guest:guest@127.0.0.1:5672/"
HANDLED_TIMEOUT_S = 60.0


async def rabbitmqctl(*args: str) -> str:
    """Run ``rabbitmqctl``; fails the test when it fails."""
    proc = await asyncio.create_subprocess_exec(
        "rabbitmqctl", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, f"rabbitmqctl {' '.join(args)} failed: {out.decode(errors='replace')}"
    return out.decode(errors="replace")


async def connections_named(name: str) -> list[str]:
    """Process ids of the broker's connections whose client gave ``name``."""
    listed = await rabbitmqctl("list_connections", "pid", "client_properties", "-q", "--no-table-headers")
    marker = f'{{"connection_name","{name}"}}'
    return [line.split("\t", 1)[0] for line in listed.splitlines() if marker in line]


async def close_connections_named(name: str) -> int:
    """Close (only) this test's connections, as an operator or a network fault would."""
    pids = await connections_named(name)
    for pid in pids:
        await rabbitmqctl("close_connection", pid, "test: connection drop")
    return len(pids)


@pytest.fixture
def topic() -> str:
    return f"resilience.{uuid.uuid4().hex[:12]}"


@contextlib.asynccontextmanager
async def opened(topic: str) -> AsyncIterator[tuple[RabbitQueue, RabbitQueue]]:
    """A publishing and a consuming queue (two connections, like a relay and a worker);
    the topic's queues are deleted afterwards."""
    require_service("RabbitMQ", "127.0.0.1", 5672)
    publisher = await RabbitQueue.connect(URL, delivery_limit=20, reconnect_interval_s=0.5, connection_name=topic)
    consumer = await RabbitQueue.connect(URL, delivery_limit=20, reconnect_interval_s=0.5, connection_name=topic)
    try:
        yield publisher, consumer
    finally:
        await consumer.close()
        await publisher.delete_topic(topic)
        await publisher.close()


async def publish_until_confirmed(queue: RabbitQueue, topic: str, message_id: str, failures: list[ErrorCode]) -> None:
    """Publish like the outbox relay: retry until confirmed; the codes of the failed
    attempts are appended to ``failures``."""
    while True:
        try:
            await queue.publish(topic, {"id": message_id}, message_id=message_id)
            return
        except TransientError as exc:
            failures.append(exc.code)
            await asyncio.sleep(0.05)  # the relay's retry pause


class Recorder:
    """A handler that acks and records; ``wait_for(ids)`` returns once all were acked."""

    def __init__(self) -> None:
        self.acked: set[str] = set()
        self.deliveries: list[Delivery] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self._progress = asyncio.Event()

    async def __call__(self, delivery: Delivery) -> None:
        self.deliveries.append(delivery)
        await self.gate.wait()
        await delivery.ack()
        self.acked.add(delivery.message_id)
        self._progress.set()

    async def wait_for(self, ids: set[str] | int) -> None:
        async with asyncio.timeout(HANDLED_TIMEOUT_S):
            while not (len(self.acked) >= ids if isinstance(ids, int) else ids <= self.acked):
                self._progress.clear()
                await self._progress.wait()


@pytest.mark.slow
async def test_closing_the_connections_mid_stream_loses_no_message(topic):
    require_tool("rabbitmqctl", shutil.which("rabbitmqctl"), "apt-get install rabbitmq-server")
    published: list[str] = []
    failures: list[ErrorCode] = []
    enough = asyncio.Event()
    recorder = Recorder()
    async with opened(topic) as (publisher, consumer):
        sub = await consumer.consume(topic, recorder, prefetch=20)

        async def stream() -> None:
            while not enough.is_set():
                message_id = f"m{len(published)}"
                await publish_until_confirmed(publisher, topic, message_id, failures)
                published.append(message_id)

        streaming = asyncio.create_task(stream())
        await recorder.wait_for(50)
        before = set(await connections_named(topic))
        assert await close_connections_named(topic) == 2, "the publisher's and the consumer's connection"
        published_at_drop = len(published)
        await recorder.wait_for(len(recorder.acked) + 100)  # the stream goes on after the drop
        enough.set()
        await streaming
        await recorder.wait_for(set(published))
        await sub.stop()
        assert recorder.acked == set(published), "every published message was handled"
        assert len(published) > published_at_drop, "publishing went on after the drop"
        assert set(failures) <= {ErrorCode.BROKER_UNAVAILABLE}, "a lost publish is a retryable broker error"
        assert await consumer.dead_letters(topic) == []
        after = set(await connections_named(topic))
        assert len(after) == 2 and not after & before, "both sides reconnected"


@pytest.mark.slow
async def test_a_broker_restart_keeps_persistent_messages_and_both_sides_carry_on(topic):
    require_tool("rabbitmqctl", shutil.which("rabbitmqctl"), "apt-get install rabbitmq-server")
    before = {f"before{i}" for i in range(30)}
    after = {f"after{i}" for i in range(30)}
    recorder = Recorder()
    recorder.gate.clear()  # handlers hold their deliveries: the restart kills them unacked
    async with opened(topic) as (publisher, consumer):
        sub = await consumer.consume(topic, recorder, prefetch=5)
        for message_id in sorted(before):
            await publisher.publish(topic, {"id": message_id}, message_id=message_id)
        assert await publisher.depth(topic) >= len(before) - 5  # the rest wait in the queue
        try:
            await rabbitmqctl("stop_app")
            with pytest.raises(TransientError):
                await publisher.publish(topic, {"id": "x"}, message_id="while-down")
            await rabbitmqctl("start_app")
            await rabbitmqctl("await_startup")
        finally:
            await rabbitmqctl("start_app")  # running again whatever happened above
        recorder.gate.set()  # the held deliveries' acks now fail on dead channels: harmless
        failures: list[ErrorCode] = []
        for message_id in sorted(after):
            await publish_until_confirmed(publisher, topic, message_id, failures)
        await recorder.wait_for(before | after)
        await sub.stop()
        assert before | after <= recorder.acked, "messages published before the restart survived it"
        held = [d for d in recorder.deliveries if d.message_id in before and d.delivery_count == 1]
        assert len({d.message_id for d in recorder.deliveries}) >= len(before | after)
        assert held, "some deliveries were in handlers during the restart"
        assert await consumer.dead_letters(topic) == []


async def test_a_delay_longer_than_the_largest_bucket_goes_round_until_due(topic, monkeypatch):
    monkeypatch.setattr(rabbitmq_topology, "DELAY_BUCKETS_MS", (10, 50))
    delay_s = 0.2  # four times the largest bucket
    seen: list[tuple[int, float]] = []
    done = asyncio.Event()

    async def handler(delivery: Delivery) -> None:
        seen.append((delivery.delivery_count, time.monotonic()))
        if len(seen) == 1:
            await delivery.nack(requeue=True, delay_s=delay_s)
        else:
            await delivery.ack()
            done.set()

    async with opened(topic) as (publisher, consumer):
        await publisher.publish(topic, {"id": "m"}, message_id="m", headers={"x-request-id": "r1"})
        sub = await consumer.consume(topic, handler, prefetch=1)
        await asyncio.wait_for(done.wait(), 10)
        await sub.stop()
    assert [count for count, _ in seen] == [1, 1]
    assert seen[1][1] - seen[0][1] >= delay_s


async def test_a_consumer_channel_closed_by_the_broker_consumes_again(topic):
    recorder = Recorder()
    async with opened(topic) as (publisher, consumer):
        sub = await consumer.consume(topic, recorder, prefetch=5)
        await publisher.publish(topic, {"id": "first"}, message_id="first")
        await recorder.wait_for({"first"})
        # A channel error (here: acking a delivery tag the channel never had) makes the
        # broker close the channel, not the connection: aio-pika reopens it, the
        # subscription consumes on it again.
        underlay = await sub._channel.get_underlay_channel()
        await underlay.basic_ack(delivery_tag=10_000)
        await asyncio.wait([underlay.closing], timeout=5)
        assert underlay.is_closed
        for i in range(10):
            await publish_until_confirmed(publisher, topic, f"later{i}", [])
        await recorder.wait_for({f"later{i}" for i in range(10)})
        await sub.stop()
    assert len(recorder.acked) == 11
