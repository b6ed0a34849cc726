"""The circuit breaker's state machine, driven by a fake clock (no sleeps)."""

from __future__ import annotations

import pytest

from tokenforge.chains.rpc.breaker import CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def changes() -> list[tuple[str, str]]:
    return []


@pytest.fixture
def breaker(clock, changes) -> CircuitBreaker:
    return CircuitBreaker(
        failure_threshold=3, reset_after_s=10.0, clock=clock, on_change=lambda old, new: changes.append((old, new))
    )


def test_stays_closed_below_the_threshold_and_a_success_resets_the_count(breaker):
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == "closed" and breaker.allow()
    assert breaker.consecutive_failures == 2
    breaker.record_success()
    assert breaker.consecutive_failures == 0
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == "closed"  # not consecutive with the first two


def test_opens_after_threshold_consecutive_failures_and_refuses_calls(breaker, clock, changes):
    for _ in range(3):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state == "open"
    assert breaker.opened_at == clock.now
    assert changes == [("closed", "open")]
    assert not breaker.allow()
    clock.advance(9.99)
    assert not breaker.allow() and breaker.state == "open"
    assert breaker.remaining_s() == pytest.approx(0.01)


def test_half_open_after_the_pause_lets_exactly_one_trial_through(breaker, clock):
    for _ in range(3):
        breaker.record_failure()
    clock.advance(10.0)
    assert breaker.state == "half_open"
    assert breaker.can_attempt()
    assert breaker.allow()  # the trial
    assert not breaker.can_attempt()
    assert not breaker.allow()  # a second caller while the trial is out
    assert not breaker.allow()


def test_successful_trial_closes_and_resets(breaker, clock, changes):
    for _ in range(3):
        breaker.record_failure()
    clock.advance(10.0)
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed"
    assert breaker.consecutive_failures == 0
    assert breaker.opened_at is None
    assert changes == [("closed", "open"), ("half_open", "closed")]
    # a fresh run of failures is needed to open it again
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.allow()


def test_failed_trial_reopens_for_a_new_pause(breaker, clock, changes):
    for _ in range(3):
        breaker.record_failure()
    clock.advance(10.0)
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open"
    assert breaker.opened_at == clock.now  # the new pause starts now
    assert not breaker.allow()
    clock.advance(9.0)
    assert not breaker.allow()
    clock.advance(1.0)
    assert breaker.allow()
    assert changes == [("closed", "open"), ("half_open", "open")]


def test_released_trial_frees_the_slot(breaker, clock):
    for _ in range(3):
        breaker.record_failure()
    clock.advance(10.0)
    assert breaker.allow()
    breaker.release()  # the trial call was abandoned (e.g. cancelled)
    assert breaker.state == "half_open"
    assert breaker.allow()


def test_threshold_one_and_zero_pause(clock):
    breaker = CircuitBreaker(failure_threshold=1, reset_after_s=0.0, clock=clock)
    breaker.record_failure()
    assert breaker.opened_at == clock.now
    assert breaker.state == "half_open"  # the pause is already over
    assert breaker.allow() and not breaker.allow()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"failure_threshold": 0}, "failure_threshold must be >= 1"),
        ({"reset_after_s": -1.0}, "reset_after_s must be >= 0"),
    ],
)
def test_rejects_nonsense_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CircuitBreaker(**kwargs)
