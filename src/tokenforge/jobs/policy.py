"""The one failure policy: from (error, job) to what happens next. Nothing else decides.

The launch handler calls :func:`decide` for every error a step raises and carries the
decision out; the worker calls it when nothing could be written at all. The rules, by the
error's :class:`~tokenforge.errors.ErrorKind` and a few codes with a meaning of their own:

==========================  =====================================================================
error                       decision
==========================  =====================================================================
``DB_UNAVAILABLE``          ``REQUEUE``: nothing can be recorded; the delivery comes back after a
                            backoff that grows with the outage (no attempt is used)
anything, job unreadable    ``REQUEUE`` after a backoff up to ``max_s`` (a bug in recording a step:
                            it is logged every time and can never spin)
``PERMANENT`` kind          ``FAIL`` at once
``WAIT`` kind               ``RETRY`` after the source's hint or a backoff, no attempt used
                            (no funded key, fees above the cap: the platform's condition)
``TX_DROPPED``              the transaction can never land: back to ``queued`` to sign again,
                            one attempt used; ``DEAD`` when the attempts are used up
``CONFIRM_TIMEOUT``         still pending after many checks: re-broadcast the recorded bytes
                            (``submitting``), no attempt used — it may still be mined
other ``TRANSIENT``         ``RETRY`` with backoff, one attempt used; when the attempts are used
                            up: ``DEAD`` — unless a transaction of the job can still land (it
                            was signed and recorded), then keep checking with backoff
==========================  =====================================================================

A launch is therefore dead only when no transaction of it can still be mined: with nothing
signed, or after the chain said its transaction was dropped. An exception that is not a
``TokenForgeError`` is treated as ``TransientError(INTERNAL_ERROR)`` (see
:func:`as_tokenforge_error`): a bug retries a bounded number of times, never forever, and
never crashes the worker.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

from tokenforge.domain.jobs import JobStatus
from tokenforge.errors import ErrorCode, ErrorKind, TokenForgeError, TransientError


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """The numbers the policy works with (from :class:`~tokenforge.config.Settings`)."""

    max_attempts: int = 5
    base_s: float = 0.5
    max_s: float = 60.0
    confirm_poll_s: float = 0.05
    confirm_poll_max_s: float = 2.0
    #: Checks of a submitted transaction before it is re-broadcast (``CONFIRM_TIMEOUT``);
    #: checks back off ×1.25 from ``confirm_poll_s`` up to ``confirm_poll_max_s``.
    max_confirm_checks: int = 200
    #: Longest pause between tries while the database is down.
    outage_max_s: float = 10.0


class Action(StrEnum):
    RETRY = "retry"  # record the error and schedule the next step after ``delay_s``
    FAIL = "fail"  # final: the job failed, retrying cannot help
    DEAD = "dead"  # final until an operator re-queues it: attempts used up, nothing can land
    REQUEUE = "requeue"  # nothing can be recorded: the delivery itself comes back after ``delay_s``


@dataclass(frozen=True, slots=True)
class JobFacts:
    """What the policy needs to know about a job."""

    status: JobStatus
    attempts: int
    max_attempts: int
    has_tx: bool  # a signed transaction is recorded for the job

    @property
    def in_flight(self) -> bool:
        """A transaction of this job may be on its way to a block."""
        return self.has_tx and self.status in (JobStatus.SUBMITTING, JobStatus.SUBMITTED)


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    delay_s: float = 0.0
    uses_attempt: bool = False
    #: ``QUEUED``: forget the signed transaction and sign again; ``SUBMITTING``: send the
    #: recorded bytes again. ``None``: the job keeps its state.
    move_to: JobStatus | None = None
    #: Why, in words, for the job's event history.
    note: str = ""
    #: Show the error on the job (``error``); False for routine steps that are no failure.
    records_error: bool = True


def backoff_s(attempt: int, *, base_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter (AWS architecture blog's "Full Jitter"): the delay
    before retry number ``attempt`` (1-based) is uniform in [0, min(max, base·2^(attempt-1))]."""
    if attempt < 1:
        raise ValueError("attempt is 1-based")
    ceiling = min(max_s, base_s * 2 ** min(attempt - 1, 64))
    return (rng or random).uniform(0, ceiling)


