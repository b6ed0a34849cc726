"""The failure policy: every registered code, every job state that matters."""

from __future__ import annotations

import random

import pytest

from tokenforge.domain.jobs import JobStatus
from tokenforge.errors import ErrorCode, ErrorKind, PermanentError, TokenForgeError, TransientError
from tokenforge.jobs.policy import Action, JobFacts, RetryPolicy, as_tokenforge_error, decide, outage_delay_s

POLICY = RetryPolicy(max_attempts=5, base_s=0.5, max_s=60.0, confirm_poll_max_s=2.0, outage_max_s=10.0)
SPECIAL = {ErrorCode.DB_UNAVAILABLE, ErrorCode.TX_DROPPED, ErrorCode.CONFIRM_TIMEOUT}


def error(code: ErrorCode, **kw) -> TokenForgeError:
    cls = PermanentError if code.kind is ErrorKind.PERMANENT else TransientError
    return cls(f"{code} happened", code=code, **kw)


def job(status=JobStatus.QUEUED, attempts=0, max_attempts=5, has_tx=False) -> JobFacts:
    return JobFacts(status, attempts, max_attempts, has_tx)


IN_FLIGHT = [job(JobStatus.SUBMITTED, has_tx=True), job(JobStatus.SUBMITTING, has_tx=True)]
NOT_IN_FLIGHT = [job(JobStatus.QUEUED), job(JobStatus.SUBMITTING, has_tx=False)]


@pytest.mark.parametrize("code", [c for c in ErrorCode if c.kind is ErrorKind.PERMANENT])
@pytest.mark.parametrize("facts", IN_FLIGHT + NOT_IN_FLIGHT)
def test_every_permanent_code_fails_the_job_at_once(code, facts):
    decision = decide(error(code), facts, POLICY)
    assert decision.action is Action.FAIL and not decision.uses_attempt


@pytest.mark.parametrize("code", [c for c in ErrorCode if c.kind is ErrorKind.WAIT and c not in SPECIAL])
@pytest.mark.parametrize("facts", [*IN_FLIGHT, *NOT_IN_FLIGHT, job(attempts=4), job(attempts=50)])
def test_every_wait_code_retries_without_using_an_attempt_however_many_were_used(code, facts):
    decision = decide(error(code), facts, POLICY, rng=random.Random(1))
    assert decision.action is Action.RETRY and not decision.uses_attempt
    assert 0 <= decision.delay_s <= POLICY.max_s and decision.move_to is None


def test_a_wait_hint_from_the_source_is_followed_but_capped():
    assert decide(error(ErrorCode.FEE_ABOVE_CAP, retry_after_s=7.5), job(), POLICY).delay_s == 7.5
    assert decide(error(ErrorCode.NO_FUNDED_KEY, retry_after_s=9999), job(), POLICY).delay_s == POLICY.max_s


@pytest.mark.parametrize("code", [c for c in ErrorCode if c.kind is ErrorKind.TRANSIENT and c not in SPECIAL])
def test_every_transient_code_uses_an_attempt_and_backs_off(code):
    decision = decide(error(code), job(attempts=1), POLICY, rng=random.Random(3))
    assert decision.action is Action.RETRY and decision.uses_attempt
    assert 0 <= decision.delay_s <= min(POLICY.max_s, POLICY.base_s * 2)  # attempt 2's ceiling


@pytest.mark.parametrize("code", [c for c in ErrorCode if c.kind is ErrorKind.TRANSIENT and c not in SPECIAL])
@pytest.mark.parametrize("facts", NOT_IN_FLIGHT)
def test_a_transient_code_with_attempts_used_up_and_nothing_in_flight_is_dead(code, facts):
    exhausted = JobFacts(facts.status, 4, 5, facts.has_tx)
    assert decide(error(code), exhausted, POLICY).action is Action.DEAD


@pytest.mark.parametrize("code", [ErrorCode.RPC_UNAVAILABLE, ErrorCode.INTERNAL_ERROR, ErrorCode.RATE_LIMITED])
@pytest.mark.parametrize("facts", IN_FLIGHT)
def test_a_launch_whose_transaction_can_still_be_mined_is_never_dead(code, facts):
    for attempts in (4, 5, 40):
        decision = decide(error(code), JobFacts(facts.status, attempts, 5, True), POLICY, rng=random.Random(2))
        assert decision.action is Action.RETRY and decision.move_to is None
        assert "can still be mined" in decision.note


@pytest.mark.parametrize("facts", IN_FLIGHT)
def test_confirm_timeout_rebroadcasts_without_using_an_attempt(facts):
    decision = decide(error(ErrorCode.CONFIRM_TIMEOUT), JobFacts(facts.status, 4, 5, True), POLICY)
    assert decision.action is Action.RETRY and not decision.uses_attempt
    assert decision.move_to is (JobStatus.SUBMITTING if facts.status is JobStatus.SUBMITTED else None)


def test_tx_dropped_signs_again_using_an_attempt_and_is_dead_when_they_are_used_up():
    decision = decide(error(ErrorCode.TX_DROPPED), job(JobStatus.SUBMITTED, attempts=1, has_tx=True), POLICY)
    assert (decision.action, decision.move_to, decision.uses_attempt) == (Action.RETRY, JobStatus.QUEUED, True)
    last = decide(error(ErrorCode.TX_DROPPED), job(JobStatus.SUBMITTED, attempts=4, has_tx=True), POLICY)
    assert (last.action, last.move_to) == (Action.DEAD, JobStatus.QUEUED)
    queued = decide(error(ErrorCode.TX_DROPPED), job(JobStatus.QUEUED, attempts=0), POLICY)
    assert queued.action is Action.RETRY and queued.move_to is None


@pytest.mark.parametrize("facts", [None, *IN_FLIGHT, *NOT_IN_FLIGHT])
def test_database_outage_requeues_the_delivery_with_a_growing_bounded_pause(facts):
    delays = [
        decide(error(ErrorCode.DB_UNAVAILABLE), facts, POLICY, outages=n, rng=random.Random(n)).delay_s
        for n in range(1, 30)
    ]
    assert all(0.1 <= d <= POLICY.outage_max_s for d in delays)
    decision = decide(error(ErrorCode.DB_UNAVAILABLE), facts, POLICY)
    assert decision.action is Action.REQUEUE and not decision.uses_attempt


def test_an_unknown_exception_is_internal_error_and_transient_everywhere():
    err = as_tokenforge_error(KeyError("boom"))
    assert err.code is ErrorCode.INTERNAL_ERROR and err.is_transient()
    assert decide(err, job(attempts=0), POLICY).action is Action.RETRY
    assert decide(err, job(attempts=4), POLICY).action is Action.DEAD
    same = PermanentError("x", code=ErrorCode.REVERTED)
    assert as_tokenforge_error(same) is same


def test_outage_delay_never_spins():
    class Low(random.Random):
        def uniform(self, a, b):
            return a

    assert outage_delay_s(1, POLICY, rng=Low()) == 0.1


def test_every_code_has_a_kind_and_registered_strings_only():
    assert all(isinstance(c.kind, ErrorKind) for c in ErrorCode)
    with pytest.raises(ValueError, match="'not_a_code' is not a valid ErrorCode"):
        TransientError("x", code="not_a_code")
    with pytest.raises(TypeError, match=r"PermanentError cannot carry the .* code 'rpc_timeout'"):
        PermanentError("x", code=ErrorCode.RPC_TIMEOUT)
    with pytest.raises(TypeError, match=r"TransientError cannot carry the .* code 'reverted'"):
        TransientError("x", code=ErrorCode.REVERTED)
