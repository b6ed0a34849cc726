"""The worker role: consume launch messages, advance jobs, ack after the DB commit.

Cross-cutting concerns (timing, counters, what to do with a delivery whose step could not
be recorded at all) live in :meth:`Worker._instrumented`, not in the step functions. When
a step fails so that nothing can be written — the database is down while leasing or while
recording an error — the policy answers ``REQUEUE`` and the delivery comes back after a
backoff that grows while the outage lasts (never at once, and without using the delivery
limit); the sweeper covers a delivery lost with its process.
"""

from __future__ import annotations

import asyncio
import logging
import time

import structlog
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tokenforge.domain.jobs import FINAL
from tokenforge.errors import ErrorCode, TokenForgeError
from tokenforge.jobs.handlers.launch import LaunchHandler, launch_topic
from tokenforge.jobs.policy import RetryPolicy, as_tokenforge_error, decide
from tokenforge.jobs.ports import STOP_TIMEOUT_S, Delivery, JobQueue, Subscription
from tokenforge.observability.context import bind_headers
from tokenforge.observability.metrics import JOB_STEP_SECONDS as STEP_SECONDS
from tokenforge.observability.metrics import JOB_STEPS as STEPS
from tokenforge.observability.tracing import span
from tokenforge.store.models import JobRow

log = logging.getLogger(__name__)


class Worker:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        queue: JobQueue,
        handler: LaunchHandler,
        *,
        prefetch: dict[str, int],
        policy: RetryPolicy,
        owner: str,
    ) -> None:
        """``prefetch``: the chains this worker serves, each with the most of its launches
        handled at once."""
        self._sessions = sessions
        self._queue = queue
        self._handler = handler
        self._prefetch = dict(prefetch)
        self._policy = policy
        self._owner = owner
        self._subscriptions: list[Subscription] = []
        #: database failures in a row (process-wide: an outage is not one job's problem)
        self._outages = 0

    async def _instrumented(self, delivery: Delivery) -> None:
        started = time.perf_counter()
        job_id = delivery.body.get("job_id") if isinstance(delivery.body, dict) else None
        if not isinstance(job_id, str):
            log.warning("dropping malformed message %s", delivery.message_id)
            STEPS.labels("malformed").inc()
            await delivery.nack(requeue=False)
            return
        structlog.contextvars.clear_contextvars()  # each delivery runs in a task of its own
        bind_headers(delivery.headers, job_id=job_id)
        try:
            attributes = {"messaging.destination.name": delivery.topic, "tokenforge.job_id": job_id}
            parent = delivery.headers or {}  # the relay's publish span, if the message carries one
            with span(f"process {delivery.topic}", kind="consumer", parent=parent, attributes=attributes):
                await self._handler.handle(job_id)
        except Exception as exc:  # the step could not be recorded at all
            err = as_tokenforge_error(exc)
            self._outages += 1
            decision = decide(err, None, self._policy, outages=self._outages)
            STEPS.labels("requeued").inc()
            if self._outages == 1 or err.code is not ErrorCode.DB_UNAVAILABLE:  # an outage: once
                log.warning(
                    "job %s: %s; its message comes back in %.1f s",
                    job_id,
                    err,
                    decision.delay_s,
                    exc_info=not isinstance(exc, TokenForgeError),
                )
            await delivery.nack(requeue=True, delay_s=decision.delay_s)
            return
        self._outages = 0
        await delivery.ack()  # after the handler's commits
        STEPS.labels("ok").inc()
        STEP_SECONDS.observe(time.perf_counter() - started)

    async def start(self) -> None:
        for chain, prefetch in self._prefetch.items():
            self._subscriptions.append(
                await self._queue.consume(launch_topic(chain), self._instrumented, prefetch=prefetch)
            )

    async def stop(self, *, timeout_s: float | None = STOP_TIMEOUT_S) -> None:
        """Stop taking deliveries, wait up to ``timeout_s`` for running steps (the rest are
        cancelled and their deliveries handed back), then release this worker's leases so
        another worker (or the next start) can take its jobs at once."""
        if self._subscriptions:
            await asyncio.gather(*(sub.stop(timeout_s=timeout_s) for sub in self._subscriptions))
            self._subscriptions.clear()
            try:
                async with self._sessions() as s:
                    await s.execute(
                        update(JobRow)
                        .where(JobRow.lease_owner == self._owner, JobRow.status.not_in([x.value for x in FINAL]))
                        .values(lease_owner=None, lease_until=None)
                    )
                    await s.commit()
            except TokenForgeError as err:  # the leases expire on their own
                log.warning("could not release this worker's leases: %s", err)
