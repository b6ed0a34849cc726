"""The relay: publishes committed outbox rows to the queue, then marks them sent.

At-least-once: a crash between publish and mark-sent re-publishes the row; consumers are
idempotent (job state in the DB decides what a delivery does).
"""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tokenforge.errors import TokenForgeError
from tokenforge.jobs.policy import RetryPolicy, as_tokenforge_error, outage_delay_s
from tokenforge.jobs.ports import JobQueue
from tokenforge.store.repositories import outbox as outbox_repo

log = logging.getLogger(__name__)


class OutboxRelay:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        queue: JobQueue,
        *,
        poll_s: float,
        batch: int = 500,
        policy: RetryPolicy | None = None,
    ) -> None:
        self._policy = policy or RetryPolicy()
        self._sessions = sessions
        self._queue = queue
        self._poll_s = poll_s
        self._batch = batch
        self._wake = asyncio.Event()
        self.published = 0

    def notify(self) -> None:
        """Something was committed to the outbox: look now instead of at the next poll."""
        self._wake.set()

    async def relay_once(self) -> int:
        """Publish every due row (in batches). Returns how many were published."""
        total = 0
        while True:
            async with self._sessions() as session:
                rows = await outbox_repo.due(session, now_s=time.time(), limit=self._batch)
                if not rows:
                    await session.commit()
                    return total
                sent: list[int] = []
                try:
                    for row in rows:
                        await self._queue.publish(
                            row.topic, row.payload, message_id=row.message_id, headers=row.headers
                        )
                        sent.append(row.id)
                finally:
                    await outbox_repo.mark_sent(session, sent, now_s=time.time())
                    await session.commit()
                total += len(sent)
                self.published += len(sent)
                if len(rows) < self._batch:
                    return total

    async def _sleep_s(self) -> float:
        async with self._sessions() as session:
            next_at = await outbox_repo.next_available_at(session)
        if next_at is None:
            return self._poll_s
        return max(0.0, min(self._poll_s, next_at - time.time()))

    async def run(self) -> None:
        """Relay until cancelled. A failed pass (the database or the broker is down) is
        retried with a growing backoff, logged once per outage, never in a tight loop."""
        failures = 0
        while True:
            self._wake.clear()
            try:
                await self.relay_once()
                delay = await self._sleep_s()
                if failures:
                    log.info("outbox relay resumed after %d failed passes", failures)
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the relay must outlive any fault (logged below)
                failures += 1
                err = as_tokenforge_error(exc)
                if failures == 1:
                    log.warning(
                        "outbox relay pass failed (%s); retrying with backoff",
                        err,
                        exc_info=not isinstance(exc, TokenForgeError),
                    )
                delay = max(self._poll_s, outage_delay_s(failures, self._policy))
                self._wake.clear()  # a wake-up during an outage must not skip the backoff
            if delay > 0:
                try:
                    await asyncio.wait_for(self._wake.wait(), delay)
                except TimeoutError:
                    pass
