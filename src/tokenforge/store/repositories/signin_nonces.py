"""Server-issued sign-in nonces: added when a client asks for one, deleted when a signed
message uses it (single use) or when they expire."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from tokenforge.store.db import rows_matched
from tokenforge.store.models import SigninNonceRow


async def add(session: AsyncSession, nonce: str, created_at: datetime, expires_at: datetime) -> None:
    session.add(SigninNonceRow(nonce=nonce, created_at=created_at, expires_at=expires_at))
    await session.flush()


async def consume(session: AsyncSession, nonce: str, now: datetime) -> bool:
    """Delete ``nonce`` if it is still live; True when this call took it. Two transactions
    consuming the same nonce cannot both see one row deleted, so a message is used once."""
    result = await session.execute(
        delete(SigninNonceRow).where(SigninNonceRow.nonce == nonce, SigninNonceRow.expires_at > now)
    )
    return rows_matched(result) == 1


async def purge_expired(session: AsyncSession, now: datetime) -> int:
    """Delete every nonce that expired unused; returns how many."""
    result = await session.execute(delete(SigninNonceRow).where(SigninNonceRow.expires_at <= now))
    return rows_matched(result)
