"""API keys and sign-in sessions: rows looked up by the hash of their bearer token."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tokenforge.store.db import rows_matched
from tokenforge.store.models import ApiKeyRow, AuthSessionRow


async def api_key_by_hash(session: AsyncSession, token_hash: str) -> ApiKeyRow | None:
    return (await session.execute(select(ApiKeyRow).where(ApiKeyRow.secret_hash == token_hash))).scalar_one_or_none()


async def session_by_hash(session: AsyncSession, token_hash: str) -> AuthSessionRow | None:
    return (
        await session.execute(select(AuthSessionRow).where(AuthSessionRow.token_hash == token_hash))
    ).scalar_one_or_none()


async def list_api_keys(session: AsyncSession, *, include_revoked: bool = False) -> list[ApiKeyRow]:
    query = select(ApiKeyRow).order_by(ApiKeyRow.created_at)
    if not include_revoked:
        query = query.where(ApiKeyRow.revoked_at.is_(None))
    return list((await session.execute(query)).scalars().all())


async def revoke_api_key(session: AsyncSession, key_id: str, now: datetime) -> bool:
    """Revoke an active key; False when there is no such key or it was already revoked."""
    result = await session.execute(
        update(ApiKeyRow).where(ApiKeyRow.id == key_id, ApiKeyRow.revoked_at.is_(None)).values(revoked_at=now)
    )
    return rows_matched(result) == 1


async def revoke_session(session: AsyncSession, session_id: str, now: datetime) -> bool:
    result = await session.execute(
        update(AuthSessionRow)
        .where(AuthSessionRow.id == session_id, AuthSessionRow.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return rows_matched(result) == 1


async def touch(session: AsyncSession, model: type[ApiKeyRow] | type[AuthSessionRow], cid: str, now: datetime) -> None:
    await session.execute(update(model).where(model.id == cid).values(last_used_at=now))
