"""The worker role: consume launch messages, advance jobs, ack after the DB commit.

Cross-cutting concerns (timing, counters, logging context) live in :func:`_instrumented`,
not in the step functions.
"""

from __future__ import annotations

import logging
import time

from prometheus_client import Counter, Histogram
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tokenforge.domain.jobs import FINAL, JobStatus
from tokenforge.jobs.handlers.launch import TOPIC, LaunchHandler, launch_message
from tokenforge.jobs.ports import Delivery, JobQueue, Subscription
from tokenforge.store.db import utcnow
from tokenforge.store.models import JobRow
from tokenforge.store.repositories import jobs as jobs_repo

log = logging.getLogger(__name__)

STEPS = Counter("tokenforge_job_steps_total", "Job steps handled", ["outcome"])
STEP_SECONDS = Histogram(
    "tokenforge_job_step_seconds", "Time to handle one job step", buckets=(0.001, 0.005, 0.02, 0.05, 0.1, 0.5, 1, 5, 30)
)


class Worker:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        queue: JobQueue,
        handler: LaunchHandler,
        *,
        concurrency: int,
    ) -> None:
        self._sessions = sessions
        self._queue = queue
        self._handler = handler
        self._concurrency = concurrency
        self._subscription: Subscription | None = None

    async def _instrumented(self, delivery: Delivery) -> None:
        started = time.perf_counter()
        job_id = delivery.body.get("job_id") if isinstance(delivery.body, dict) else None
        if not isinstance(job_id, str):
            log.warning("dropping malformed message %s", delivery.message_id)
            STEPS.labels("malformed").inc()
            await delivery.nack(requeue=False)
            return
        try:
            await self._handler.handle(job_id)
        except Exception:
            STEPS.labels("error").inc()
            raise
        await delivery.ack()  # after the handler's commits
        STEPS.labels("ok").inc()
        STEP_SECONDS.observe(time.perf_counter() - started)

    async def start(self) -> None:
        self._subscription = await self._queue.consume(TOPIC, self._instrumented, prefetch=self._concurrency)

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.stop()
            self._subscription = None


async def recover(
    sessions: async_sessionmaker[AsyncSession], queue: JobQueue, *, clear_leases: bool
) -> int:
    """Re-enqueue every unfinished job (after a restart of the single-process default).

    With ``clear_leases`` the leases of the previous incarnation are dropped first; only do
    that when no other worker process can be running. Returns the number re-enqueued.
    """
    async with sessions() as s:
        if clear_leases:
            await s.execute(
                update(JobRow)
                .where(JobRow.status.not_in([x.value for x in FINAL]))
                .values(lease_owner=None, lease_until=None)
            )
            # A broadcast tx may have been lost with the old process (e.g. in a mempool):
            # send the recorded bytes again before waiting for them.
            for job in await jobs_repo.list_by_status(s, JobStatus.SUBMITTED, limit=1_000_000):
                jobs_repo.transition(
                    s, job, JobStatus.SUBMITTING, now=utcnow(),
                    message="resumed after restart; re-broadcasting the recorded transaction",
                )
        ids = await jobs_repo.unfinished_ids(s)
        await s.commit()
    for job_id in ids:
        message_id, body = launch_message(job_id)
        await queue.publish(TOPIC, body, message_id=message_id)
    if ids:
        log.info("re-enqueued %d unfinished jobs", len(ids))
    return len(ids)
