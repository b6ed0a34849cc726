"""SQL for the transactional outbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tokenforge.store.db import dialect_name
from tokenforge.store.models import OutboxRow


def add(
    session: AsyncSession,
    *,
    topic: str,
    message_id: str,
    payload: dict[str, Any],
    available_at_s: float,
    now: datetime,
    job_id: str | None = None,
) -> None:
    """Stage a message in the caller's transaction; the relay publishes it after commit."""
    session.add(
        OutboxRow(
            topic=topic,
            message_id=message_id,
            payload=payload,
            job_id=job_id,
            available_at=available_at_s,
            created_at=now,
        )
    )


async def due(session: AsyncSession, *, now_s: float, limit: int) -> list[OutboxRow]:
    stmt = (
        select(OutboxRow)
        .where(OutboxRow.sent_at.is_(None), OutboxRow.available_at <= now_s)
        .order_by(OutboxRow.available_at, OutboxRow.id)
        .limit(limit)
    )
    if dialect_name(session) == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return list((await session.execute(stmt)).scalars())


async def mark_sent(session: AsyncSession, ids: list[int], *, now_s: float) -> None:
    if ids:
        await session.execute(update(OutboxRow).where(OutboxRow.id.in_(ids)).values(sent_at=now_s))


async def next_available_at(session: AsyncSession) -> float | None:
    stmt = select(func.min(OutboxRow.available_at)).where(OutboxRow.sent_at.is_(None))
    return (await session.execute(stmt)).scalar_one_or_none()


async def pending_count(session: AsyncSession) -> int:
    stmt = select(func.count()).select_from(OutboxRow).where(OutboxRow.sent_at.is_(None))
    return (await session.execute(stmt)).scalar_one()


async def backlog(session: AsyncSession, *, now_s: float) -> tuple[int, float | None]:
    """Unsent rows due at ``now_s``: how many, and the oldest one's ``available_at``."""
    stmt = select(func.count(), func.min(OutboxRow.available_at)).where(
        OutboxRow.sent_at.is_(None), OutboxRow.available_at <= now_s
    )
    count, oldest = (await session.execute(stmt)).one()
    return int(count), oldest
