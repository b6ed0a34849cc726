"""Group commit: many small job-state writes from concurrent tasks share one transaction.

A worker advances dozens of jobs at once, and each step writes a few rows. Committing
each step alone costs a transaction plus several driver round trips per statement; here
every write waiting at the moment the previous transaction finishes goes into the next
one, and rows of the same shape go out as a single ``executemany``. A caller's ``await``
returns only after *its* rows are committed, so write-ahead guarantees (record the signed
transaction before broadcasting it) hold exactly as with one transaction per step.

Leases are taken the same way: every job waiting to be leased is leased and loaded with
one ``UPDATE … WHERE id IN (…)`` and one ``SELECT``.

If a batch fails, every caller in it gets the error (they are all retried by the job
machinery); nothing in it is committed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, bindparam, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tokenforge.audit import log as audit_log
from tokenforge.audit.actions import Action
from tokenforge.audit.log import AuditEvent
from tokenforge.domain.jobs import FINAL, JobStatus
from tokenforge.errors import ErrorCode, TransientError
from tokenforge.store.feed import ChangeFeed
from tokenforge.store.models import JobEventRow, JobRow, OutboxRow, TokenRow, table

_FINAL_VALUES = [s.value for s in FINAL]
#: Who the audit log says dead-lettered a job (the failure policy, in a worker or sweeper).
DEAD_LETTER_ACTOR = "system:failure-policy"
log = logging.getLogger(__name__)

#: One row's column values (column name → value).
RowValues = dict[str, Any]
#: A job taken with its token, or None when the lease could not be taken.
Leased = tuple[JobRow, TokenRow] | None


@dataclass
class Changes:
    """Rows one unit of work writes. ``new_*`` are inserts; ``jobs``/``tokens`` are updates
    keyed by ``id`` (column → value); events and outbox rows are inserts."""

    new_tokens: list[RowValues] = field(default_factory=list)
    new_jobs: list[RowValues] = field(default_factory=list)
    jobs: list[RowValues] = field(default_factory=list)
    tokens: list[RowValues] = field(default_factory=list)
    events: list[RowValues] = field(default_factory=list)
    outbox: list[RowValues] = field(default_factory=list)
    #: Audit log entries (:mod:`tokenforge.audit`), appended last in the transaction.
    audit: list[AuditEvent] = field(default_factory=list)
    #: Not written: (job id, chain, new status) of each job state change, for the
    #: :class:`~tokenforge.store.feed.ChangeFeed` subscribers (metrics) after commit.
    transitions: list[tuple[str, str, str]] = field(default_factory=list)

    def token_ids(self) -> set[str]:
        """Tokens these changes create or update (cache entries to drop)."""
        return {r["id"] for r in self.new_tokens} | {r["id"] for r in self.tokens}


@dataclass
class _Lease:
    job_id: str
    future: asyncio.Future[Leased]


@dataclass
class _Write:
    changes: Changes
    future: asyncio.Future[None]


class GroupCommitter:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        owner: str,
        lease_s: float,
        max_batch: int = 256,
        feed: ChangeFeed | None = None,
    ) -> None:
        self._sessions = sessions
        #: where committed changes are announced (:mod:`tokenforge.store.feed`)
        self.feed = feed or ChangeFeed()
        self._owner = owner
        self._lease_s = lease_s
        self._max_batch = max_batch
        self._pending: list[_Write | _Lease] = []
        self._drainer: asyncio.Task[None] | None = None

    async def commit(self, changes: Changes) -> None:
        """Write ``changes``; returns once they are committed (raises if the batch failed)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._enqueue(_Write(changes, future))
        await future

    async def lease(self, job_id: str) -> Leased:
        """Take the job's lease and load it with its token; None when it is final, unknown
        or leased by another live worker."""
        future: asyncio.Future[Leased] = asyncio.get_running_loop().create_future()
        self._enqueue(_Lease(job_id, future))
        return await future

    def _enqueue(self, item: _Write | _Lease) -> None:
        self._pending.append(item)
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain(), name="group-commit")

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
            try:
                results = await self._run(batch)
            except BaseException as exc:  # handed to every waiter (cancellation is re-raised)
                if not isinstance(exc, asyncio.CancelledError):
                    # an outage is reported once by whoever waits it out (worker, relay, API)
                    outage = isinstance(exc, TransientError) and exc.code is ErrorCode.DB_UNAVAILABLE
                    log.log(
                        logging.DEBUG if outage else logging.WARNING,
                        "group commit of %d items failed: %s",
                        len(batch),
                        exc if outage else type(exc).__name__,
                    )
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for item in batch:
                if item.future.done():
                    continue
                if isinstance(item, _Lease):
                    item.future.set_result(results.get(id(item)))
                else:
                    item.future.set_result(None)

    async def _run(self, batch: list[_Write | _Lease]) -> dict[int, Leased]:
        """Commit the batch; the result of each lease in it, by ``id()`` of the item."""
        writes = [i.changes for i in batch if isinstance(i, _Write)]
        leases = [i for i in batch if isinstance(i, _Lease)]
        results: dict[int, Leased] = {}
        async with self._sessions() as session:
            await write_changes(session, writes)
            if leases:
                now_s = time.time()
                until_s = now_s + self._lease_s
                ids = list({i.job_id for i in leases})
                await session.execute(
                    update(JobRow)
                    .where(JobRow.id.in_(ids), JobRow.status.not_in(_FINAL_VALUES))
                    # our own lease too: the handler's in-process guard already keeps one task
                    # per job, and a step that failed may not have released it
                    .where(
                        or_(JobRow.lease_until.is_(None), JobRow.lease_until < now_s, JobRow.lease_owner == self._owner)
                    )
                    .values(lease_owner=self._owner, lease_until=until_s)
                    .execution_options(synchronize_session=False)
                )
                rows = await session.execute(
                    select(JobRow, TokenRow)
                    .join(TokenRow, TokenRow.id == JobRow.token_id)
                    .where(JobRow.id.in_(ids), and_(JobRow.lease_owner == self._owner, JobRow.lease_until == until_s))
                )
                loaded = {job.id: (job, token) for job, token in rows.all()}
                for item in leases:
                    results[id(item)] = loaded.pop(item.job_id, None)  # a duplicate in one batch gets None
            await session.commit()
        self.feed.committed(writes)
        return results


