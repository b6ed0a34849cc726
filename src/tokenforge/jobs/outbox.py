"""The relay: publishes committed outbox rows to the queue, then marks them sent.

At-least-once: a crash between publish and mark-sent re-publishes the row; consumers are
idempotent (job state in the DB decides what a delivery does).
"""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tokenforge.jobs.ports import JobQueue
from tokenforge.store.repositories import outbox as outbox_repo

log = logging.getLogger(__name__)


class OutboxRelay:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], queue: JobQueue, *, poll_s: float, batch: int = 500
    ) -> None:
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
                        await self._queue.publish(row.topic, row.payload, message_id=row.message_id)
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
        while True:
            self._wake.clear()
            try:
                await self.relay_once()
                delay = await self._sleep_s()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay pass failed; retrying")
                delay = self._poll_s
            if delay > 0:
                try:
                    await asyncio.wait_for(self._wake.wait(), delay)
                except TimeoutError:
                    pass
