"""Operator actions that work directly on the database (dead letters, re-queue)."""

from __future__ import annotations

from tokenforge.config import Settings
from tokenforge.domain.jobs import JobStatus, TokenStatus
from tokenforge.errors import NotFound, ValidationFailed
from tokenforge.jobs.handlers.launch import enqueue_step
from tokenforge.store.db import make_engine, make_sessionmaker, utcnow
from tokenforge.store.migrate import upgrade_to_head
from tokenforge.store.models import JobRow
from tokenforge.store.repositories import jobs as jobs_repo
from tokenforge.store.repositories import tokens as tokens_repo


async def list_jobs(settings: Settings, status: str, limit: int) -> list[JobRow]:
    try:
        wanted = JobStatus(status)
    except ValueError:
        raise ValidationFailed("status", f"must be one of {', '.join(JobStatus)}") from None
    engine = make_engine(settings.resolved_database_url)
    try:
        await upgrade_to_head(engine)
        async with make_sessionmaker(engine)() as s:
            return await jobs_repo.list_by_status(s, wanted, limit)
    finally:
        await engine.dispose()


async def requeue_job(settings: Settings, job_id: str) -> None:
    """dead → queued with attempts reset; a running relay publishes it."""
    engine = make_engine(settings.resolved_database_url)
    try:
        await upgrade_to_head(engine)
        async with make_sessionmaker(engine)() as s:
            job = await jobs_repo.get(s, job_id, for_update=True)
            if job is None:
                raise NotFound(f"job {job_id} does not exist")
            now = utcnow()
            jobs_repo.transition(s, job, JobStatus.QUEUED, now=now, message="re-queued by an operator")
            job.attempts = 0
            job.finished_at = None
            job.error_code = job.error_message = None
            await tokens_repo.set_outcome(s, job.token_id, now=now, status=TokenStatus.PENDING)
            enqueue_step(s, job_id, job.chain)
            await s.commit()
    finally:
        await engine.dispose()