def as_tokenforge_error(exc: BaseException) -> TokenForgeError:
    """``exc`` itself, or ``INTERNAL_ERROR`` for an exception no adapter translated."""
    if isinstance(exc, TokenForgeError):
        return exc
    return TransientError(f"unexpected {type(exc).__name__}", code=ErrorCode.INTERNAL_ERROR)


def outage_delay_s(consecutive: int, policy: RetryPolicy, *, rng: random.Random | None = None) -> float:
    """Pause before trying again after ``consecutive`` database failures in a row (>= 1).

    Never below a tenth of a second, so an outage cannot spin the worker."""
    return max(0.1, backoff_s(consecutive, base_s=policy.base_s, max_s=policy.outage_max_s, rng=rng))


def decide(
    err: TokenForgeError,
    job: JobFacts | None,
    policy: RetryPolicy,
    *,
    outages: int = 1,
    rng: random.Random | None = None,
) -> Decision:
    """What to do after ``err`` was raised while advancing ``job`` (None: it could not be read).

    ``outages`` counts the database failures in a row this process has seen (for the
    ``REQUEUE`` backoff)."""
    code = err.code
    hint_s = err.retry_after_s if isinstance(err, TransientError) else None
    if code is ErrorCode.DB_UNAVAILABLE:
        return Decision(
            Action.REQUEUE, outage_delay_s(outages, policy, rng=rng), note="the database is unavailable; trying again"
        )
    if job is None:  # the error could not even be recorded, and not for an outage: a bug
        delay_s = max(0.1, backoff_s(outages, base_s=policy.base_s, max_s=policy.max_s, rng=rng))
        return Decision(Action.REQUEUE, delay_s, note=f"the step could not be recorded ({code}); trying again")
    if err.kind is ErrorKind.PERMANENT:
        return Decision(Action.FAIL, note=f"failed: {err.message}")
    next_attempt = job.attempts + 1

    def delay(attempt: int) -> float:
        if hint_s:
            return min(policy.max_s, hint_s)
        return backoff_s(attempt, base_s=policy.base_s, max_s=policy.max_s, rng=rng)

    if err.kind is ErrorKind.WAIT:
        return Decision(Action.RETRY, delay(max(1, next_attempt)), note=f"waiting ({code}): {err.message}")
    if code is ErrorCode.CONFIRM_TIMEOUT and job.in_flight:
        return Decision(
            Action.RETRY,
            policy.confirm_poll_max_s,
            move_to=JobStatus.SUBMITTING if job.status is JobStatus.SUBMITTED else None,
            note="not confirmed yet; sending the recorded transaction again",
            records_error=False,
        )
    if code is ErrorCode.TX_DROPPED:
        move_to = None if job.status is JobStatus.QUEUED else JobStatus.QUEUED
        if next_attempt >= job.max_attempts:
            return Decision(
                Action.DEAD,
                uses_attempt=True,
                move_to=move_to,
                note=f"dead after {next_attempt} attempts: {err.message}",
            )
        return Decision(
            Action.RETRY,
            delay(next_attempt),
            uses_attempt=True,
            move_to=move_to,
            note="transaction dropped; will sign again",
        )
    if next_attempt < job.max_attempts:
        return Decision(
            Action.RETRY, delay(next_attempt), uses_attempt=True, note=f"attempt {next_attempt} failed ({code})"
        )
    if job.in_flight:
        return Decision(
            Action.RETRY,
            delay(next_attempt),
            uses_attempt=True,
            note=f"attempt {next_attempt} failed ({code}); the recorded transaction can still be "
            "mined, so the launch is not given up",
        )
    return Decision(Action.DEAD, uses_attempt=True, note=f"dead after {next_attempt} attempts: {err.message}")
