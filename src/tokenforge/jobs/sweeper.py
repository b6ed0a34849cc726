"""The sweeper: no unfinished job is left without a message that will advance it.

A job normally always has a way forward: a leased step running, or an outbox row (sent or
due later) that will deliver its next step. Crashes break that — an in-process queue dies
with its messages, a delayed retry is lost with its process, a worker is killed holding a
lease. The sweeper, a periodic task of the worker role, finds jobs that

* are not final,
* are not leased (no lease, an expired one, or one held by a process of this host that no
  longer exists — its lease is released first), and
* have no pending message: no unsent outbox row, and (unless the queue is known to be
  empty) no row sent within ``stale_s``, and have not changed for ``stale_s``,

and re-enqueues each through the outbox, in the order their nonces were allocated (a lower
nonce must be broadcast first). A job found ``submitted`` is moved to ``submitting`` so its
recorded transaction is broadcast again (a mempool may have lost it); that is idempotent.
It also reports outbox rows that stay unsent past ``stale_s`` (a relay that is down) and
purges rows sent long ago.

Dead letters: the database is the record of what is dead. A message the broker itself
dead-lettered (its delivery limit was exceeded: e.g. a step that crashes its process every
time) leaves its job unfinished in the database, and the pass above would re-enqueue it
forever. So each pass first takes the dead letters of ``dead_letter_topics`` from the
queue; every job they name that is not final becomes ``dead`` with the code
``delivery_limit`` and an event saying after how many deliveries the broker gave up, and
each dead letter is acked (removed from the broker) only after that commit. A crash in
between leaves the dead letter in the broker, and the next pass takes it again: marking a
job dead twice is a no-op. ``tokenforge jobs retry`` re-queues such a job once the cause is
fixed (every step is idempotent, so a transaction it had already sent is found, not
doubled).

Safe with several workers on one database: the candidate rows are locked with ``FOR UPDATE
SKIP LOCKED`` on PostgreSQL (SQLite has one writer at a time) and touched (``updated_at``)
in the same transaction, so a second sweeper skips them. Start-up recovery is the same
sweep with ``queue_empty=True`` (the in-process queue of a new process holds nothing).
A database outage makes a pass fail with ``DB_UNAVAILABLE``; the next pass comes after a
backoff and nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import ColumnElement, delete, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tokenforge.domain.jobs import FINAL, JobStatus, TokenStatus
from tokenforge.errors import ErrorCode, TokenForgeError
from tokenforge.jobs.handlers.launch import outbox_row
from tokenforge.jobs.policy import RetryPolicy, as_tokenforge_error, outage_delay_s
from tokenforge.jobs.ports import Delivery, JobQueue
from tokenforge.observability.metrics import OUTBOX_STUCK
from tokenforge.observability.metrics import SWEEPER_REENQUEUED as REENQUEUED
from tokenforge.store.db import dialect_name, rows_matched, utcnow
from tokenforge.store.feed import ChangeFeed
from tokenforge.store.group_commit import Changes, RowValues, write_changes
from tokenforge.store.models import JobRow, OutboxRow

log = logging.getLogger(__name__)

_FINAL_VALUES = [s.value for s in FINAL]
#: Sent outbox rows older than this are deleted.
SENT_ROWS_KEPT = timedelta(days=1)


def lease_owner_id() -> str:
    """The lease owner name of a new worker: ``host:pid:random`` (the sweeper reads host and pid)."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"


def _owner_is_dead(owner: str, host: str) -> bool:
    """True when ``owner`` names a process of this host that no longer runs."""
    parts = owner.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # it exists, it is someone else's
    return False


@dataclass(frozen=True, slots=True)
class SweepReport:
    reenqueued: int = 0
    leases_released: int = 0
    outbox_stuck: int = 0
    outbox_purged: int = 0
    #: jobs moved to dead because the broker dead-lettered their message
    dead_lettered: int = 0


