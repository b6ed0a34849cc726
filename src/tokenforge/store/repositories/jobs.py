"""SQL for jobs and their event history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tokenforge.domain.jobs import FINAL, JobStatus, check_transition
from tokenforge.store.models import JobEventRow, JobRow


async def get(session: AsyncSession, job_id: str, *, for_update: bool = False) -> JobRow | None:
    stmt = select(JobRow).where(JobRow.id == job_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


def add_event(
    session: AsyncSession, job: JobRow, *, message: str, now: datetime, data: dict[str, Any] | None = None
) -> None:
    session.add(JobEventRow(job_id=job.id, status=job.status, message=message, data=data or {}, created_at=now))


def transition(
    session: AsyncSession,
    job: JobRow,
    new: JobStatus,
    *,
    now: datetime,
    message: str,
    data: dict[str, Any] | None = None,
) -> None:
    """Move ``job`` to ``new`` (refusing illegal moves) and record the event."""
    check_transition(JobStatus(job.status), new)
    job.status = new
    job.updated_at = now
    if new in FINAL:
        job.finished_at = now
        job.lease_owner = None
        job.lease_until = None
    add_event(session, job, message=message, now=now, data=data)


async def events_after(session: AsyncSession, job_id: str, after_id: int) -> list[JobEventRow]:
    stmt = select(JobEventRow).where(JobEventRow.job_id == job_id, JobEventRow.id > after_id).order_by(JobEventRow.id)
    return list((await session.execute(stmt)).scalars())


async def unfinished_ids(session: AsyncSession) -> list[str]:
    stmt = (
        select(JobRow.id)
        .where(JobRow.status.not_in([s.value for s in FINAL]))
        .order_by(JobRow.nonce.is_(None), JobRow.nonce, JobRow.created_at)
    )
    return list((await session.execute(stmt)).scalars())


async def list_by_status(session: AsyncSession, status: JobStatus, limit: int = 100) -> list[JobRow]:
    stmt = select(JobRow).where(JobRow.status == status).order_by(JobRow.created_at.desc()).limit(limit)
    return list((await session.execute(stmt)).scalars())
