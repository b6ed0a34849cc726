"""The job state machine: every transition, table-driven, and the FINAL set."""

from __future__ import annotations

import itertools

import pytest

from tokenforge.domain.jobs import FINAL, JobStatus, TokenStatus, can_transition, check_transition, token_status_for
from tokenforge.errors import IllegalTransition, PermanentError

Q, SUBMITTING, SUBMITTED, CONFIRMED, FAILED, DEAD = (
    JobStatus.QUEUED,
    JobStatus.SUBMITTING,
    JobStatus.SUBMITTED,
    JobStatus.CONFIRMED,
    JobStatus.FAILED,
    JobStatus.DEAD,
)

# What the design allows, written out independently of the implementation's table.
ALLOWED = {
    (Q, SUBMITTING),  # a worker signs and records the transaction
    (Q, CONFIRMED),  # the token is already on chain (a re-run finds it)
    (Q, FAILED),
    (Q, DEAD),
    (SUBMITTING, SUBMITTED),  # broadcast
    (SUBMITTING, Q),  # tx dropped before broadcast: sign again
    (SUBMITTING, CONFIRMED),
    (SUBMITTING, FAILED),
    (SUBMITTING, DEAD),
    (SUBMITTED, CONFIRMED),
    (SUBMITTED, SUBMITTING),  # stuck or resumed after restart: re-broadcast the recorded tx
    (SUBMITTED, Q),  # tx dropped: sign again
    (SUBMITTED, FAILED),
    (SUBMITTED, DEAD),
    (DEAD, Q),  # operator re-queue
}
ALL_PAIRS = list(itertools.product(JobStatus, repeat=2))
FORBIDDEN = [pair for pair in ALL_PAIRS if pair not in ALLOWED]


def test_the_six_states_and_their_wire_values():
    assert [s.value for s in JobStatus] == ["queued", "submitting", "submitted", "confirmed", "failed", "dead"]


def test_final_states_are_confirmed_failed_and_dead():
    assert {CONFIRMED, FAILED, DEAD} == FINAL


@pytest.mark.parametrize(("current", "new"), sorted(ALLOWED), ids=lambda s: str(s))
def test_allowed_transition(current, new):
    assert can_transition(current, new)
    check_transition(current, new)  # does not raise


@pytest.mark.parametrize(("current", "new"), FORBIDDEN, ids=lambda s: str(s))
def test_forbidden_transition(current, new):
    assert not can_transition(current, new)
    with pytest.raises(IllegalTransition) as info:
        check_transition(current, new)
    assert str(current) in info.value.message and str(new) in info.value.message


@pytest.mark.parametrize("status", list(JobStatus))
def test_no_state_moves_to_itself(status):
    with pytest.raises(IllegalTransition):
        check_transition(status, status)


@pytest.mark.parametrize("new", list(JobStatus))
def test_confirmed_is_terminal(new):
    with pytest.raises(IllegalTransition):
        check_transition(CONFIRMED, new)


@pytest.mark.parametrize("new", list(JobStatus))
def test_failed_is_terminal(new):
    with pytest.raises(IllegalTransition):
        check_transition(FAILED, new)


def test_dead_can_only_be_requeued():
    assert [s for s in JobStatus if can_transition(DEAD, s)] == [Q]


@pytest.mark.parametrize("current", sorted(set(JobStatus) - FINAL))
@pytest.mark.parametrize("final", sorted(FINAL))
def test_every_unfinished_state_can_end(current, final):
    assert can_transition(current, final)


def test_illegal_transition_is_permanent_so_it_is_never_retried():
    with pytest.raises(IllegalTransition) as info:
        check_transition(CONFIRMED, Q)
    assert isinstance(info.value, PermanentError)
    assert not info.value.is_transient()
    assert info.value.code == "illegal_transition"


@pytest.mark.parametrize(
    ("job", "token"),
    [
        (Q, TokenStatus.PENDING),
        (SUBMITTING, TokenStatus.PENDING),
        (SUBMITTED, TokenStatus.PENDING),
        (CONFIRMED, TokenStatus.LIVE),
        (FAILED, TokenStatus.FAILED),
        (DEAD, TokenStatus.FAILED),
    ],
)
def test_token_status_follows_job_status(job, token):
    assert token_status_for(job) is token
