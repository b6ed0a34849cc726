"""Launch outcomes and time in state, counted from committed changes."""

from __future__ import annotations

from prometheus_client import REGISTRY

from tokenforge.observability.job_metrics import JobMetrics
from tokenforge.store.feed import ChangeFeed
from tokenforge.store.group_commit import Changes

CHAIN = "metrics-test-chain"  # a label value no other test uses


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_launches_are_counted_by_chain_and_outcome_with_time_in_each_state():
    clock = _Clock()
    feed = ChangeFeed()
    feed.subscribe(JobMetrics(clock=clock))
    accepted = _value("tokenforge_launches_total", chain=CHAIN, outcome="accepted")
    confirmed = _value("tokenforge_launches_total", chain=CHAIN, outcome="confirmed")
    queued_sum = _value("tokenforge_job_state_seconds_sum", chain=CHAIN, state="queued")
    submitted_count = _value("tokenforge_job_state_seconds_count", chain=CHAIN, state="submitted")

    feed.committed([Changes(new_jobs=[{"id": "j1", "chain": CHAIN}], transitions=[("j1", CHAIN, "queued")])])
    clock.now += 2.0
    feed.committed([Changes(transitions=[("j1", CHAIN, "submitting")])])
    clock.now += 0.5
    feed.committed([Changes(transitions=[("j1", CHAIN, "submitted")])])
    clock.now += 3.0
    feed.committed([Changes(transitions=[("j1", CHAIN, "confirmed")])])

    assert _value("tokenforge_launches_total", chain=CHAIN, outcome="accepted") == accepted + 1
    assert _value("tokenforge_launches_total", chain=CHAIN, outcome="confirmed") == confirmed + 1
    assert _value("tokenforge_job_state_seconds_sum", chain=CHAIN, state="queued") == queued_sum + 2.0
    assert _value("tokenforge_job_state_seconds_count", chain=CHAIN, state="submitted") == submitted_count + 1


def test_failed_and_dead_are_outcomes_and_final_jobs_are_forgotten():
    metrics = JobMetrics()
    failed = _value("tokenforge_launches_total", chain=CHAIN, outcome="failed")
    dead = _value("tokenforge_launches_total", chain=CHAIN, outcome="dead")
    metrics([Changes(transitions=[("a", CHAIN, "queued"), ("b", CHAIN, "queued")])])
    assert metrics.tracked() == 2
    metrics([Changes(transitions=[("a", CHAIN, "failed"), ("b", CHAIN, "dead")])])
    assert metrics.tracked() == 0
    assert _value("tokenforge_launches_total", chain=CHAIN, outcome="failed") == failed + 1
    assert _value("tokenforge_launches_total", chain=CHAIN, outcome="dead") == dead + 1


def test_a_job_first_seen_mid_way_is_not_observed_for_the_state_it_was_in():
    """The previous transition happened in another process: no time for that state."""
    metrics = JobMetrics()
    before = _value("tokenforge_job_state_seconds_count", chain=CHAIN, state="queued")
    metrics([Changes(transitions=[("elsewhere", CHAIN, "submitting")])])
    assert _value("tokenforge_job_state_seconds_count", chain=CHAIN, state="queued") == before


def test_the_map_of_unfinished_jobs_is_bounded():
    metrics = JobMetrics(max_jobs=3)
    metrics([Changes(transitions=[(f"j{i}", CHAIN, "queued") for i in range(10)])])
    assert metrics.tracked() == 3
