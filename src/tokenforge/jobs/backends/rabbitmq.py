"""RabbitMQ backend of the queue port (``jobs/ports.py``), on aio-pika (decision 0011).

Queues and their arguments are in ``rabbitmq_topology.py``, consuming in
``rabbitmq_subscription.py``. Publishing goes through the default exchange to the topic's
quorum work queue, ``mandatory``, persistent, with publisher confirms. The port's delivery
limit is the queue's ``x-delivery-limit`` plus one, so the broker dead-letters (at least
once) to the topic's dead-letter queue.

``nack(delay_s=d)`` publishes a fresh copy (same body, ``message_id`` and headers) into
the topic's delay bucket of at least ``d``, waits for the confirm, then acks the
original: the copy comes back with ``delivery_count`` 1 and is in the broker all along.
A delay beyond the largest bucket carries a not-before time and goes round again until due.

``connect_robust`` reconnects after a connection loss or a broker restart and reopens the
channels; subscriptions consume again. A delivery whose channel died cannot be settled
any more: its ``ack``/``nack`` log and return, and the broker delivers the message again.

Reads (``ping``, ``depth``, dead letters) run on an "inspect" channel of their own, in a
task shielded from the caller's cancellation: aiormq closes a channel whose RPC is
cancelled, and readiness probes and gauges give up after a second. On the publishing
channel that would fail every publish in flight; on the inspect channel nothing is
cancelled but by this module's own timeout, and a closed inspect channel is reopened.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import aio_pika
from aio_pika.abc import (
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
    DeliveryMode,
    ExchangeType,
)
from aio_pika.exceptions import ChannelPreconditionFailed, PublishError
from yarl import URL

from tokenforge.errors import ErrorCode, TransientError
from tokenforge.jobs.backends import rabbitmq_topology as topology
from tokenforge.jobs.backends.rabbitmq_subscription import BROKER_ERRORS, RPC_TIMEOUT_S, RabbitSubscription, settle
from tokenforge.jobs.ports import Body, Delivery, Handler

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Header carrying the due time (Unix ms) of a delay longer than the largest bucket.
NOT_BEFORE_HEADER = "tokenforge-not-before-ms"
#: Headers the broker (or this module) adds; they are not the publisher's headers.
_BROKER_HEADERS = frozenset(
    {
        "x-death",
        "x-delivery-count",
        "x-first-death-exchange",
        "x-first-death-queue",
        "x-first-death-reason",
        "x-last-death-exchange",
        "x-last-death-queue",
        "x-last-death-reason",
        NOT_BEFORE_HEADER,
    }
)
#: ``join`` polls this often and wants this many idle answers in a row (see ``join``).
_JOIN_POLL_S, _JOIN_IDLE_POLLS = 0.02, 5


def _now_ms() -> int:
    return int(time.time() * 1000)


def _where(url: str) -> str:
    """``host:port/vhost`` of an AMQP URL, for messages: never the credentials."""
    parsed = URL(url)
    return f"{parsed.host}:{parsed.port or 5672}{parsed.path or '/'}"


def _unavailable(what: str, exc: BaseException) -> TransientError:
    """The port's error for a broker failure (never the vendor's text: it may name the URL)."""
    if isinstance(exc, ChannelPreconditionFailed):
        what += " (a queue exists with other arguments, e.g. another delivery limit: see decision 0011)"
    return TransientError(f"{what} ({type(exc).__name__})", code=ErrorCode.BROKER_UNAVAILABLE)


def _user_headers(message: AbstractIncomingMessage) -> dict[str, str]:
    return {k: v for k, v in message.headers.items() if isinstance(v, str) and k not in _BROKER_HEADERS}


def _int_header(message: AbstractIncomingMessage, name: str) -> int:
    value = message.headers.get(name)
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else 0


def _parse(message: AbstractIncomingMessage) -> Body | None:
    try:
        body = json.loads(message.body)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _death_reason(message: AbstractIncomingMessage) -> str | None:
    """Why the broker dead-lettered ``message`` last (``x-death`` lists the latest first;
    ``x-first-death-reason`` would name an earlier expiry from a delay bucket)."""
    deaths = message.headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        reason = deaths[0].get("reason")
        return reason if isinstance(reason, str) else None
    return None


class RabbitQueue:
    """The queue port on RabbitMQ; open it with :meth:`connect`."""

    def __init__(
        self,
        connection: AbstractRobustConnection,
        channel: AbstractRobustChannel,
        inspect: AbstractRobustChannel,
        *,
        delivery_limit: int,
        prefetch_default: int,
        prefix: str,
        publish_timeout_s: float,
    ) -> None:
        self.delivery_limit = delivery_limit
        self.prefetch_default = prefetch_default
        self._connection = connection
        #: publishes (with confirms) and their declarations; no RPC on it is cancelled by a caller
        self._channel = channel
        #: ping, depth and dead-letter reads (see the module docstring)
        self._inspect = inspect
        self._inspect_lock = asyncio.Lock()
        self._names = topology.Topology(prefix, delivery_limit)
        self._publish_timeout_s = publish_timeout_s
        self._topics: set[str] = set()  # topics whose queues this process declared
        self._delays: dict[str, set[int]] = {}  # topic → delay buckets (ms) declared
        self._declare_lock = asyncio.Lock()
        self._subscriptions: set[RabbitSubscription] = set()
        self._busy: Counter[str] = Counter()  # topic → deliveries received and not yet finished here
        self._background: set[asyncio.Task[Any]] = set()  # reads running for (or after) their callers

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        delivery_limit: int,
        prefetch_default: int = 10,
        prefix: str = topology.DEFAULT_PREFIX,
        reconnect_interval_s: float = 1.0,
        publish_timeout_s: float = 10.0,
        connection_name: str = "tokenforge",
    ) -> RabbitQueue:
        """Connect (robustly: reconnects by itself later) to the broker at ``url``.

        ``prefetch_default`` applies when :meth:`consume` gets no ``prefetch``;
        ``publish_timeout_s`` bounds a publish (including the wait for a reconnect);
        ``connection_name`` is what the broker's connection list shows."""
        if delivery_limit < 1:
            raise ValueError("delivery_limit must be at least 1")
        try:
            connection = await aio_pika.connect_robust(
                # The name goes in the URL: aio-pika ignores ``client_properties`` next to a URL.
                str(URL(url).update_query(name=connection_name)),
                timeout=publish_timeout_s,
                reconnect_interval=reconnect_interval_s,
            )
            channel = cast(
                AbstractRobustChannel, await connection.channel(publisher_confirms=True, on_return_raises=True)
            )
            inspect = cast(AbstractRobustChannel, await connection.channel(publisher_confirms=False))
        except BROKER_ERRORS as exc:
            raise _unavailable(f"cannot connect to RabbitMQ at {_where(url)}", exc) from None
        return cls(
            connection,
            channel,
            inspect,
            delivery_limit=delivery_limit,
            prefetch_default=prefetch_default,
            prefix=prefix,
            publish_timeout_s=publish_timeout_s,
        )

    # ------------------------------------------------------------------ topology

    async def _ensure(self, topic: str, channel: AbstractRobustChannel | None = None) -> None:
        """Declare the topic's work and dead-letter queues once per process (idempotent), on
        ``channel`` (default: the publishing channel)."""
        if topic in self._topics:
            return
        async with self._declare_lock:
            if topic not in self._topics:
                ch, names = channel or self._channel, self._names
                # robust=False: durable quorum queues outlive a broker restart, and a queue
                # deleted since must not come back when aio-pika restores the channel.
                exchange = await ch.declare_exchange(
                    names.dead_exchange, ExchangeType.DIRECT, durable=True, robust=False
                )
                dead = await ch.declare_queue(
                    names.dead(topic), durable=True, arguments=names.dead_arguments(), robust=False
                )
                await dead.bind(exchange, names.dead(topic), robust=False)
                await ch.declare_queue(
                    names.work(topic), durable=True, arguments=names.work_arguments(topic), robust=False
                )
                self._topics.add(topic)

    async def _ensure_delay(self, topic: str, ms: int) -> str:
        """Declare the topic's delay bucket of ``ms`` once per process; returns its name."""
        name = self._names.delay(topic, ms)
        declared = self._delays.setdefault(topic, set())
        if ms not in declared:
            await self._channel.declare_queue(
                name, durable=True, arguments=self._names.delay_arguments(topic, ms), robust=False
            )
            declared.add(ms)
        return name

    def _forget(self, topic: str) -> None:
        self._topics.discard(topic)
        self._delays.pop(topic, None)

    async def delete_topic(self, topic: str) -> None:
        """Delete every queue of ``topic`` with its messages (tests; retiring a chain)."""
        for name in self._names.every_queue(topic):
            await self._channel.queue_delete(name)
        self._forget(topic)

    # ------------------------------------------------------------------ publishing

    async def publish(self, topic: str, body: Body, *, message_id: str, headers: dict[str, str] | None = None) -> None:
        """Return once the broker confirmed the message; ``TransientError`` (code
        ``BROKER_UNAVAILABLE``) on a nack, a return, a lost connection or a timeout."""
        message = aio_pika.Message(
            json.dumps(body, separators=(",", ":")).encode(),
            message_id=message_id,
            headers=dict(headers or {}),
            content_type="application/json",
            delivery_mode=DeliveryMode.PERSISTENT,
        )
        await self._publish(topic, message, None)

    async def _publish(self, topic: str, message: aio_pika.Message, delay_ms: int | None) -> None:
        """Publish to the work queue, or to the delay bucket for ``delay_ms``, and await the confirm."""
        try:
            async with asyncio.timeout(self._publish_timeout_s):
                await self._ensure(topic)
                queue = (
                    self._names.work(topic)
                    if delay_ms is None
                    else await self._ensure_delay(topic, topology.bucket_ms(delay_ms))
                )
                await self._channel.default_exchange.publish(message, queue, mandatory=True)
        except BROKER_ERRORS as exc:
            if isinstance(exc, PublishError):  # returned: its queue is gone, declare it again next time
                self._forget(topic)
            raise _unavailable(f"RabbitMQ did not confirm message {message.message_id} on {topic}", exc) from None

    async def _delay_and_ack(self, topic: str, message: AbstractIncomingMessage, due_ms: int) -> None:
        """Put a fresh copy of ``message`` into a delay bucket (confirmed), then ack the original.

        If the copy cannot be published the original is requeued instead: it stays in the
        broker either way (at least once)."""
        headers: dict[str, Any] = _user_headers(message)
        wait_ms = max(1, due_ms - _now_ms())
        if wait_ms > topology.DELAY_BUCKETS_MS[-1]:
            headers[NOT_BEFORE_HEADER] = str(due_ms)
        copy = aio_pika.Message(
            message.body,
            message_id=message.message_id,
            headers=headers,
            content_type=message.content_type,
            delivery_mode=DeliveryMode.PERSISTENT,
        )
        try:
            await self._publish(topic, copy, wait_ms)
        except TransientError:
            log.warning("could not delay message %s; requeueing it now", message.message_id)
            await settle("requeue", message.nack(requeue=True), message.message_id)
            return
        await settle("ack", message.ack(), message.message_id)

    # ------------------------------------------------------------------ consuming

    async def consume(self, topic: str, handler: Handler, *, prefetch: int | None = None) -> RabbitSubscription:
        """Consume ``topic`` on a channel of its own with QoS ``prefetch`` (default
        ``prefetch_default``); handlers run concurrently up to ``prefetch``."""
        prefetch = self.prefetch_default if prefetch is None else prefetch
        if prefetch < 1:
            raise ValueError("prefetch must be at least 1")
        try:
            async with asyncio.timeout(self._publish_timeout_s):
                await self._ensure(topic)
                channel = cast(AbstractRobustChannel, await self._connection.channel(publisher_confirms=False))
                await channel.set_qos(prefetch_count=prefetch)
                # robust=False: the subscription, not aio-pika, consumes again on reopen.
                queue = await channel.declare_queue(
                    self._names.work(topic), durable=True, arguments=self._names.work_arguments(topic), robust=False
                )
                sub = RabbitSubscription(
                    topic,
                    handler,
                    channel,
                    queue,
                    prefetch,
                    deliver=self._delivery,
                    busy=self._busy,
                    on_stopped=self._subscriptions.discard,
                )
                await sub.start()
        except BROKER_ERRORS as exc:
            raise _unavailable(f"cannot consume {topic} on RabbitMQ", exc) from None
        self._subscriptions.add(sub)
        return sub

    async def _delivery(self, topic: str, message: AbstractIncomingMessage) -> Delivery | None:
        """The port's view of ``message``, or None when it must not reach the handler (a
        malformed body is dead-lettered; a long delay not yet due goes round again)."""
        due_ms = _int_header(message, NOT_BEFORE_HEADER)
        if due_ms > _now_ms():
            await self._delay_and_ack(topic, message, due_ms)
            return None
        body = _parse(message)
        if body is None:
            log.error("message %s on %s is not a JSON object; dead-lettering it", message.message_id, topic)
            await settle("dead-letter", message.reject(requeue=False), message.message_id)
            return None
        delivery = Delivery(
            topic,
            message.message_id or "",
            body,
            _int_header(message, "x-delivery-count") + 1,
            _user_headers(message),
        )

        async def ack() -> None:
            await settle("ack", message.ack(), message.message_id)

        async def nack(requeue: bool, delay_s: float = 0.0) -> None:
            if not requeue:
                await settle("dead-letter", message.reject(requeue=False), message.message_id)
            elif delay_s > 0:
                await self._delay_and_ack(topic, message, _now_ms() + math.ceil(delay_s * 1000))
            else:  # the broker dead-letters it instead once it reached x-delivery-limit
                await settle("requeue", message.nack(requeue=True), message.message_id)

        delivery._ack, delivery._nack = ack, nack
        return delivery

    # ------------------------------------------------------------------ reads on the inspect channel

    async def _inspection(self) -> AbstractRobustChannel:
        """The inspect channel, once aio-pika has restored it (it does after a cancelled RPC
        or a reconnect); one that stays closed while the connection is up is replaced."""
        channel = self._inspect
        if channel.is_closed:
            try:
                await asyncio.wait_for(cast(aio_pika.RobustChannel, channel).ready(), RPC_TIMEOUT_S)
            except TimeoutError:
                if not self._connection.connected.is_set():
                    raise  # reconnecting: aio-pika restores the channel with the connection
                async with self._inspect_lock:
                    if self._inspect is channel and channel.is_closed:
                        log.warning("the RabbitMQ inspect channel stayed closed; opening a new one")
                        self._inspect = cast(
                            AbstractRobustChannel, await self._connection.channel(publisher_confirms=False)
                        )
                channel = self._inspect
        return channel

    def _inspecting(self, what: str, read: Callable[[AbstractRobustChannel], Awaitable[T]]) -> asyncio.Task[T]:
        """Run ``read`` on the inspect channel in a task of its own, bounded by the publish
        timeout; the caller awaits it shielded, so a caller giving up cancels no RPC.
        Broker failures become ``TransientError`` (``BROKER_UNAVAILABLE``) saying ``what``."""

        async def run() -> T:
            try:
                async with asyncio.timeout(self._publish_timeout_s):
                    return await read(await self._inspection())
            except BROKER_ERRORS as exc:
                raise _unavailable(what, exc) from None

        task = asyncio.create_task(run(), name="rabbitmq-inspect")
        self._background.add(task)
        task.add_done_callback(self._finished_background)
        return task

    def _finished_background(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a caller that gave up does not see it

    async def _work_queue(self, channel: AbstractRobustChannel, topic: str) -> AbstractQueue:
        await self._ensure(topic, channel)
        return await channel.declare_queue(
            self._names.work(topic), durable=True, arguments=self._names.work_arguments(topic), robust=False
        )

    async def _get_dead(
        self, channel: AbstractRobustChannel, topic: str, limit: int | None
    ) -> list[AbstractIncomingMessage]:
        """Up to ``limit`` dead letters of ``topic``, unsettled (the broker's until settled);
        on a failure part-way the ones already taken are put back."""
        await self._ensure(topic, channel)
        dead = await channel.declare_queue(
            self._names.dead(topic), durable=True, arguments=self._names.dead_arguments(), robust=False
        )
        got: list[AbstractIncomingMessage] = []
        try:
            while limit is None or len(got) < limit:
                message = await dead.get(no_ack=False, fail=False)
                if message is None:
                    break
                got.append(message)
        except BaseException:
            if not channel.is_closed:  # a closed channel has handed them back already
                await self._put_back(got)
            raise
        return got

    @staticmethod
    async def _put_back(messages: list[AbstractIncomingMessage]) -> None:
        for m in messages:
            await settle("put back", m.nack(requeue=True), m.message_id)

    def _dead_letter(self, topic: str, message: AbstractIncomingMessage) -> Delivery:
        """A dead-lettered message. The broker keeps no delivery count for a rejected one:
        ``delivery_count`` is ``delivery_limit`` when the limit killed it, 1 otherwise."""
        return Delivery(
            topic,
            message.message_id or "",
            _parse(message) or {"raw": message.body.decode("utf-8", "replace")},
            self.delivery_limit if _death_reason(message) == "delivery_limit" else 1,
            _user_headers(message),
        )

    async def dead_letters(self, topic: str, *, limit: int | None = None) -> list[Delivery]:
        """The dead letters of ``topic`` (the first ``limit`` of them; all by default), left
        in place: read unsettled, then put back. All the read ones are held at once: bound
        ``limit`` where a caller waits on it, or use :meth:`take_dead_letters` for batches."""

        async def read(channel: AbstractRobustChannel) -> list[Delivery]:
            messages = await self._get_dead(channel, topic, limit)
            try:
                out = [self._dead_letter(topic, m) for m in messages]
                for delivery in out:
                    delivery.settled = True
                return out
            finally:
                await self._put_back(messages)

        return await asyncio.shield(self._inspecting(f"cannot read the dead letters of {topic} on RabbitMQ", read))

    async def take_dead_letters(self, topic: str, *, limit: int) -> list[Delivery]:
        """Up to ``limit`` dead letters, unsettled: ``ack()`` removes one, ``nack()`` puts it back.
        Taken for a caller that gave up meanwhile, they are put back."""
        task = self._inspecting(
            f"cannot read the dead letters of {topic} on RabbitMQ", lambda ch: self._get_dead(ch, topic, limit)
        )
        try:
            messages = await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(self._put_back_abandoned)
            raise
        out = []
        for message in messages:
            delivery = self._dead_letter(topic, message)

            async def ack(m: AbstractIncomingMessage = message) -> None:
                await settle("ack", m.ack(), m.message_id)

            async def put_back(requeue: bool, delay_s: float = 0.0, m: AbstractIncomingMessage = message) -> None:
                await settle("put back", m.nack(requeue=True), m.message_id)

            delivery._ack, delivery._nack = ack, put_back
            out.append(delivery)
        return out

    def _put_back_abandoned(self, task: asyncio.Task[list[AbstractIncomingMessage]]) -> None:
        if task.cancelled() or task.exception() is not None:
            return
        put_back = asyncio.create_task(self._put_back(task.result()), name="rabbitmq-put-back")
        self._background.add(put_back)
        put_back.add_done_callback(self._finished_background)

    async def depth(self, topic: str) -> int:
        """Messages ready in the topic's work queue (for the queue-depth gauge).

        A full (idempotent) re-declare, not a passive one: a passive declare of a missing
        queue would close the channel."""

        async def read(channel: AbstractRobustChannel) -> int:
            work = await self._work_queue(channel, topic)
            return work.declaration_result.message_count or 0

        return await asyncio.shield(self._inspecting(f"cannot read the depth of {topic}", read))

    async def ping(self) -> None:
        """One round trip to the broker (readiness): an idempotent declare of the dead-letter
        exchange. ``TransientError`` (``BROKER_UNAVAILABLE``) when it does not answer, or
        when a subscription of this queue is not consuming (it lost its channel and has not
        consumed again yet): a worker that takes no deliveries is not ready."""
        idle = sorted(sub.topic for sub in self._subscriptions if not sub.consuming)
        if idle:
            raise TransientError(
                f"not consuming {', '.join(idle)} (the channel was lost; consuming again as soon as it can)",
                code=ErrorCode.BROKER_UNAVAILABLE,
            )

        async def read(channel: AbstractRobustChannel) -> None:
            await channel.declare_exchange(self._names.dead_exchange, ExchangeType.DIRECT, durable=True, robust=False)

        await asyncio.shield(self._inspecting("the broker does not answer", read))

    async def join(self, topic: str, *, timeout_s: float) -> None:
        """Wait until ``topic`` has nothing ready (work queue and this process's delay
        buckets) and no delivery in a handler of this process; ``TimeoutError`` after
        ``timeout_s``. For tests: the broker reports ready counts only, so this polls and
        wants several idle answers in a row to step over messages on the wire."""
        async with asyncio.timeout(timeout_s):
            idle = 0
            while idle < _JOIN_IDLE_POLLS:
                await asyncio.sleep(_JOIN_POLL_S)
                ready = await self.depth(topic)
                for ms in sorted(self._delays.get(topic, ())):
                    bucket = await self._inspect.declare_queue(
                        self._names.delay(topic, ms),
                        durable=True,
                        arguments=self._names.delay_arguments(topic, ms),
                        robust=False,
                    )
                    ready += bucket.declaration_result.message_count or 0
                idle = idle + 1 if ready == 0 and not self._busy[topic] else 0

    async def close(self) -> None:
        """Stop every subscription (running handlers get the default stop timeout), give
        the reads still running ``RPC_TIMEOUT_S`` (dead letters taken for a caller that left
        are put back), cancel the rest, then disconnect."""
        for sub in list(self._subscriptions):
            await sub.stop()
        if self._background:
            await asyncio.wait(set(self._background), timeout=RPC_TIMEOUT_S)
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.wait(set(self._background))
        await self._connection.close()
