"""SQL for idempotency keys (Stripe semantics, kept at least 24 h)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from tokenforge.store.db import rows_matched
from tokenforge.store.models import IdempotencyKeyRow


async def get(session: AsyncSession, *, scope: str, key: str, now: datetime) -> IdempotencyKeyRow | None:
    stmt = select(IdempotencyKeyRow).where(
        IdempotencyKeyRow.scope == scope, IdempotencyKeyRow.key == key, IdempotencyKeyRow.expires_at > now
    )
    return (await session.execute(stmt)).scalar_one_or_none()


def add(
    session: AsyncSession,
    *,
    scope: str,
    key: str,
    request_hash: str,
    status: int,
    body: dict[str, Any],
    now: datetime,
    ttl: timedelta,
) -> None:
    session.add(
        IdempotencyKeyRow(
            scope=scope,
            key=key,
            request_hash=request_hash,
            response_status=status,
            response_body=body,
            created_at=now,
            expires_at=now + ttl,
        )
    )


async def purge_expired(session: AsyncSession, *, now: datetime) -> int:
    result = await session.execute(delete(IdempotencyKeyRow).where(IdempotencyKeyRow.expires_at <= now))
    return rows_matched(result)
