"""Accepting a launch: token, job, first event and outbox row in ONE transaction.

Idempotency keys follow Stripe: same key + same request → the first response again;
same key + a different request → :class:`IdempotencyMismatch`. Keys live ≥ 24 h and are
scoped to the caller (its principal subject): two callers never see each other's.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tokenforge.audit import Action, AuditEvent
from tokenforge.auth.principal import Principal
from tokenforge.domain.chains import CHAINS, Family
from tokenforge.domain.curve import PlatformTerms
from tokenforge.domain.jobs import JobStatus
from tokenforge.domain.tokens import LaunchParams
from tokenforge.errors import ErrorCode, Forbidden, PermanentError, ValidationFailed
from tokenforge.jobs.handlers.launch import outbox_row
from tokenforge.store.db import utcnow
from tokenforge.store.group_commit import Changes, GroupCommitter, write_changes
from tokenforge.store.repositories import idempotency as idem_repo
from tokenforge.store.repositories import tokens as tokens_repo

CREATE_SCOPE = "POST /v1/tokens"


class IdempotencyMismatch(PermanentError):
    code = ErrorCode.IDEMPOTENCY_KEY_REUSED


@dataclass(frozen=True, slots=True)
class Accepted:
    status: int
    body: dict
    replayed: bool


def request_fingerprint(payload: dict) -> str:
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _scope(owner: str) -> str:
    return f"{CREATE_SCOPE} {owner}"[:128]


async def _replay(session: AsyncSession, scope: str, key: str, fingerprint: str) -> Accepted | None:
    row = await idem_repo.get(session, scope=scope, key=key, now=utcnow())
    if row is None:
        return None
    if row.request_hash != fingerprint:
        raise IdempotencyMismatch("this Idempotency-Key was already used with a different request body")
    return Accepted(row.response_status, row.response_body, replayed=True)


def _new_rows(params: LaunchParams, *, network: str, max_attempts: int, now: datetime, actor: str) -> tuple[dict, dict]:
    """Column values of the new token and job rows."""
    token_id, job_id = uuid.uuid4().hex, uuid.uuid4().hex
    token = tokens_repo.new_token(
        params, token_id=token_id, job_id=job_id, network=network, now=now, requested_by=actor
    )
    job = dict(
        id=job_id,
        kind="launch",
        token_id=token_id,
        chain=params.chain,
        status=JobStatus.QUEUED.value,
        attempts=0,
        max_attempts=max_attempts,
        error_code=None,
        error_message=None,
        tx_id=None,
        nonce=None,
        token_address=None,
        confirm_checks=0,
        created_at=now,
        updated_at=now,
        finished_at=None,
    )
    return token, job


def _first_writes(token: dict, job: dict, now: datetime, actor: str) -> Changes:
    details = {"chain": token["chain"], "symbol": token["symbol"], "creator": token["creator"], "job_id": job["id"]}
    return Changes(
        audit=[AuditEvent(actor, Action.LAUNCH_REQUESTED, f"token:{token['id']}", details)],
        new_tokens=[token],
        new_jobs=[job],
        events=[
            {"job_id": job["id"], "status": job["status"], "message": "launch accepted", "data": {}, "created_at": now}
        ],
        outbox=[outbox_row(job["id"], job["chain"])],
        transitions=[(job["id"], job["chain"], job["status"])],
    )


async def accept_launch(
    sessions: async_sessionmaker[AsyncSession],
    committer: GroupCommitter,
    params: LaunchParams,
    *,
    network: str,
    max_attempts: int,
    actor: str,
    owner: str,
    render: Callable[[dict, dict], dict],
    idempotency_key: str | None = None,
    fingerprint: str = "",
    idempotency_ttl: timedelta = timedelta(hours=24),
) -> Accepted:
    """Record a launch and its first queue message atomically, with its audit entry
    (``actor`` asked for it); returns the 202 body.

    Without an idempotency key the rows go through the group committer (one transaction
    shared with whatever else is being written at that moment); with a key, the lookup,
    the insert and the key's own row need a transaction of their own.
    """
    if idempotency_key is None:
        now = utcnow()
        token, job = _new_rows(params, network=network, max_attempts=max_attempts, now=now, actor=actor)
        body = render(token, job)
        await committer.commit(_first_writes(token, job, now, actor))
        return Accepted(202, body, replayed=False)
    scope = _scope(owner)
    async with sessions() as session:
        replay = await _replay(session, scope, idempotency_key, fingerprint)
        if replay is not None:
            return replay
        await idem_repo.purge_expired(session, now=utcnow())
        now = utcnow()
        token, job = _new_rows(params, network=network, max_attempts=max_attempts, now=now, actor=actor)
        first = _first_writes(token, job, now, actor)
        body = render(token, job)
        idem_repo.add(
            session,
            scope=scope,
            key=idempotency_key,
            request_hash=fingerprint,
            status=202,
            body=body,
            now=now,
            ttl=idempotency_ttl,
        )
        try:
            # the key's row first: a concurrent request with the same key stops here, before
            # the audit entry takes the chain's lock (held until the commit)
            await session.flush()
            await write_changes(session, [first])
            await session.commit()
        except IntegrityError:
            await session.rollback()  # a concurrent request with the same key won the race
            replay = await _replay(session, scope, idempotency_key, fingerprint)
            if replay is None:
                raise
            return replay
    committer.feed.committed([first])
    return Accepted(202, body, replayed=False)


def check_launch_fee(params: LaunchParams, terms: PlatformTerms) -> None:
    """Refuse a launch fee outside the chain's bounds (what its factory would refuse):
    :class:`ValidationFailed` naming ``launch_fee``. No launch fee (0, 0) always passes."""
    problem = terms.check_launch_fee(params.launch_fee_bps, params.launch_fee_window, params.launch_fee_in_blocks)
    if problem is not None:
        raise ValidationFailed("launch_fee", problem)


def launch_creator(principal: Principal, chain: str, given: str | None) -> str:
    """The creator a launch by ``principal`` on ``chain`` is for: its wallet (``given``
    may repeat it, in any letter case the chain allows); an operator without a wallet
    names one. :class:`Forbidden` (``creator_mismatch``) for another wallet or a wallet of
    the other chain family; :class:`ValidationFailed` when none can be told."""
    spec = CHAINS.get(chain)
    if principal.wallet is None:
        if not given:
            raise ValidationFailed("creator", "is required: this credential has no wallet of its own")
        return given
    family = Family(principal.family) if principal.family else Family.EVM
    if spec is not None and spec.family is not family:
        raise Forbidden(
            f"signed in with a {family.value} wallet; a launch on {chain} needs a {spec.family.value} wallet",
            code=ErrorCode.CREATOR_MISMATCH,
        )
    if given:
        same = given.lower() == principal.wallet.lower() if family is Family.EVM else given == principal.wallet
        if not same:
            raise Forbidden(f"creator must be the signed-in wallet {principal.wallet}", code=ErrorCode.CREATOR_MISMATCH)
    return principal.wallet
