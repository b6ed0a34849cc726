"""Job states and the transitions between them (pure rules, no I/O).

::

    queued ──► submitting ──► submitted ──► confirmed
       ▲  │         │  ▲          │
       │  │         ▼  └──────────┘ (tx dropped: sign again)
       │  └──────► failed / dead ◄──┘
       └──────────── dead (operator re-queue)
"""

from __future__ import annotations

from enum import StrEnum

from tokenforge.errors import IllegalTransition


class JobStatus(StrEnum):
    QUEUED = "queued"  # accepted, waiting for a worker (also: waiting for a retry)
    SUBMITTING = "submitting"  # a worker signed the transaction and recorded it
    SUBMITTED = "submitted"  # broadcast; waiting for confirmation
    CONFIRMED = "confirmed"  # final: the token exists on chain
    FAILED = "failed"  # final: a permanent error; retrying cannot help
    DEAD = "dead"  # final until an operator re-queues it: attempts exhausted


FINAL: frozenset[JobStatus] = frozenset({JobStatus.CONFIRMED, JobStatus.FAILED, JobStatus.DEAD})

_ALLOWED: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.SUBMITTING, JobStatus.CONFIRMED, JobStatus.FAILED, JobStatus.DEAD}),
    JobStatus.SUBMITTING: frozenset(
        {JobStatus.SUBMITTED, JobStatus.QUEUED, JobStatus.CONFIRMED, JobStatus.FAILED, JobStatus.DEAD}
    ),
    JobStatus.SUBMITTED: frozenset(
        {JobStatus.CONFIRMED, JobStatus.SUBMITTING, JobStatus.QUEUED, JobStatus.FAILED, JobStatus.DEAD}
    ),
    JobStatus.CONFIRMED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.DEAD: frozenset({JobStatus.QUEUED}),
}


def can_transition(current: JobStatus, new: JobStatus) -> bool:
    return new in _ALLOWED[current]


def check_transition(current: JobStatus, new: JobStatus) -> None:
    """Raise :class:`IllegalTransition` unless ``current → new`` is allowed."""
    if not can_transition(current, new):
        raise IllegalTransition(f"job cannot go from {current} to {new}")


class TokenStatus(StrEnum):
    PENDING = "pending"  # launch in progress
    LIVE = "live"  # the token exists on chain
    FAILED = "failed"  # the launch failed or is dead


def token_status_for(job_status: JobStatus) -> TokenStatus:
    if job_status is JobStatus.CONFIRMED:
        return TokenStatus.LIVE
    if job_status in (JobStatus.FAILED, JobStatus.DEAD):
        return TokenStatus.FAILED
    return TokenStatus.PENDING


def could_be_id(value: str) -> bool:
    """Whether ``value`` could name a token or job (ids are hex strings): anything else is
    not found without asking the database, which would refuse some characters (NUL)."""
    return 0 < len(value) <= 64 and value.isascii() and value.isalnum()
