"""Exponential backoff with full jitter: the delay before retry ``n``."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenforge.jobs.policy import backoff_s


class Extreme:
    """An rng whose ``uniform`` returns one end of the range."""

    def __init__(self, end: str) -> None:
        self.end = end

    def uniform(self, a: float, b: float) -> float:
        return a if self.end == "low" else b


attempts = st.integers(min_value=1, max_value=200)
bases = st.floats(min_value=1e-3, max_value=10.0)
maxes = st.floats(min_value=1e-3, max_value=600.0)


@given(attempt=attempts, base_s=bases, max_s=maxes, seed=st.integers(0, 2**32))
def test_delay_is_within_zero_and_capped_exponential(attempt, base_s, max_s, seed):
    delay = backoff_s(attempt, base_s=base_s, max_s=max_s, rng=random.Random(seed))
    assert 0 <= delay <= min(max_s, base_s * 2 ** (attempt - 1))


@given(attempt=attempts, base_s=bases, max_s=maxes)
def test_upper_end_is_exactly_the_capped_exponential(attempt, base_s, max_s):
    assert backoff_s(attempt, base_s=base_s, max_s=max_s, rng=Extreme("high")) == min(
        max_s, base_s * 2 ** (attempt - 1)
    )
    assert backoff_s(attempt, base_s=base_s, max_s=max_s, rng=Extreme("low")) == 0


@pytest.mark.parametrize(
    ("attempt", "ceiling"), [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (7, 32.0), (8, 60.0), (50, 60.0)]
)
def test_ceiling_doubles_until_the_cap(attempt, ceiling):
    assert backoff_s(attempt, base_s=0.5, max_s=60.0, rng=Extreme("high")) == ceiling


def test_default_rng_stays_in_range_and_jitters():
    delays = [backoff_s(5, base_s=1.0, max_s=100.0) for _ in range(200)]
    assert all(0 <= d <= 16.0 for d in delays)
    assert len(set(delays)) > 1, "full jitter must spread the delays"


def test_seeded_rng_is_reproducible():
    first = [backoff_s(n, base_s=0.1, max_s=5, rng=random.Random(7)) for n in range(1, 10)]
    again = [backoff_s(n, base_s=0.1, max_s=5, rng=random.Random(7)) for n in range(1, 10)]
    assert first == again


@pytest.mark.parametrize("attempt", [0, -1, -100])
def test_attempts_are_one_based(attempt):
    with pytest.raises(ValueError, match="attempt is 1-based"):
        backoff_s(attempt, base_s=0.5, max_s=60.0)
