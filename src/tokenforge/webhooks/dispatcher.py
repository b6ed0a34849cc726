"""The webhook dispatcher: job events → deliveries, each with the outbox row that sends it.

A pass runs in one transaction: it locks the cursor row ``webhooks.job_events`` (so the
dispatchers of several worker processes take turns, and each event is turned into
deliveries once), reads the job events after the cursor (id order, at most ``batch``) of
launches owned by an active webhook's owner, inserts one delivery per (webhook, event)
that the webhook wants, plus one outbox row per delivery, and moves the cursor. The
relay publishes the rows after the commit; :mod:`tokenforge.webhooks.delivery` sends them.

**Late commits.** PostgreSQL hands out event ids when rows are inserted, not when they
commit: a transaction holding event 100 may commit after event 105 was read and the
cursor moved past it. Each pass therefore also re-reads the :data:`LOOKBACK_EVENTS` ids
before the cursor and skips the (webhook, event) pairs that already have a delivery (the
unique constraint on them backs this up). An event committed more than that many ids
after a later one was seen would be missed: 10,000 ids is tens of seconds of job events
at the cluster's launch rates, while a job-event transaction waits at most for the audit
chain's lock and its own commit. SQLite commits one writer at a time, so its ids already
commit in order.

A webhook only receives events created after it was registered. Every job event is
delivered (the same history ``GET /v1/jobs/{id}/events`` streams: state changes, and
retries and errors within a state), filtered by the webhook's ``events`` (job statuses).
While no webhook is active, the dispatcher looks again at most every
:data:`IDLE_CHECK_S` (at once after :meth:`Dispatcher.webhooks_changed`) and the cursor
just follows the newest event, written at most every :data:`IDLE_WRITE_S`: an idle
dispatcher costs no transaction per launch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tokenforge.errors import TokenForgeError
from tokenforge.jobs.policy import RetryPolicy, as_tokenforge_error, outage_delay_s
from tokenforge.store.db import utcnow
from tokenforge.store.models import OutboxRow, WebhookRow, table
from tokenforge.store.repositories import webhooks as repo
from tokenforge.webhooks.messages import new_delivery_id, outbox_row, payload

log = logging.getLogger(__name__)

CURSOR = "webhooks.job_events"
#: Event ids re-read before the cursor on every pass (late commits, see the docstring).
LOOKBACK_EVENTS = 10_000
#: How often an idle dispatcher (no webhooks) looks for webhooks, and writes the cursor.
IDLE_CHECK_S = 1.0
IDLE_WRITE_S = 5.0


def _wants(hook: WebhookRow, status: str, event_at) -> bool:
    return (hook.events is None or status in hook.events) and event_at >= hook.created_at


def _owns(owner: str, creator: str, requested_by: str | None) -> bool:
    if ":" not in owner:
        return creator == owner
    return requested_by is not None and (requested_by == owner or requested_by.startswith(owner + "/"))


class Dispatcher:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        wake_relay: Callable[[], None],
        poll_s: float,
        batch: int = 1000,
        policy: RetryPolicy | None = None,
    ) -> None:
        self._sessions = sessions
        self._wake_relay = wake_relay
        self._poll_s = poll_s
        self._batch = batch
        self._policy = policy or RetryPolicy()
        self._wake = asyncio.Event()
        self._idle_written_s = 0.0
        self._idle_until_s = 0.0
        #: deliveries this process created (for tests and metrics)
        self.created = 0

    def notify(self, *_: object) -> None:
        """Job events were committed (a :class:`~tokenforge.store.feed.ChangeFeed` subscriber)."""
        self._wake.set()

    def on_committed(self, changes: list) -> None:
        if any(c.events for c in changes):
            self._wake.set()

    def webhooks_changed(self) -> None:
        """A webhook was registered in this process: stop idling now."""
        self._idle_until_s = 0.0
        self._wake.set()

    async def dispatch_once(self) -> tuple[int, bool]:
        """One pass; returns (deliveries created, whether more events wait past the batch)."""
        now = utcnow()
        if time.monotonic() < self._idle_until_s:
            return 0, False
        async with self._sessions() as session:
            hooks = await repo.active(session)
            if not hooks:
                self._idle_until_s = time.monotonic() + IDLE_CHECK_S
                if time.monotonic() - self._idle_written_s < IDLE_WRITE_S:
                    await session.rollback()
                    return 0, False
                newest = await repo.max_event_id(session)
                await repo.lock_cursor(session, CURSOR, initial=newest, now=now)
                await repo.set_cursor(session, CURSOR, newest, now=now)
                await session.commit()
                self._idle_written_s = time.monotonic()
                return 0, False
            newest = await repo.max_event_id(session)
            position = await repo.lock_cursor(session, CURSOR, initial=newest, now=now)
            newest = await repo.max_event_id(session)  # after the lock: what the last holder saw, at least
            up_to = min(newest, position + self._batch)
            owners = sorted({h.owner for h in hooks})
            rows = await repo.events_of_owners(
                session, after_id=max(0, position - LOOKBACK_EVENTS), up_to_id=up_to, owners=owners
            )
            seen = await repo.delivered_events(session, [h.id for h in hooks], [e.id for e, _, _ in rows])
            deliveries, outbox = [], []
            for event, job, token in rows:
                for hook in hooks:
                    if (hook.id, event.id) in seen or not _owns(hook.owner, token.creator, token.requested_by):
                        continue
                    if not _wants(hook, event.status, event.created_at):
                        continue
                    delivery_id = new_delivery_id()
                    deliveries.append(
                        {
                            "id": delivery_id,
                            "webhook_id": hook.id,
                            "job_id": job.id,
                            "event_id": event.id,
                            "payload": payload(event, job, token),
                            "status": repo.PENDING,
                            "attempts": 0,
                            "created_at": now,
                            "updated_at": now,
                        }
                    )
                    outbox.append(outbox_row(delivery_id, hook.id, 1))
            await repo.add_deliveries(session, deliveries)
            if outbox:
                await session.execute(insert(table(OutboxRow)), outbox)
            if up_to > position:
                await repo.set_cursor(session, CURSOR, up_to, now=now)
            await session.commit()
        if outbox:
            self.created += len(deliveries)
            self._wake_relay()
        return len(deliveries), up_to < newest

    async def requeue_pending(self) -> int:
        """Ask again for the next attempt of every pending delivery (after a restart on the
        in-process queue, whose messages died with the process); returns how many."""
        async with self._sessions() as session:
            rows = [outbox_row(d, w, attempts + 1) for d, w, attempts in await repo.pending(session)]
            if rows:
                await session.execute(insert(table(OutboxRow)), rows)
            await session.commit()
        if rows:
            self._wake_relay()
        return len(rows)

    async def run(self) -> None:
        """Dispatch until cancelled: at once when woken, else every ``poll_s``; a failed
        pass (the database is down) is retried with the outage backoff, logged once."""
        failures = 0
        while True:
            self._wake.clear()
            delay_s = self._poll_s
            try:
                _, more = await self.dispatch_once()
                failures = 0
                if more:
                    continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the dispatcher must outlive any fault (logged below)
                failures += 1
                err = as_tokenforge_error(exc)
                if failures == 1:
                    log.warning(
                        "webhook dispatch failed (%s); retrying with backoff",
                        err,
                        exc_info=not isinstance(exc, TokenForgeError),
                    )
                delay_s = max(self._poll_s, outage_delay_s(failures, self._policy))
                self._wake.clear()
            try:
                async with asyncio.timeout(delay_s):
                    await self._wake.wait()
            except TimeoutError:
                pass
