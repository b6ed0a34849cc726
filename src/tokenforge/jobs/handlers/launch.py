"""Launch one token: the worker's step function for ``jobs.launch`` messages.

The job row decides what a delivery does, so duplicate or stale deliveries are harmless:

* ``queued``     → token already on chain? confirm it. Else sign, write the signed tx to
  the DB (write-ahead), broadcast, check once, schedule a confirmation check.
* ``submitting`` → the tx was signed and recorded but maybe never sent: broadcast the
  same bytes again (never sign a new one), then as above.
* ``submitted``  → check confirmation; not yet → schedule the next check (no delivery is
  held while waiting for the chain). A transaction not mined after the deployer's
  ``stuck_after_s`` is replaced (same nonce, higher fees; EVM): the replacement is recorded
  like the original before it is broadcast, and whichever of them is mined counts.

What happens after an error is decided by :func:`tokenforge.jobs.policy.decide` alone;
this module only carries the decision out. Each state change commits with its job event and,
when another step must follow, the outbox row that triggers it. Writes of concurrent jobs
share transactions through :class:`~tokenforge.store.group_commit.GroupCommitter`; a step
continues only after its own write is committed.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tokenforge.audit import Action as AuditAction
from tokenforge.audit import AuditEvent
from tokenforge.chains.ports import LaunchReceipt, LaunchRequest, ReplaceableDeployer, SignedLaunch
from tokenforge.chains.registry import DeployerRegistry
from tokenforge.domain.jobs import FINAL, JobStatus, TokenStatus, check_transition
from tokenforge.errors import ErrorCode, TokenForgeError, TransientError
from tokenforge.jobs.policy import Action, JobFacts, RetryPolicy, as_tokenforge_error, decide
from tokenforge.observability.context import headers as trace_headers
from tokenforge.store.db import utcnow
from tokenforge.store.group_commit import Changes, GroupCommitter, RowValues
from tokenforge.store.models import JobRow, TokenRow
from tokenforge.store.repositories import jobs as jobs_repo

#: Launch messages of chain ``c`` go to topic ``jobs.launch.<c>``: a worker process can
#: serve some chains only (``tokenforge worker --chains``), each with its own prefetch.
TOPIC_PREFIX = "jobs.launch."
log = logging.getLogger(__name__)


def launch_topic(chain: str) -> str:
    return TOPIC_PREFIX + chain


def launch_message(job_id: str) -> tuple[str, dict[str, Any]]:
    """The (message_id, body) pair that asks a worker to advance ``job_id``."""
    return f"{job_id}:{uuid.uuid4().hex[:12]}", {"job_id": job_id}


def outbox_row(job_id: str, chain: str, *, delay_s: float = 0.0) -> RowValues:
    """The outbox row that asks a worker to advance ``job_id``; it carries the trace
    context of the current request or job (:func:`tokenforge.observability.context.headers`)."""
    message_id, body = launch_message(job_id)
    return {
        "topic": launch_topic(chain),
        "message_id": message_id,
        "payload": body,
        "headers": trace_headers(),
        "job_id": job_id,
        "available_at": time.time() + delay_s,
        "created_at": utcnow(),
    }


def launch_request(job: JobRow, token: TokenRow) -> LaunchRequest:
    return LaunchRequest(
        job_id=job.id,
        chain=token.chain,
        name=token.name,
        symbol=token.symbol,
        decimals=token.decimals,
        supply_base_units=int(token.supply_base_units),
        creator=token.creator,
        metadata_uri=token.metadata_uri or "",
        launch_fee_bps=token.launch_fee_bps,
        launch_fee_window=token.launch_fee_window,
        launch_fee_in_blocks=token.launch_fee_in_blocks,
    )


def signed_from_row(job: JobRow) -> SignedLaunch:
    return SignedLaunch(
        tx_id=job.tx_id or "",
        raw_tx=job.raw_tx or b"",
        token_address=job.token_address or "",
        signer=job.signer or "",
        nonce=job.nonce,
        replaced_tx_ids=tuple(job.replaced_tx_ids or ()),
        recent_blockhash=job.recent_blockhash,
        last_valid_block_height=job.last_valid_block_height,
    )


class _Step:
    """The rows one step writes for one job, with transitions checked as they are added."""

    def __init__(self, job: JobRow) -> None:
        self.job = job
        self.status = JobStatus(job.status)
        self.values: RowValues = {}
        self.changes = Changes()

    def set(self, **values: Any) -> None:
        self.values.update(values)

    def move(self, new: JobStatus, message: str, data: dict[str, Any] | None = None) -> None:
        check_transition(self.status, new)
        now = utcnow()
        self.status = new
        self.changes.transitions.append((self.job.id, self.job.chain, new.value))
        self.values.update(status=new.value, updated_at=now)
        if new in FINAL:
            self.values.update(finished_at=now, lease_owner=None, lease_until=None)
        self.event(message, data)

    def event(self, message: str, data: dict[str, Any] | None = None) -> None:
        self.changes.events.append(
            {
                "job_id": self.job.id,
                "status": self.status.value,
                "message": message,
                "data": data or {},
                "created_at": utcnow(),
            }
        )

    def build(self) -> Changes:
        self.changes.jobs.append({"id": self.job.id, **self.values})
        return self.changes

    def applied(self) -> None:
        """After commit: keep the in-memory job in step with the database."""
        for key, value in self.values.items():
            setattr(self.job, key, value)


class LaunchHandler:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        deployers: DeployerRegistry,
        *,
        policy: RetryPolicy,
        wake_relay: Callable[[], None],
        committer: GroupCommitter,
        crash_point: str | None = None,
    ) -> None:
        self._sessions = sessions
        self._deployers = deployers
        self._policy = policy
        self._wake_relay = wake_relay
        self._crash_point = crash_point
        self._store = committer
        self._active: set[str] = set()  # jobs this process is advancing right now
        self._rerun: set[str] = set()  # ...and that were delivered again meanwhile

    def _maybe_crash(self, point: str) -> None:
        if self._crash_point == point:  # fault injection for crash tests (see Settings)
            log.critical("fault injection: exiting at %s", point)
            os._exit(86)

    async def _commit(self, step: _Step) -> None:
        await self._store.commit(step.build())
        step.applied()
        if step.changes.outbox:
            self._wake_relay()

    async def handle(self, job_id: str) -> None:
        """Advance ``job_id`` by one step. Never raises for chain or job errors.

        A delivery that arrives while this process is advancing the same job (e.g. the
        confirmation check the running step just scheduled) is not dropped: the running
        handler takes one more pass when it finishes.
        """
        if job_id in self._active:
            self._rerun.add(job_id)
            return
        self._active.add(job_id)
        try:
            while True:
                self._rerun.discard(job_id)
                await self._handle_once(job_id)
                if job_id not in self._rerun:
                    return
        finally:
            self._active.discard(job_id)
            self._rerun.discard(job_id)

    async def _handle_once(self, job_id: str) -> None:
        """One step. A database outage propagates as ``DB_UNAVAILABLE`` (nothing can be
        recorded; the worker brings the delivery back later); every other error is recorded
        as the policy decides."""
        loaded = await self._store.lease(job_id)
        if loaded is None:  # final, unknown, or another worker is on it
            return
        job, token = loaded
        try:
            await self._advance(job, token)
        except Exception as exc:  # never crash the worker: a bug retries like a transient error
            err = as_tokenforge_error(exc)
            if err.code is ErrorCode.DB_UNAVAILABLE:
                raise err from None
            if not isinstance(exc, TokenForgeError):
                log.exception("unexpected error advancing job %s", job_id)
            await self._on_error(job_id, err)

    # -- steps ---------------------------------------------------------------------------

    async def _advance(self, job: JobRow, token: TokenRow) -> None:
        status = JobStatus(job.status)
        deployer = await self._deployers.get(job.chain)
        req = launch_request(job, token)
        if status is JobStatus.QUEUED:
            existing = await deployer.find_existing(req)
            if existing is not None:
                await self._finish(job, existing, "token found on chain")
                return
            signed = await deployer.sign(req)
            try:
                await self._record_signed(job, signed)
            except Exception:  # not on cancellation: the queued write may still commit
                abandon = getattr(deployer, "abandon", None)
                if abandon is not None:
                    await abandon(signed)
                raise
            status = JobStatus.SUBMITTING
            self._maybe_crash("after_sign")
        else:
            signed = signed_from_row(job)
        broadcast_now = status is JobStatus.SUBMITTING
        if broadcast_now:
            await deployer.broadcast(signed)
            self._maybe_crash("after_broadcast")
        receipt = await deployer.confirm(signed)
        if receipt is not None:
            await self._finish(job, receipt, "confirmed on chain", broadcast=broadcast_now)
            return
        held: TransientError | None = None
        if not broadcast_now and isinstance(deployer, ReplaceableDeployer) and self._is_stuck(job, deployer):
            try:
                replacement = await deployer.replace(signed)
            except TransientError as err:
                if err.code is not ErrorCode.FEE_ABOVE_CAP:
                    raise
                held, replacement = err, None  # it waits at the fees it has; it can still be mined
            if replacement is not None:
                await self._record_replacement(job, signed, replacement, deployer.stuck_after_s)
                await deployer.broadcast(replacement)
        await self._schedule_check(job, broadcast=broadcast_now, held=held)

    @staticmethod
    def _is_stuck(job: JobRow, deployer: ReplaceableDeployer) -> bool:
        if job.submitted_at is None:
            return False
        return (utcnow() - job.submitted_at).total_seconds() >= deployer.stuck_after_s

    async def _record_replacement(self, job: JobRow, old: SignedLaunch, new: SignedLaunch, after_s: float) -> None:
        """Write-ahead for a replacement: recorded (with every earlier id) before broadcast."""
        step = _Step(job)
        step.set(
            tx_id=new.tx_id,
            raw_tx=new.raw_tx,
            replaced_tx_ids=list(new.replaced_tx_ids),
            submitted_at=utcnow(),
            confirm_checks=0,
        )
        step.event(
            f"transaction not mined after {after_s:g}s; replaced with higher fees (same nonce)",
            {"tx_id": new.tx_id, "replaces": old.tx_id, "nonce": new.nonce, "replacement": len(new.replaced_tx_ids)},
        )
        await self._commit(step)

    async def _record_signed(self, job: JobRow, signed: SignedLaunch) -> None:
        step = _Step(job)
        step.set(
            tx_id=signed.tx_id,
            raw_tx=signed.raw_tx,
            signer=signed.signer,
            nonce=signed.nonce,
            recent_blockhash=signed.recent_blockhash,
            last_valid_block_height=signed.last_valid_block_height,
            token_address=signed.token_address,
            confirm_checks=0,
            replaced_tx_ids=None,
        )
        step.move(
            JobStatus.SUBMITTING,
            "transaction signed and recorded",
            {"tx_id": signed.tx_id, "token_address": signed.token_address, "nonce": signed.nonce},
        )
        step.changes.audit.append(
            AuditEvent(
                f"system:worker/{job.chain}",
                AuditAction.KEY_USED_FOR_LAUNCH,
                f"key:{job.chain}/{signed.signer}",
                {"job_id": job.id, "tx_id": signed.tx_id, "nonce": signed.nonce},
            )
        )
        await self._commit(step)

    @staticmethod
    def _submitted(step: _Step) -> None:
        if step.job.submitted_at is None:  # the first broadcast of this transaction starts the stuck clock
            step.set(submitted_at=utcnow())
        step.move(JobStatus.SUBMITTED, "transaction broadcast", {"tx_id": step.job.tx_id})

    async def _schedule_check(self, job: JobRow, *, broadcast: bool, held: TransientError | None = None) -> None:
        """Schedule the next confirmation check. ``held``: the fee cap keeps the transaction
        from being replaced; the job stays submitted, says why (once) and uses no attempt."""
        checks = job.confirm_checks + 1
        if checks > self._policy.max_confirm_checks:
            raise TransientError("transaction not confirmed in time; re-broadcasting", code=ErrorCode.CONFIRM_TIMEOUT)
        step = _Step(job)
        if broadcast:
            self._submitted(step)
        if held is not None and job.error_code != held.code.value:
            step.set(error_code=held.code.value, error_message=held.message)
            step.event(
                f"held back by the fee cap: {held.message}; waiting at the fees it has (no attempt used)",
                {"code": held.code.value, "message": held.message, "tx_id": job.tx_id},
            )
        delay_s = min(self._policy.confirm_poll_max_s, self._policy.confirm_poll_s * 1.25 ** (checks - 1))
        step.set(confirm_checks=checks, lease_owner=None, lease_until=None)
        step.changes.outbox.append(outbox_row(job.id, job.chain, delay_s=delay_s))
        await self._commit(step)

    async def _finish(self, job: JobRow, receipt: LaunchReceipt, message: str, *, broadcast: bool = False) -> None:
        step = _Step(job)
        if broadcast:
            self._submitted(step)
        tx_id = receipt.tx_id or job.tx_id
        step.set(token_address=receipt.token_address, tx_id=tx_id, error_code=None, error_message=None)
        step.move(
            JobStatus.CONFIRMED,
            message,
            {
                "token_address": receipt.token_address,
                "tx_id": tx_id,
                "block_number": receipt.block_number,
                "gas_used": receipt.gas_used,
                "fee_paid_base_units": str(receipt.fee_paid_base_units),
            },
        )
        step.changes.tokens.append(
            {
                "id": job.token_id,
                "status": TokenStatus.LIVE.value,
                "address": receipt.token_address,
                "tx_id": tx_id,
                "block_number": receipt.block_number,
                "gas_used": receipt.gas_used,
                "fee_paid_base_units": str(receipt.fee_paid_base_units),
                "updated_at": utcnow(),
            }
        )
        await self._commit(step)

    async def _on_error(self, job_id: str, err: TokenForgeError) -> None:
        """Record a failed step as the policy decides. Re-reads the job: a failed commit may
        have left memory behind."""
        async with self._sessions() as s:
            job = await jobs_repo.get(s, job_id)
        if job is None or JobStatus(job.status) in FINAL:
            return
        facts = JobFacts(JobStatus(job.status), job.attempts, job.max_attempts, has_tx=job.tx_id is not None)
        decision = decide(err, facts, self._policy)
        if decision.action is Action.REQUEUE:
            raise TransientError(decision.note, code=ErrorCode.DB_UNAVAILABLE)
        error = {"code": err.code.value, "message": err.message}
        step = _Step(job)
        step.set(lease_owner=None, lease_until=None)
        if decision.records_error:
            step.set(error_code=err.code.value, error_message=err.message)
        if decision.action is Action.FAIL:
            step.move(JobStatus.FAILED, decision.note, error)
            self._token_failed(step)
            await self._commit(step)
            return
        attempts = job.attempts + (1 if decision.uses_attempt else 0)
        step.set(attempts=attempts, confirm_checks=0)
        if decision.move_to is JobStatus.QUEUED:
            step.move(JobStatus.QUEUED, "transaction dropped; will sign again", {**error, "dropped_tx_id": job.tx_id})
            step.set(
                tx_id=None,
                raw_tx=None,
                nonce=None,
                recent_blockhash=None,
                last_valid_block_height=None,
                submitted_at=None,
                replaced_tx_ids=None,
            )
        if decision.action is Action.DEAD:
            step.move(JobStatus.DEAD, decision.note, error)
            self._token_failed(step)
        else:
            retry = {
                **error,
                "attempt": attempts,
                "uses_attempt": decision.uses_attempt,
                "retry_in_s": round(decision.delay_s, 3),
            }
            message = f"{decision.note}; retrying in {decision.delay_s:.2f}s"
            if decision.move_to is not None and decision.move_to is not JobStatus.QUEUED:
                step.move(decision.move_to, message, retry)  # one event says both
            else:
                step.set(updated_at=utcnow())
                step.event(message, retry)
            step.changes.outbox.append(outbox_row(job_id, job.chain, delay_s=decision.delay_s))
        await self._commit(step)

    @staticmethod
    def _token_failed(step: _Step) -> None:
        step.changes.tokens.append(
            {"id": step.job.token_id, "status": TokenStatus.FAILED.value, "updated_at": utcnow()}
        )
