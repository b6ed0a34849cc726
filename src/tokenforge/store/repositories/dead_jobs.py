"""SQL for dead jobs: the dead-letter list operators read and re-queue from.

Dead jobs are listed most recently dead first, by ``(finished_at, id)``; a page ends at a
``(finished_at, id)`` pair that the next page starts after (keyset pagination: a job that
dies meanwhile does not shift the pages).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from tokenforge.domain.jobs import JobStatus
from tokenforge.store.db import dialect_name
from tokenforge.store.models import JobRow

#: Where a page of dead jobs ended: the last job's ``(finished_at, id)``.
PagePosition = tuple[datetime, str]


async def page(session: AsyncSession, *, limit: int, after: PagePosition | None = None) -> list[JobRow]:
    """Up to ``limit`` dead jobs, most recently dead first, after ``after``."""
    stmt = (
        select(JobRow)
        .where(JobRow.status == JobStatus.DEAD.value)
        .order_by(JobRow.finished_at.desc(), JobRow.id.desc())
        .limit(limit)
    )
    if after is not None:
        finished_at, job_id = after
        stmt = stmt.where(
            or_(JobRow.finished_at < finished_at, and_(JobRow.finished_at == finished_at, JobRow.id < job_id))
        )
    return list((await session.execute(stmt)).scalars())


async def count(session: AsyncSession) -> int:
    stmt = select(func.count()).select_from(JobRow).where(JobRow.status == JobStatus.DEAD.value)
    return int((await session.execute(stmt)).scalar_one())


async def lock_batch(session: AsyncSession, *, died_before: datetime, limit: int) -> list[JobRow]:
    """Up to ``limit`` jobs dead since before ``died_before``, locked for the caller's
    transaction (on PostgreSQL rows another transaction holds are skipped)."""
    stmt = (
        select(JobRow)
        .where(
            JobRow.status == JobStatus.DEAD.value,
            or_(JobRow.finished_at.is_(None), JobRow.finished_at <= died_before),
        )
        .order_by(JobRow.finished_at, JobRow.id)
        .limit(limit)
    )
    if dialect_name(session) == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return list((await session.execute(stmt)).scalars())
