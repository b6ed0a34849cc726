"""The worker's step for ``jobs.webhook`` messages: one attempt of one delivery.

A message names ``(delivery_id, webhook_id, attempt)``. The delivery row decides what it
does, so duplicate and stale messages are harmless: an attempt is made only while the
delivery is ``pending`` with ``attempt - 1`` attempts recorded, and its outcome is recorded
only under the same condition (a duplicate that raced it records nothing). The outcome,
and the outbox row of the next attempt when there is one, commit in one transaction; the
message is acked after that commit. A crash before the commit brings the message back
and the attempt is made again (at-least-once; receivers de-duplicate on the body's ``id``
or the ``TokenForge-Delivery`` header).

Each attempt resolves the URL again and refuses it if any address is no longer public
(DNS rebinding, :mod:`tokenforge.net.ssrf`): that fails the delivery at once, saying why.
It then connects to a checked address itself (the IP in the URL, the name in ``Host``
and in TLS SNI, certificates checked against the name), so no second lookup can change
where the request goes. Redirects are not followed (a 3xx is a failed attempt), proxies
from the environment are ignored, the whole attempt is bounded by ``timeout_s`` and the
response body is never read.

A 2xx marks the delivery ``delivered``. Any other answer, a timeout or a connection
failure records the status code or the error and schedules the next attempt through the
outbox after exponential backoff with full jitter (:func:`tokenforge.jobs.policy.backoff_s`
over ``webhook_retry_base_s``..``webhook_retry_max_s``) until ``max_attempts`` are used:
then ``failed``. Calls to one destination host keep to ``webhook_max_rps_per_host`` per process.

Deliveries to one webhook are sent one at a time per process, in the order their
messages arrive (event order, as the dispatcher creates them, unless an attempt had to be
retried): a receiver is never hit by this process in parallel. Across worker processes,
and after a retry, order is not guaranteed: ``data.job.event_id`` orders a job's events.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import httpx
import orjson
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tokenforge.errors import PermanentError, ValidationFailed
from tokenforge.jobs.policy import RetryPolicy, as_tokenforge_error, backoff_s, outage_delay_s
from tokenforge.jobs.ports import STOP_TIMEOUT_S, Delivery, JobQueue, Subscription
from tokenforge.net.ssrf import Network, Resolver, Target, UnresolvableHost, resolve_public
from tokenforge.outbound import Budgets
from tokenforge.store.db import utcnow
from tokenforge.store.models import OutboxRow, table
from tokenforge.store.repositories import webhooks as repo
from tokenforge.webhooks.messages import WEBHOOK_TOPIC, outbox_row
from tokenforge.webhooks.secrets import SecretBox
from tokenforge.webhooks.signing import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, signature_header

log = logging.getLogger(__name__)

USER_AGENT = "TokenForge-Webhooks/1"
#: How long a message waits for this process's previous delivery to the same webhook
#: before it is handed back to the queue (so one slow receiver cannot hold every slot).
TURN_WAIT_S = 2.0


@dataclass(frozen=True, slots=True)
class Outcome:
    delivered: bool
    status_code: int | None = None
    error: str | None = None
    #: False: no further attempt can help (the URL is refused)
    retryable: bool = True


class DeliveryHandler:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        secrets: SecretBox,
        *,
        timeout_s: float,
        max_attempts: int,
        policy: RetryPolicy,
        retry_base_s: float,
        retry_max_s: float,
        per_host: Budgets | None = None,
        allowed_networks: Iterable[Network],
        wake_relay: Callable[[], None],
        resolve: Resolver | None = None,
    ) -> None:
        self._sessions = sessions
        self._secrets = secrets
        self._timeout_s = timeout_s
        self._max_attempts = max_attempts
        self._policy = policy
        self._retry_base_s, self._retry_max_s = retry_base_s, retry_max_s
        #: calls per second to one destination host (:mod:`tokenforge.outbound`)
        self._per_host = per_host
        self._allowed = tuple(allowed_networks)
        self._wake_relay = wake_relay
        self._resolve = resolve
        self._client: httpx.AsyncClient | None = None
        #: per webhook: the lock whose holder is sending to it, and how many messages use it
        self._turns: dict[str, tuple[asyncio.Lock, int]] = {}
        self._subscription: Subscription | None = None
        self._outages = 0

    # -- the queue side -------------------------------------------------------------------

    async def start(self, queue: JobQueue, *, prefetch: int = 16) -> None:
        self._subscription = await queue.consume(WEBHOOK_TOPIC, self.handle, prefetch=prefetch)

    async def stop(self, *, timeout_s: float | None = STOP_TIMEOUT_S) -> None:
        if self._subscription is not None:
            await self._subscription.stop(timeout_s=timeout_s)
            self._subscription = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def handle(self, message: Delivery) -> None:
        """Make the attempt ``message`` asks for; settles ``message``."""
        body = message.body if isinstance(message.body, dict) else {}
        delivery_id, webhook_id, attempt = body.get("delivery_id"), body.get("webhook_id"), body.get("attempt")
        if not (isinstance(delivery_id, str) and isinstance(webhook_id, str) and isinstance(attempt, int)):
            log.warning("dropping malformed webhook message %s", message.message_id)
            await message.nack(requeue=False)
            return
        turn, users = self._turns.get(webhook_id, (asyncio.Lock(), 0))
        self._turns[webhook_id] = (turn, users + 1)
        try:
            async with asyncio.timeout(TURN_WAIT_S):
                await turn.acquire()
        except TimeoutError:
            self._leave(webhook_id)
            await message.nack(requeue=True, delay_s=TURN_WAIT_S)
            return
        try:
            await self._attempt(delivery_id, attempt)
        except Exception as exc:  # noqa: BLE001 - nothing could be recorded (the database is down); logged once
            self._outages += 1
            err = as_tokenforge_error(exc)
            if self._outages == 1:
                log.warning("webhook delivery %s: %s; its message comes back later", delivery_id, err)
            await message.nack(requeue=True, delay_s=outage_delay_s(self._outages, self._policy))
            return
        finally:
            turn.release()
            self._leave(webhook_id)
        self._outages = 0
        await message.ack()  # after the outcome's commit

    def _leave(self, webhook_id: str) -> None:
        turn, users = self._turns[webhook_id]
        if users > 1:
            self._turns[webhook_id] = (turn, users - 1)
        else:
            del self._turns[webhook_id]

    # -- one attempt ---------------------------------------------------------------------------

    async def _attempt(self, delivery_id: str, attempt: int) -> None:
        async with self._sessions() as session:
            delivery = await repo.get_delivery(session, delivery_id)
            hook = None if delivery is None else await repo.get(session, delivery.webhook_id)
        if delivery is None or hook is None or delivery.status != repo.PENDING or delivery.attempts != attempt - 1:
            return  # settled, or this attempt was made already: a duplicate or stale message
        if hook.disabled_at is not None:
            return  # deleting the webhook failed its pending deliveries
        body = orjson.dumps(delivery.payload)
        event = str(delivery.payload.get("type", "")) if isinstance(delivery.payload, dict) else ""
        try:
            secret = self._secrets.open(hook.id, hook.secret)
        except PermanentError as err:  # tampered, or sealed under a key this process lacks
            outcome = Outcome(False, error=f"the webhook's secret cannot be opened ({err.code})", retryable=False)
        else:
            outcome = await self._send(hook.url, secret, delivery_id, event, body)
        await self._record(delivery_id, hook.id, attempt, outcome)

    async def _send(self, url: str, secret: str, delivery_id: str, event: str, body: bytes) -> Outcome:
        try:
            target = await resolve_public(
                url, field="url", allowed_networks=self._allowed, timeout_s=self._timeout_s, resolve=self._resolve
            )
        except UnresolvableHost as err:
            return Outcome(False, error=err.message)
        except ValidationFailed as err:
            return Outcome(False, error=f"refused at delivery: {err.message}", retryable=False)
        headers = {
            "Host": target.host_header,
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: signature_header(secret, body),
            DELIVERY_HEADER: delivery_id,
            EVENT_HEADER: event,
        }
        if self._per_host is not None:  # waiting for the host's budget is not the receiver's time
            await self._per_host.acquire(target.host.lower())
        try:
            async with asyncio.timeout(self._timeout_s):
                status = await self._post(target, headers, body)
        except TimeoutError:
            return Outcome(False, error=f"no answer within {self._timeout_s:g} s")
        except httpx.HTTPError as exc:
            return Outcome(False, error=f"request failed ({type(exc).__name__})")
        if 200 <= status < 300:
            return Outcome(True, status)
        if 300 <= status < 400:
            return Outcome(False, status, f"HTTP {status}: redirects are not followed")
        return Outcome(False, status, f"HTTP {status}")

    async def _post(self, target: Target, headers: dict[str, str], body: bytes) -> int:
        """POST to the first checked address that accepts a connection; its status code."""
        client = self._http()
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        last: httpx.ConnectError | None = None
        for address in target.addresses:
            request = client.build_request(
                "POST", target.url_for(address), headers=headers, content=body, extensions=extensions
            )
            try:
                response = await client.send(request, stream=True)
            except httpx.ConnectError as exc:
                last = exc
                continue
            await response.aclose()  # the body is never read
            return response.status_code
        assert last is not None
        raise last

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                follow_redirects=False,
                trust_env=False,  # a proxy from the environment would undo the address check
                timeout=httpx.Timeout(self._timeout_s),
                # no kept connections: a pool is keyed by IP and port, not by host name, so a
                # connection verified for one host could carry a delivery to another on that IP
                limits=httpx.Limits(max_connections=100, max_keepalive_connections=0),
            )
        return self._client

    async def _record(self, delivery_id: str, webhook_id: str, attempt: int, outcome: Outcome) -> None:
        now = utcnow()
        values: dict[str, object] = {
            "attempts": attempt,
            "last_status_code": outcome.status_code,
            "last_error": outcome.error,
            "updated_at": now,
        }
        retry = not outcome.delivered and outcome.retryable and attempt < self._max_attempts
        if outcome.delivered:
            values.update(status=repo.DELIVERED, delivered_at=now)
        elif not retry:
            values.update(status=repo.FAILED)
        async with self._sessions() as session:
            if not await repo.record_attempt(session, delivery_id, attempt, values):
                await session.rollback()
                return  # a duplicate message recorded this attempt first
            if retry:
                delay_s = backoff_s(attempt, base_s=self._retry_base_s, max_s=self._retry_max_s)
                row = outbox_row(delivery_id, webhook_id, attempt + 1, delay_s=delay_s)
                await session.execute(insert(table(OutboxRow)), [row])
            await session.commit()
        if retry:
            self._wake_relay()
        log.info(
            "webhook delivery %s attempt %d: %s",
            delivery_id,
            attempt,
            "delivered" if outcome.delivered else f"{outcome.error} ({'retrying' if retry else 'given up'})",
        )
