"""API keys: created by an operator (``tokenforge api-keys create`` or the API), shown
once, stored as a hash, scoped to a role and optionally a wallet, expiring and revocable.
Every issue and revocation is in the audit log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tokenforge.audit import Action, AuditEvent
from tokenforge.audit import log as audit_log
from tokenforge.auth.credentials import API_KEY_PREFIX, NewCredential, new_credential
from tokenforge.auth.principal import Role
from tokenforge.auth.sessions import CHECKED
from tokenforge.auth.wallets import normalise_wallet
from tokenforge.errors import NotFound, ValidationFailed
from tokenforge.store.db import utcnow
from tokenforge.store.models import ApiKeyRow
from tokenforge.store.repositories import credentials as repo


@dataclass(frozen=True, slots=True)
class IssuedKey:
    row: ApiKeyRow
    credential: NewCredential

    @property
    def token(self) -> str:
        """The key itself: print it once, never store or log it."""
        return self.credential.token


async def create(
    sessions: async_sessionmaker[AsyncSession],
    *,
    role: Role,
    actor: str,
    wallet: str | None = None,
    label: str = "",
    expires_at: datetime | None = None,
) -> IssuedKey:
    """Issue a key. A creator key must name the wallet it launches for."""
    now = utcnow()
    if role is Role.CREATOR and not wallet:
        raise ValidationFailed("wallet", "a creator key needs the wallet it launches for")
    if expires_at is not None and expires_at <= now:
        raise ValidationFailed("expires", "must be in the future")
    wallet = normalise_wallet(wallet, field="wallet")[0] if wallet else None
    credential = new_credential(API_KEY_PREFIX)
    row = ApiKeyRow(
        id=credential.id,
        prefix=credential.display,
        secret_hash=credential.token_hash,
        role=role.value,
        wallet=wallet,
        label=label,
        created_by=actor,
        created_at=now,
        expires_at=expires_at,
    )
    async with sessions() as session:
        session.add(row)
        await session.flush()
        details = {"role": role.value, "wallet": wallet, "label": label}
        details["expires_at"] = expires_at.isoformat() if expires_at else None
        await audit_log.append(session, [AuditEvent(actor, Action.API_KEY_ISSUED, f"api_key:{row.id}", details)])
        await session.commit()
    return IssuedKey(row, credential)


async def list_keys(session: AsyncSession, *, include_revoked: bool = False) -> list[ApiKeyRow]:
    return await repo.list_api_keys(session, include_revoked=include_revoked)


async def revoke(sessions: async_sessionmaker[AsyncSession], key_id: str, *, actor: str) -> None:
    """Revoke a key: this process refuses it at once, every other process within
    :data:`~tokenforge.auth.sessions.CHECKED_FOR_S`."""
    CHECKED.clear()
    async with sessions() as session:
        if not await repo.revoke_api_key(session, key_id, utcnow()):
            raise NotFound(f"no active API key {key_id[:32]}")
        await audit_log.append(session, [AuditEvent(actor, Action.API_KEY_REVOKED, f"api_key:{key_id}")])
        await session.commit()
