"""A per-endpoint circuit breaker: stop sending to an endpoint that keeps failing.

States:

* ``closed`` — calls flow; ``failure_threshold`` consecutive failures open the breaker.
* ``open`` — :meth:`CircuitBreaker.allow` refuses until ``reset_after_s`` has passed since
  the breaker opened.
* ``half_open`` — the pause is over: exactly one trial call at a time is let through. Its
  success closes the breaker (failure count reset), its failure re-opens it for a new pause.

Every call :meth:`~CircuitBreaker.allow` let through must end in :meth:`record_success`,
:meth:`record_failure` or (when the call was abandoned, e.g. cancelled) :meth:`release`,
so a half-open trial slot is never leaked. The clock is injectable, so tests need no sleeps.
The breaker is meant for one event loop (no locking); it never blocks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

BreakerState = Literal["closed", "open", "half_open"]

#: called as ``on_change(old_state, new_state)`` after every state change
StateListener = Callable[[BreakerState, BreakerState], None]


class CircuitBreaker:
    """Counts consecutive failures of one endpoint and decides whether to call it."""

    __slots__ = (
        "_clock",
        "_consecutive_failures",
        "_on_change",
        "_opened",
        "_opened_at",
        "_trial_in_flight",
        "failure_threshold",
        "reset_after_s",
    )

    def __init__(
        self,
        *,
        failure_threshold: int = 3,
        reset_after_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: StateListener | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be >= 1")
        if reset_after_s < 0:
            raise ValueError("reset_after_s must be >= 0")
        self.failure_threshold = failure_threshold
        self.reset_after_s = reset_after_s
        self._clock = clock
        self._on_change = on_change
        self._opened = False
        self._opened_at: float | None = None
        self._consecutive_failures = 0
        self._trial_in_flight = False

    # -- read-only view ------------------------------------------------------------------

    @property
    def state(self) -> BreakerState:
        """``closed``, ``open``, or ``half_open`` once the pause of an open breaker is over."""
        if not self._opened:
            return "closed"
        if self.remaining_s() > 0:
            return "open"
        return "half_open"

    @property
    def consecutive_failures(self) -> int:
        return self._consecutive_failures

    @property
    def opened_at(self) -> float | None:
        """Clock reading when the breaker last opened; None while closed."""
        return self._opened_at if self._opened else None

    @property
    def trial_in_flight(self) -> bool:
        """True while the one half-open trial call is out."""
        return self._trial_in_flight

    def remaining_s(self) -> float:
        """Seconds until an open breaker lets a trial call through (0 when closed or due)."""
        if not self._opened or self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self.reset_after_s - self._clock())

    def can_attempt(self) -> bool:
        """Whether :meth:`allow` would say yes now, without taking the trial slot."""
        state = self.state
        if state == "closed":
            return True
        return state == "half_open" and not self._trial_in_flight

    # -- decisions and outcomes ----------------------------------------------------------

    def allow(self) -> bool:
        """May a call go out now? In half-open this takes the single trial slot."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._trial_in_flight:
            self._trial_in_flight = True
            return True
        return False

    def record_success(self) -> None:
        """A good answer: close the breaker and forget past failures."""
        old_state = self.state
        self._trial_in_flight = False
        self._consecutive_failures = 0
        self._opened = False
        self._opened_at = None
        self._notify(old_state, "closed")

    def record_failure(self) -> None:
        """An endpoint fault: count it; open (or re-open, with a new pause) when due."""
        old_state = self.state
        self._trial_in_flight = False
        self._consecutive_failures += 1
        if self._opened or self._consecutive_failures >= self.failure_threshold:
            self._opened = True
            self._opened_at = self._clock()
            self._notify(old_state, "open")

    def release(self) -> None:
        """The call that :meth:`allow` let through ended without an outcome (e.g. cancelled)."""
        self._trial_in_flight = False

    def _notify(self, old_state: BreakerState, new_state: BreakerState) -> None:
        if self._on_change is not None and old_state != new_state:
            self._on_change(old_state, new_state)

    def __repr__(self) -> str:
        return (
            f"CircuitBreaker(state={self.state!r}, consecutive_failures={self._consecutive_failures}, "
            f"failure_threshold={self.failure_threshold}, reset_after_s={self.reset_after_s})"
        )
