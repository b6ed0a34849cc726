"""Operator actions on dead letters, shared by the CLI (``tokenforge jobs``) and the API
(``/v1/ops``).

The database is the record of what is dead: a job the failure policy gave up on, and a
job whose message the broker dead-lettered (the sweeper moves it to ``dead``, see
:mod:`tokenforge.jobs.sweeper`). Re-queueing a dead job moves it back to ``queued`` with a
fresh attempt budget, its token back to ``pending``, and stages the message that advances
it, all in one transaction; a running relay publishes it. Re-running a dead launch is safe:
every step is idempotent (the token address comes from the job id, a recorded transaction
is checked before anything is signed again).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tokenforge.audit import Action, AuditEvent
from tokenforge.domain.jobs import JobStatus, TokenStatus, could_be_id
from tokenforge.errors import Conflict, ErrorCode, NotFound, ValidationFailed
from tokenforge.jobs.handlers.launch import launch_topic, outbox_row
from tokenforge.jobs.ports import JobQueue
from tokenforge.store.db import utcnow
from tokenforge.store.feed import ChangeFeed
from tokenforge.store.group_commit import Changes, write_changes
from tokenforge.store.models import JobRow
from tokenforge.store.repositories import dead_jobs
from tokenforge.store.repositories import jobs as jobs_repo

RETRY_MESSAGE = "re-queued by an operator"


class JobNotDead(Conflict):
    """Only a dead job can be re-queued (the API answers 409 ``job-not-dead``)."""

    code = ErrorCode.JOB_NOT_DEAD


@dataclass(frozen=True, slots=True)
class DeadPage:
    jobs: list[JobRow]
    #: pass back as ``cursor`` for the next page; None on the last page
    next_cursor: str | None


def encode_cursor(position: dead_jobs.PagePosition) -> str:
    finished_at, job_id = position
    raw = f"{finished_at.isoformat()}|{job_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> dead_jobs.PagePosition:
    """The position a cursor of :func:`encode_cursor` names; ``ValidationFailed`` otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, _, job_id = raw.partition("|")
        finished_at = datetime.fromisoformat(when)
        if could_be_id(job_id) and finished_at.tzinfo is not None:
            return finished_at, job_id
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise ValidationFailed("query.cursor", "is not a cursor this API returned")


async def dead_page(session: AsyncSession, *, limit: int, cursor: str | None = None) -> DeadPage:
    """One page of dead jobs, most recently dead first."""
    after = decode_cursor(cursor) if cursor else None
    rows = await dead_jobs.page(session, limit=limit + 1, after=after)
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor((last.finished_at or last.updated_at, last.id))
    return DeadPage(rows[:limit], next_cursor)


#: Most dead letters :func:`broker_dead_letter_ids` reads per chain (the broker holds each
#: unsettled while it reads, so an unbounded scan would grow with the dead-letter queue).
BROKER_DEAD_LETTER_SCAN = 1000


async def broker_dead_letter_ids(
    queue: JobQueue, chains: set[str], *, limit: int = BROKER_DEAD_LETTER_SCAN
) -> set[str] | None:
    """Ids of the jobs whose launch messages the broker's dead-letter store holds now, read
    from the first ``limit`` dead letters of each chain. A chain with ``limit`` or more has
    messages this did not read, so a job missing from the set may still be there: then the
    answer is None ("unknown"), not a set that would say false for them."""
    ids: set[str] = set()
    for chain in sorted(chains):
        letters = await queue.dead_letters(launch_topic(chain), limit=limit)
        if len(letters) >= limit:
            return None
        for delivery in letters:
            job_id = delivery.body.get("job_id") if isinstance(delivery.body, dict) else None
            if isinstance(job_id, str):
                ids.add(job_id)
    return ids


def _retry_changes(jobs: list[JobRow], now: datetime, actor: str) -> Changes:
    changes = Changes()
    for job in jobs:
        changes.audit.append(AuditEvent(actor, Action.JOB_REQUEUED, f"job:{job.id}", {"chain": job.chain}))
        changes.jobs.append(
            {
                "id": job.id,
                "status": JobStatus.QUEUED.value,
                "attempts": 0,
                "confirm_checks": 0,
                "error_code": None,
                "error_message": None,
                "finished_at": None,
                "lease_owner": None,
                "lease_until": None,
                "updated_at": now,
            }
        )
        changes.tokens.append({"id": job.token_id, "status": TokenStatus.PENDING.value, "updated_at": now})
        changes.events.append(
            {
                "job_id": job.id,
                "status": JobStatus.QUEUED.value,
                "message": RETRY_MESSAGE,
                "data": {},
                "created_at": now,
            }
        )
        changes.outbox.append(outbox_row(job.id, job.chain))
        changes.transitions.append((job.id, job.chain, JobStatus.QUEUED.value))
    return changes


async def retry_job(
    sessions: async_sessionmaker[AsyncSession], job_id: str, *, actor: str, feed: ChangeFeed | None = None
) -> JobRow:
    """Re-queue one dead job for ``actor`` (in the audit log); returns it as it is now.

    ``NotFound`` for an unknown job, :class:`JobNotDead` for one that is not dead (a second
    retry of the same job is refused the same way: it is queued by then)."""
    async with sessions() as session:
        job = await jobs_repo.get(session, job_id, for_update=True) if could_be_id(job_id) else None
        if job is None:
            raise NotFound(f"job {job_id[:64]} does not exist")
        if job.status != JobStatus.DEAD.value:
            raise JobNotDead(f"job {job_id} is {job.status}, not dead: only a dead job can be re-queued")
        changes = _retry_changes([job], utcnow(), actor)
        await write_changes(session, [changes])
        await session.commit()
        await session.refresh(job)
    if feed is not None:
        feed.committed([changes])
    return job


async def count_dead(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return await dead_jobs.count(session)


async def retry_all(
    sessions: async_sessionmaker[AsyncSession],
    *,
    actor: str,
    batch: int = 200,
    feed: ChangeFeed | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Re-queue every job dead when this call starts, ``batch`` per transaction; returns
    how many. ``progress(n)`` is called after each batch with the number it re-queued. A job
    that dies again while this runs is not re-queued a second time."""
    started = utcnow()
    total = 0
    while True:
        async with sessions() as session:
            jobs = await dead_jobs.lock_batch(session, died_before=started, limit=batch)
            if not jobs:
                return total
            changes = _retry_changes(jobs, utcnow(), actor)
            await write_changes(session, [changes])
            await session.commit()
        if feed is not None:
            feed.committed([changes])
        total += len(jobs)
        if progress is not None:
            progress(len(jobs))
