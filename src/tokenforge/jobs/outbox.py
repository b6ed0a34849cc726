"""The relay: publishes committed outbox rows to the queue, then marks them sent.

At-least-once: a crash between publish and mark-sent re-publishes the row; consumers are
idempotent (job state in the DB decides what a delivery does).

When it looks: at once when woken (:meth:`OutboxRelay.notify`: a writer of this process,
or PostgreSQL's ``NOTIFY`` from any process through :mod:`tokenforge.store.notify`), when
the earliest delayed row falls due, and otherwise every ``poll_s`` — or every
``listen_poll_s`` while notifications flow (:meth:`OutboxRelay.set_listening`), since the
poll is then only a fallback.

Several relays may run on one PostgreSQL database: each claims its batch with ``FOR
UPDATE SKIP LOCKED``, so a row is published by one of them. A relay that finds no row it
can claim while rows are due (another relay holds them) waits for the next wake-up or poll
instead of looking again at once.
"""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tokenforge.errors import TokenForgeError
from tokenforge.jobs.policy import RetryPolicy, as_tokenforge_error, outage_delay_s
from tokenforge.jobs.ports import JobQueue
from tokenforge.observability.tracing import publish_span
from tokenforge.store.repositories import outbox as outbox_repo

log = logging.getLogger(__name__)


class OutboxRelay:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        queue: JobQueue,
        *,
        poll_s: float,
        listen_poll_s: float | None = None,
        batch: int = 500,
        policy: RetryPolicy | None = None,
    ) -> None:
        """``poll_s``: how often to look without wake-ups; ``listen_poll_s`` (default
        ``poll_s``): how often while notifications flow."""
        self._policy = policy or RetryPolicy()
        self._sessions = sessions
        self._queue = queue
        self._poll_s = poll_s
        self._listen_poll_s = poll_s if listen_poll_s is None else listen_poll_s
        self._listening = False
        self._batch = batch
        self._wake = asyncio.Event()
        self._stopping = False
        self.published = 0

    def notify(self) -> None:
        """Something was committed to the outbox: look now instead of at the next poll."""
        self._wake.set()

    def set_listening(self, listening: bool) -> None:
        """Whether wake-ups from other processes arrive (a ``LISTEN`` connection is up)."""
        self._listening = listening
        if not listening:
            self._wake.set()  # return to the short poll now, not after the long one

    @property
    def poll_s(self) -> float:
        """The current fallback interval."""
        return self._listen_poll_s if self._listening else self._poll_s

    def stop(self) -> None:
        """Ask :meth:`run` to return after the batch it is publishing (a graceful stop)."""
        self._stopping = True
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
                        with publish_span(row.topic, row.headers) as headers:
                            await self._queue.publish(
                                row.topic, row.payload, message_id=row.message_id, headers=headers
                            )
                        sent.append(row.id)
                finally:
                    await outbox_repo.mark_sent(session, sent, now_s=time.time())
                    await session.commit()
                total += len(sent)
                self.published += len(sent)
                if len(rows) < self._batch or self._stopping:
                    return total

    async def _sleep_s(self, published: int) -> float:
        async with self._sessions() as session:
            next_at = await outbox_repo.next_available_at(session)
        poll_s = self.poll_s
        if next_at is None:
            return poll_s
        due_in_s = next_at - time.time()
        if due_in_s <= 0 and not published:
            return poll_s  # due rows this relay could not claim: another relay is publishing them
        return max(0.0, min(poll_s, due_in_s))

    async def run(self) -> None:
        """Relay until cancelled or :meth:`stop`. A failed pass (the database or the broker
        is down) is retried with a growing backoff, logged once per outage, never in a
        tight loop."""
        failures = 0
        while not self._stopping:
            self._wake.clear()
            try:
                published = await self.relay_once()
                delay = await self._sleep_s(published)
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
                delay = max(self.poll_s, outage_delay_s(failures, self._policy))
                self._wake.clear()  # a wake-up during an outage must not skip the backoff
            if delay > 0 and not self._stopping:
                # asyncio.timeout, not wait_for: Python 3.11's wait_for loses a cancellation
                # that arrives together with the wake-up, and the relay would never stop
                try:
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
                except TimeoutError:
                    pass
