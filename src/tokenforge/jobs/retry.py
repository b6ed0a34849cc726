"""Exponential backoff with full jitter (AWS architecture blog's "Full Jitter")."""

from __future__ import annotations

import random


def backoff_s(attempt: int, *, base_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """Delay before retry number ``attempt`` (1-based): uniform in [0, min(max, base·2^(attempt-1))]."""
    if attempt < 1:
        raise ValueError("attempt is 1-based")
    ceiling = min(max_s, base_s * 2 ** (attempt - 1))
    return (rng or random).uniform(0, ceiling)
