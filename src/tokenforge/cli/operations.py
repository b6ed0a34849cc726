"""Operator actions that work directly on the database (``tokenforge jobs ...``).

They never migrate: a database whose schema is not the newest is refused with the message
of :func:`tokenforge.store.migrate.require_head` (run ``tokenforge migrate``). The logic
itself is :mod:`tokenforge.services.operations`, shared with the operator API. A job
re-queued here is published by whichever relay runs against the same database.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tokenforge.cache import install_cache_invalidation, open_cache
from tokenforge.config import Settings
from tokenforge.domain.jobs import JobStatus
from tokenforge.errors import ValidationFailed
from tokenforge.services import operations
from tokenforge.store.db import make_engine, make_sessionmaker
from tokenforge.store.feed import ChangeFeed
from tokenforge.store.migrate import require_head
from tokenforge.store.models import JobRow
from tokenforge.store.repositories import jobs as jobs_repo


@asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on the configured database, which must be migrated already."""
    engine = make_engine(settings.resolved_database_url)
    try:
        await require_head(engine)
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()


@asynccontextmanager
async def shared_cache_feed(settings: Settings) -> AsyncIterator[ChangeFeed]:
    """A change feed that drops the API's cache entries of what an operator action changed
    (a shared cache only: a ``memory://`` cache lives in the API process, out of reach)."""
    feed = ChangeFeed()
    url = settings.cache_url if settings.cache_url.startswith("redis") else "none://"
    cache = open_cache(url)
    install_cache_invalidation(feed, cache)
    try:
        yield feed
    finally:
        await cache.close()  # sends the invalidations (up to 1 s)


async def list_jobs(settings: Settings, status: str, limit: int) -> list[JobRow]:
    """The newest ``limit`` jobs in ``status``."""
    try:
        wanted = JobStatus(status)
    except ValueError:
        raise ValidationFailed("status", f"must be one of {', '.join(JobStatus)}") from None
    async with database(settings) as sessions, sessions() as s:
        return await jobs_repo.list_by_status(s, wanted, limit)


async def dead_jobs(settings: Settings, limit: int) -> tuple[list[JobRow], int]:
    """The ``limit`` most recently dead jobs, and how many jobs are dead in all."""
    async with database(settings) as sessions:
        async with sessions() as s:
            page = await operations.dead_page(s, limit=limit)
        return page.jobs, await operations.count_dead(sessions)


async def retry_job(settings: Settings, job_id: str) -> JobRow:
    """dead → queued with a fresh attempt budget (see :func:`operations.retry_job`)."""
    async with database(settings) as sessions, shared_cache_feed(settings) as feed:
        return await operations.retry_job(sessions, job_id, actor=cli_actor(), feed=feed)


async def retry_all(
    settings: Settings, *, on_total: Callable[[int], None], progress: Callable[[int], None], batch: int = 200
) -> int:
    """Re-queue every dead job in batches; ``on_total(n)`` first, then ``progress(k)`` per batch."""
    async with database(settings) as sessions, shared_cache_feed(settings) as feed:
        on_total(await operations.count_dead(sessions))
        return await operations.retry_all(sessions, actor=cli_actor(), batch=batch, feed=feed, progress=progress)


def cli_actor() -> str:
    """How the audit log names an operator working on this host's database directly."""
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        user = str(os.getuid())
    return f"cli:{user}@{socket.gethostname()}"
