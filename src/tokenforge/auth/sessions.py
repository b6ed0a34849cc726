"""Sign-in sessions and :func:`authenticate`, which turns any bearer credential (an API
key or a session token) into a :class:`~tokenforge.auth.principal.Principal`.

Sessions are opaque bearer tokens (``tfs_…``) stored as SHA-256, not JWTs: a revoked
session is refused by the revoking process at once and by every other process within
:data:`CHECKED_FOR_S`, with no key to rotate and no deny-list to share
(docs/decisions/0013-sessions-api-keys-and-the-audit-chain.md). A session expires
``session_ttl_s`` after sign-in; a refresh rotates the token but keeps that end (only
signing again starts a new one).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tokenforge.audit import Action, AuditEvent
from tokenforge.audit import log as audit_log
from tokenforge.auth.credentials import API_KEY_PREFIX, SESSION_PREFIX, NewCredential, hash_token, new_credential, parse
from tokenforge.auth.principal import CredentialKind, Principal, Role
from tokenforge.auth.wallets import wallet_family
from tokenforge.errors import ErrorCode, Unauthenticated
from tokenforge.store.db import utcnow
from tokenforge.store.models import ApiKeyRow, AuthSessionRow
from tokenforge.store.repositories import credentials as repo

#: How long a process trusts a credential it checked before it looks it up again.
CHECKED_FOR_S = 2.0
#: ``last_used_at`` is written at most this often per credential (a write per request
#: would double the load of every authenticated read).
TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class IssuedSession:
    row: AuthSessionRow
    credential: NewCredential

    @property
    def token(self) -> str:
        return self.credential.token


async def issue(
    session: AsyncSession,
    *,
    wallet: str,
    family: str,
    role: Role,
    ttl_s: float,
    details: dict | None = None,
    expires_at: datetime | None = None,
) -> IssuedSession:
    """Add a session for a verified wallet to the caller's transaction, with its audit
    entries (``signin.succeeded`` and ``session.issued``; only the latter without a sign-in,
    when ``expires_at`` carries over an earlier session's end); the caller commits."""
    now = utcnow()
    signed_in = expires_at is None
    credential = new_credential(SESSION_PREFIX)
    row = AuthSessionRow(
        id=credential.id,
        token_hash=credential.token_hash,
        wallet=wallet,
        family=family,
        role=role.value,
        created_at=now,
        expires_at=expires_at or now + timedelta(seconds=ttl_s),
    )
    session.add(row)
    await session.flush()
    actor = f"session:{row.id}/{wallet}"
    issued = {"role": role.value, "expires_at": row.expires_at.isoformat()}
    if signed_in:
        events = [AuditEvent(actor, Action.SIGNIN_SUCCEEDED, wallet, {"family": family, **(details or {})})]
    else:
        events, issued = [], {**issued, **(details or {})}
    events.append(AuditEvent(actor, Action.SESSION_ISSUED, f"session:{row.id}", issued))
    await audit_log.append(session, events)
    return IssuedSession(row, credential)


async def revoke(sessions: async_sessionmaker[AsyncSession], session_id: str, *, actor: str) -> bool:
    """Revoke a session (sign-out); False if it was already revoked."""
    CHECKED.clear()
    async with sessions() as session:
        done = await repo.revoke_session(session, session_id, utcnow())
        if done:
            await audit_log.append(session, [AuditEvent(actor, Action.SESSION_REVOKED, f"session:{session_id}")])
        await session.commit()
    return done


def _check_live(what: str, revoked_at: datetime | None, expires_at: datetime | None, now: datetime) -> None:
    if revoked_at is not None:
        raise Unauthenticated(f"this {what} was revoked", code=ErrorCode.CREDENTIAL_REVOKED)
    if expires_at is not None and expires_at <= now:
        raise Unauthenticated(f"this {what} expired", code=ErrorCode.CREDENTIAL_EXPIRED)


class CheckedCredentials:
    """Principals of credentials this process checked in the last ``ttl_s``, by the
    credential's hash (never the credential), each with its own expiry.

    A database lookup costs ~1 ms of CPU on SQLite, as much as the rest of a launch
    request; within ``ttl_s`` a credential is trusted without one. A revocation made in this
    process clears the cache at once; one made in another process is refused here within
    ``ttl_s``."""

    def __init__(self, ttl_s: float = CHECKED_FOR_S, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[str, tuple[Principal, datetime | None, float]] = {}

    def get(self, digest: str, now: datetime) -> Principal | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        principal, expires_at, checked_at = entry
        if time.monotonic() - checked_at > self.ttl_s or (expires_at is not None and expires_at <= now):
            del self._entries[digest]
            return None
        return principal

    def put(self, digest: str, principal: Principal, expires_at: datetime | None) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[digest] = (principal, expires_at, time.monotonic())

    def clear(self) -> None:
        self._entries.clear()


#: The process's cache of checked credentials (cleared by every revocation here).
CHECKED = CheckedCredentials()


async def authenticate(sessions: async_sessionmaker[AsyncSession], token: str) -> Principal:
    """The principal a bearer credential stands for; :class:`Unauthenticated` naming why
    not (malformed or unknown, expired, revoked). A credential checked in the last
    :data:`CHECKED_FOR_S` is not looked up again (:class:`CheckedCredentials`)."""
    parsed = parse(token)
    if parsed is None:
        raise Unauthenticated(
            "the bearer credential is not a TokenForge API key or session", code=ErrorCode.CREDENTIAL_INVALID
        )
    prefix, _ = parsed
    digest = hash_token(token)
    now = utcnow()
    known = CHECKED.get(digest, now)
    if known is not None:
        return known
    async with sessions() as session:
        row: ApiKeyRow | AuthSessionRow | None
        if prefix == API_KEY_PREFIX:
            row = await repo.api_key_by_hash(session, digest)
            what, kind = "API key", CredentialKind.API_KEY
        else:
            row = await repo.session_by_hash(session, digest)
            what, kind = "session", CredentialKind.SESSION
        if row is None:
            raise Unauthenticated(f"unknown {what}", code=ErrorCode.CREDENTIAL_INVALID)
        _check_live(what, row.revoked_at, row.expires_at, now)
        if row.last_used_at is None or now - row.last_used_at >= TOUCH_EVERY:
            await repo.touch(session, type(row), row.id, now)
            await session.commit()
    wallet = row.wallet
    principal = Principal(
        kind=kind,
        credential_id=row.id,
        role=Role(row.role),
        wallet=wallet,
        family=(wallet_family(wallet).value if wallet else None),
    )
    CHECKED.put(digest, principal, row.expires_at)
    return principal
