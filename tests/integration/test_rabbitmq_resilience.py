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


async def test_reads_given_up_by_their_callers_fail_no_publish_in_flight(topic):
    """Readiness probes and the depth gauge give up after a second; aiormq closes a channel
    whose RPC is cancelled. Reads cancelled mid-flight, over and over, while publishes
    stream must leave every publish confirmed."""
    failures: list[str] = []
    published: list[str] = []
    streaming = True

    async def stream(n: int) -> None:
        i = 0
        while streaming or i < 5:
            message_id = f"s{n}-{i}"
            try:
                await publisher.publish(topic, {"id": message_id}, message_id=message_id)
                published.append(message_id)
            except TransientError as exc:
                failures.append(f"{message_id}: {exc}")
                return
            i += 1

    async with opened(topic) as (publisher, _):
        await publisher.depth(topic)  # the topic's queues exist: reads and publishes race from the start
        streams = [asyncio.create_task(stream(n)) for n in range(10)]
        given_up, read_failures = 0, []
        for round_ in range(40):
            for read in (publisher.ping(), publisher.depth(topic), publisher.dead_letters(topic)):
                try:
                    await asyncio.wait_for(read, timeout=0.0005 * (round_ % 8))
                except TimeoutError:
                    given_up += 1
                except TransientError as exc:
                    read_failures.append(str(exc))
        streaming = False
        await asyncio.wait_for(asyncio.gather(*streams), HANDLED_TIMEOUT_S)
        assert given_up > 0, "some reads were given up mid-flight"
        assert failures == [], "no publish failed because a read was given up"
        assert read_failures == [], "a read given up does not break the next one"
        assert await publisher.depth(topic) == len(published), "every confirmed publish is in the queue"
        await publisher.ping()  # and the reads themselves still work


async def test_a_subscription_that_cannot_consume_again_retries_and_readiness_says_so(topic, monkeypatch, caplog):
    """aio-pika swallows what a reopen callback raises: a failed re-declare must not leave
    the worker consuming nothing while its /readyz says ready."""
    from tokenforge.jobs.backends import rabbitmq_subscription

    monkeypatch.setattr(rabbitmq_subscription, "RESUME_BACKOFF_S", 0.05)
    recorder = Recorder()
    async with opened(topic) as (publisher, consumer):
        sub = await consumer.consume(topic, recorder, prefetch=5)
        assert sub.consuming
        await consumer.ping()

        broker_refuses = True
        attempts: list[int] = []
        failed_twice = asyncio.Event()
        queue_class = type(sub._queue)
        declare = queue_class.declare

        async def flaky_declare(self, *args, **kwargs):
            if self is sub._queue:  # the subscription's re-declare on reopen, no other
                attempts.append(1)
                if len(attempts) >= 2:
                    failed_twice.set()
                if broker_refuses:
                    raise ConnectionError("test: the broker refuses the declaration")
            return await declare(self, *args, **kwargs)

        monkeypatch.setattr(queue_class, "declare", flaky_declare)
        # A channel error makes the broker close the consumer's channel; aio-pika reopens it
        # and the subscription's re-declare fails until broker_refuses is cleared.
        underlay = await sub._channel.get_underlay_channel()
        await underlay.basic_ack(delivery_tag=10_000)
        await asyncio.wait_for(failed_twice.wait(), 10)
        assert not sub.consuming
        with pytest.raises(TransientError) as raised:
            await consumer.ping()
        assert raised.value.code == ErrorCode.BROKER_UNAVAILABLE
        assert topic in str(raised.value)

        broker_refuses = False
        await publisher.publish(topic, {"id": "after"}, message_id="after")
        await recorder.wait_for({"after"})
        assert sub.consuming
        await consumer.ping()
        await sub.stop()
    warnings = [r for r in caplog.records if "cannot consume" in r.getMessage()]
    assert len(warnings) == 1, "one warning per outage, not one per attempt"
    assert "guest" not in warnings[0].getMessage()


async def test_dead_letters_taken_for_a_caller_that_gave_up_are_put_back(topic):
    async def reject(delivery: Delivery) -> None:
        await delivery.nack(requeue=False)

    async with opened(topic) as (publisher, consumer):
        sub = await consumer.consume(topic, reject, prefetch=5)
        for i in range(5):
            await publisher.publish(topic, {"id": i}, message_id=f"dead{i}")
        await consumer.join(topic, timeout_s=10)
        await sub.stop()
        given_up = 0
        for round_ in range(10):
            try:
                taken = await asyncio.wait_for(publisher.take_dead_letters(topic, limit=5), timeout=0.001 * round_)
            except TimeoutError:
                given_up += 1
            else:  # taken in time: put back like a sweeper whose database write failed
                for delivery in taken:
                    await delivery.nack()
        assert given_up > 0
        while publisher._background:  # the reads finishing for callers that left, and their put-backs
            await asyncio.wait(set(publisher._background))
        listed = await publisher.dead_letters(topic)
        assert sorted(d.message_id for d in listed) == [f"dead{i}" for i in range(5)], "none is held"


async def test_an_inspect_channel_that_stays_closed_is_replaced(topic, monkeypatch):
    from tokenforge.jobs.backends import rabbitmq

    monkeypatch.setattr(rabbitmq, "RPC_TIMEOUT_S", 0.2)
    async with opened(topic) as (publisher, _):
        await publisher._inspect.close()  # closed for good: aio-pika does not restore a channel closed on purpose
        await publisher.ping()
        assert await publisher.depth(topic) == 0
        assert not publisher._inspect.is_closed