async def write_changes(session: AsyncSession, writes: Iterable[Changes]) -> None:
    """Apply ``writes`` in the caller's transaction (inserts in foreign-key order)."""
    new_tokens: list[RowValues] = []
    new_jobs: list[RowValues] = []
    jobs: list[RowValues] = []
    tokens: list[RowValues] = []
    events: list[RowValues] = []
    outbox: list[RowValues] = []
    audit: list[AuditEvent] = []
    for c in writes:
        new_tokens += c.new_tokens
        new_jobs += c.new_jobs
        jobs += c.jobs
        tokens += c.tokens
        events += c.events
        outbox += c.outbox
        audit += c.audit
        audit += [  # every job that dies is in the audit log, whoever decided it
            AuditEvent(DEAD_LETTER_ACTOR, Action.JOB_DEAD_LETTERED, f"job:{job_id}", {"chain": chain})
            for job_id, chain, status in c.transitions
            if status == JobStatus.DEAD.value
        ]
    # Foreign keys: tokens before the jobs that name them, jobs before their events.
    if new_tokens:
        await session.execute(insert(table(TokenRow)), new_tokens)
    if new_jobs:
        await session.execute(insert(table(JobRow)), new_jobs)
    for target, rows in ((table(JobRow), jobs), (table(TokenRow), tokens)):
        by_shape: dict[tuple[str, ...], list[RowValues]] = {}
        for row in rows:
            by_shape.setdefault(tuple(sorted(k for k in row if k != "id")), []).append(row)
        for columns, group in by_shape.items():
            stmt = (
                update(target).where(target.c.id == bindparam("_id")).values({c: bindparam(f"_v_{c}") for c in columns})
            )
            await session.execute(stmt, [{"_id": r["id"], **{f"_v_{c}": r[c] for c in columns}} for r in group])
    if events:
        await session.execute(insert(table(JobEventRow)), events)
    if outbox:
        await session.execute(insert(table(OutboxRow)), outbox)
    if audit:  # last: on PostgreSQL the chain's lock is held from here to the commit
        await audit_log.append(session, audit)
