"""In-process wake-ups for job changes (SSE streams wait on these).

Cross-process deployments still work: listeners also re-read the database on a timeout.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenforge.store.group_commit import Changes


class JobEventHub:
    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)

    def on_committed(self, changes: list[Changes]) -> None:
        """:class:`~tokenforge.store.feed.ChangeFeed` subscriber: wake the streams of every
        job that got an event."""
        for c in changes:
            for event in c.events:
                self.notify(event["job_id"])

    def notify(self, job_id: str) -> None:
        for event in self._waiters.pop(job_id, ()):
            event.set()

    async def wait(self, job_id: str, timeout_s: float) -> bool:
        """Wait until ``notify(job_id)`` or the timeout; True when notified."""
        event = asyncio.Event()
        self._waiters[job_id].add(event)
        try:
            await asyncio.wait_for(event.wait(), timeout_s)
            return True
        except TimeoutError:
            return False
        finally:
            waiters = self._waiters.get(job_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    self._waiters.pop(job_id, None)