class Sweeper:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        policy: RetryPolicy,
        interval_s: float,
        stale_s: float,
        wake_relay: Callable[[], None],
        batch: int = 500,
        feed: ChangeFeed | None = None,
        queue: JobQueue | None = None,
        dead_letter_topics: list[str] | None = None,
    ) -> None:
        """``queue`` and ``dead_letter_topics`` (``launch_topic(chain)`` of every configured
        chain): where the broker's dead letters are reconciled from; without them, they are not."""
        self._sessions = sessions
        self._feed = feed or ChangeFeed()
        self._policy = policy
        self._interval_s = interval_s
        self._stale_s = stale_s
        self._wake_relay = wake_relay
        self._batch = batch
        self._host = socket.gethostname()
        self._queue = queue
        self._dead_letter_topics = list(dead_letter_topics or ())

    async def sweep(self, *, queue_empty: bool = False) -> SweepReport:
        """One pass. ``queue_empty``: no message sent earlier can still be delivered (a new
        in-process queue), so only unsent outbox rows count as pending and every unleased
        unfinished job without one is re-enqueued at once."""
        try:
            dead_lettered = await self.reconcile_dead_letters()
        except TokenForgeError as err:  # the broker (or database) is away: sweep the rest anyway
            log.warning("dead letters not reconciled this pass: %s", err)
            dead_lettered = 0
        released = await self._release_dead_leases()
        if queue_empty:
            await self._resubmit_unleased()
        total = 0
        while True:
            count = await self._reenqueue_batch(queue_empty=queue_empty)
            total += count
            if count < self._batch:
                break
        stuck, purged = await self._outbox_housekeeping()
        if total:
            REENQUEUED.inc(total)
            log.info("sweeper re-enqueued %d unfinished jobs", total)
            self._wake_relay()
        return SweepReport(total, released, stuck, purged, dead_lettered)

    async def reconcile_dead_letters(self) -> int:
        """Take the broker's dead letters; a job they name becomes dead if nothing of it can
        still land: it is queued, holds no signed transaction and no live lease. Any other
        job stays as it is (its transaction may still be mined; the re-enqueue pass picks it
        up when it goes stale). Returns how many jobs were moved to dead."""
        if self._queue is None:
            return 0
        moved = 0
        for topic in self._dead_letter_topics:
            while True:
                letters = await self._queue.take_dead_letters(topic, limit=self._batch)
                if not letters:
                    break
                try:
                    moved += await self._bury(letters)
                except BaseException:  # not recorded (e.g. the database is down): keep them in the broker
                    for letter in letters:
                        await letter.nack()
                    raise
                for letter in letters:  # only after the commit
                    await letter.ack()
                if len(letters) < self._batch:
                    break
        if moved:
            log.warning("%d jobs are dead: the broker dead-lettered their messages (delivery limit)", moved)
        return moved

    async def _bury(self, letters: list[Delivery]) -> int:
        deliveries: dict[str, int] = {}
        for letter in letters:
            job_id = letter.body.get("job_id") if isinstance(letter.body, dict) else None
            if isinstance(job_id, str):
                deliveries[job_id] = max(deliveries.get(job_id, 0), letter.delivery_count)
        if not deliveries:
            return 0
        now = utcnow()
        async with self._sessions() as s:
            stmt = select(JobRow).where(
                JobRow.id.in_(list(deliveries)),
                JobRow.status == JobStatus.QUEUED.value,
                JobRow.tx_id.is_(None),
                or_(JobRow.lease_until.is_(None), JobRow.lease_until < time.time()),
            )
            if dialect_name(s) == "postgresql":  # rows a live worker is writing are not buried
                stmt = stmt.with_for_update(skip_locked=True, of=JobRow)
            jobs = list((await s.execute(stmt)).scalars())
            kept = len(deliveries) - len(jobs)
            if kept:
                log.info("%d dead-lettered messages name jobs that are final or may still land: left as they are", kept)
            changes = Changes()
            for job in jobs:
                count = deliveries[job.id]
                message = f"the broker gave up on this job's message after {count} deliveries (its delivery limit)"
                changes.jobs.append(
                    {
                        "id": job.id,
                        "status": JobStatus.DEAD.value,
                        "error_code": ErrorCode.DELIVERY_LIMIT.value,
                        "error_message": message,
                        "finished_at": now,
                        "lease_owner": None,
                        "lease_until": None,
                        "updated_at": now,
                    }
                )
                changes.tokens.append({"id": job.token_id, "status": TokenStatus.FAILED.value, "updated_at": now})
                changes.events.append(
                    {
                        "job_id": job.id,
                        "status": JobStatus.DEAD.value,
                        "message": message,
                        "data": {"code": ErrorCode.DELIVERY_LIMIT.value, "message": message, "deliveries": count},
                        "created_at": now,
                    }
                )
                changes.transitions.append((job.id, job.chain, JobStatus.DEAD.value))
            await write_changes(s, [changes])
            await s.commit()
        self._feed.committed([changes])
        return len(jobs)

    async def _release_dead_leases(self) -> int:
        async with self._sessions() as s:
            owners = (
                (
                    await s.execute(
                        select(JobRow.lease_owner)
                        .distinct()
                        .where(JobRow.lease_owner.like(f"{self._host}:%"), JobRow.status.not_in(_FINAL_VALUES))
                    )
                )
                .scalars()
                .all()
            )
            dead = [o for o in owners if o and _owner_is_dead(o, self._host)]
            if not dead:
                await s.commit()
                return 0
            stmt = select(JobRow).where(JobRow.lease_owner.in_(dead), JobRow.status.not_in(_FINAL_VALUES))
            if dialect_name(s) == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True, of=JobRow)
            jobs = list((await s.execute(stmt)).scalars())
            # their messages may have been redelivered to a worker that found the lease taken
            # and let them go: each job gets a fresh message now, not after sweep_stale_s
            now = utcnow()
            message = "its worker exited; re-enqueued by the sweeper"
            changes = Changes(
                jobs=[{"id": j.id, "lease_owner": None, "lease_until": None, "updated_at": now} for j in jobs],
                events=[
                    {"job_id": j.id, "status": j.status, "message": message, "data": {}, "created_at": now}
                    for j in jobs
                ],
                outbox=[outbox_row(j.id, j.chain) for j in jobs],
            )
            await write_changes(s, [changes])
            await s.commit()
        self._feed.committed([changes])
        if jobs:
            self._wake_relay()
        log.info("released and re-enqueued %d jobs held by %d exited processes", len(jobs), len(dead))
        return len(jobs)

    async def _resubmit_unleased(self) -> None:
        """After a restart: every unleased ``submitted`` job broadcasts its recorded
        transaction again at its next step (the mempool that had it may be gone)."""
        now = utcnow()
        async with self._sessions() as s:
            stmt = select(JobRow.id).where(
                JobRow.status == JobStatus.SUBMITTED.value,
                or_(JobRow.lease_until.is_(None), JobRow.lease_until < time.time()),
            )
            if dialect_name(s) == "postgresql":  # rows a live worker is writing are skipped, the rest held
                stmt = stmt.with_for_update(skip_locked=True)
            ids = (await s.execute(stmt)).scalars().all()
            changes = Changes(
                jobs=[
                    {"id": i, "status": JobStatus.SUBMITTING.value, "confirm_checks": 0, "updated_at": now} for i in ids
                ],
                events=[
                    {
                        "job_id": i,
                        "status": JobStatus.SUBMITTING.value,
                        "data": {},
                        "created_at": now,
                        "message": "resumed after restart; broadcasting the recorded transaction again",
                    }
                    for i in ids
                ],
            )
            await write_changes(s, [changes])
            await s.commit()
        self._feed.committed([changes])

    async def _reenqueue_batch(self, *, queue_empty: bool) -> int:
        now_s = time.time()
        now = utcnow()
        pending: list[ColumnElement[bool]] = [OutboxRow.sent_at.is_(None)]
        if not queue_empty:
            pending.append(OutboxRow.sent_at > now_s - self._stale_s)
        has_pending_message = exists().where(OutboxRow.job_id == JobRow.id, or_(*pending))
        stmt = (
            select(JobRow)
            .where(
                JobRow.status.not_in(_FINAL_VALUES),
                or_(JobRow.lease_until.is_(None), JobRow.lease_until < now_s),
                ~has_pending_message,
            )
            .order_by(JobRow.nonce.is_(None), JobRow.nonce, JobRow.created_at)
            .limit(self._batch)
        )
        if not queue_empty:
            stmt = stmt.where(JobRow.updated_at < now - timedelta(seconds=self._stale_s))
        async with self._sessions() as s:
            if dialect_name(s) == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True, of=JobRow)
            jobs = list((await s.execute(stmt)).scalars())
            changes = Changes()
            for job in jobs:
                values: RowValues = {"id": job.id, "updated_at": now}
                message = "re-enqueued by the sweeper (no worker held it and no message was pending)"
                status = job.status
                if job.status == JobStatus.SUBMITTED.value:
                    status = JobStatus.SUBMITTING.value
                    values.update(status=status, confirm_checks=0)
                    message = "resumed by the sweeper; broadcasting the recorded transaction again"
                changes.jobs.append(values)
                changes.events.append(
                    {"job_id": job.id, "status": status, "message": message, "data": {}, "created_at": now}
                )
                changes.outbox.append(outbox_row(job.id, job.chain))
            await write_changes(s, [changes])
            await s.commit()
        self._feed.committed([changes])
        return len(jobs)

    async def _outbox_housekeeping(self) -> tuple[int, int]:
        now_s = time.time()
        async with self._sessions() as s:
            stuck = (
                await s.execute(
                    select(func.count())
                    .select_from(OutboxRow)
                    .where(OutboxRow.sent_at.is_(None), OutboxRow.available_at < now_s - self._stale_s)
                )
            ).scalar_one()
            purged = await s.execute(
                delete(OutboxRow).where(OutboxRow.sent_at < now_s - SENT_ROWS_KEPT.total_seconds())
            )
            await s.commit()
        OUTBOX_STUCK.set(stuck)
        if stuck:
            log.warning(
                "%d outbox rows have been due for over %.0f s and are unsent: is a relay running?", stuck, self._stale_s
            )
            self._wake_relay()
        return int(stuck), rows_matched(purged)

    async def run(self) -> None:
        """Sweep every ``interval_s``; after a failed pass, wait with the outage backoff."""
        failures = 0
        while True:
            try:
                await self.sweep()
                failures = 0
                delay_s = self._interval_s
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the sweeper must outlive any fault (logged below)
                failures += 1
                err: TokenForgeError = as_tokenforge_error(exc)
                if failures == 1:
                    log.warning(
                        "sweep failed (%s); retrying with backoff",
                        err.code,
                        exc_info=not isinstance(exc, TokenForgeError),
                    )
                delay_s = max(self._interval_s / 10, outage_delay_s(failures, self._policy))
            await asyncio.sleep(delay_s)
