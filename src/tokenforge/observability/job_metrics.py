"""Launch outcomes and time in each job state, counted from the change feed.

:func:`install_job_metrics` subscribes to a process's
:class:`~tokenforge.store.feed.ChangeFeed`, so only committed changes count:

* ``tokenforge_launches_total{chain,outcome}``: ``accepted`` for every new launch job,
  ``confirmed`` / ``failed`` / ``dead`` for every transition into that final state.
* ``tokenforge_job_state_seconds{chain,state}``: when a job leaves a state, the time since
  it entered it — if this process saw it enter. A bounded map remembers the latest state
  and time of each unfinished job; a job whose previous transition happened in another
  process (accepted by an API process, advanced by another worker) is not observed for
  that state, and the oldest entries are forgotten beyond ``max_jobs``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from tokenforge.domain.jobs import FINAL
from tokenforge.observability.metrics import JOB_STATE_SECONDS, LAUNCHES
from tokenforge.store.feed import ChangeFeed
from tokenforge.store.group_commit import Changes

_FINAL_VALUES = frozenset(s.value for s in FINAL)


class JobMetrics:
    """The change-feed subscriber behind :func:`install_job_metrics`."""

    def __init__(self, *, max_jobs: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._max_jobs = max_jobs
        self._clock = clock
        #: job id → (state it is in, clock reading when it entered it)
        self._entered: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def __call__(self, batch: list[Changes]) -> None:
        now = self._clock()
        for changes in batch:
            for job in changes.new_jobs:
                LAUNCHES.labels(job["chain"], "accepted").inc()
            for job_id, chain, status in changes.transitions:
                self._transition(job_id, chain, status, now)

    def _transition(self, job_id: str, chain: str, status: str, now: float) -> None:
        previous = self._entered.pop(job_id, None)
        if previous is not None:
            JOB_STATE_SECONDS.labels(chain, previous[0]).observe(now - previous[1])
        if status in _FINAL_VALUES:
            LAUNCHES.labels(chain, status).inc()
            return
        self._entered[job_id] = (status, now)
        if len(self._entered) > self._max_jobs:
            self._entered.popitem(last=False)

    def tracked(self) -> int:
        """Unfinished jobs whose current state this process saw them enter."""
        return len(self._entered)


def install_job_metrics(feed: ChangeFeed) -> JobMetrics:
    """Count launches and time in state from ``feed`` (once per process and feed)."""
    subscriber = JobMetrics()
    feed.subscribe(subscriber)
    return subscriber
