"""Wake-ups for job changes (SSE streams wait on these).

Writers of this process wake streams through the change feed (:meth:`JobEventHub.on_committed`);
on PostgreSQL, writers of every other process wake them through ``NOTIFY`` on the job
events channel (:meth:`JobEventHub.on_notification`, fed by
:class:`~tokenforge.store.notify.PgListener`). Streams also re-read the database on a
timeout, so a lost wake-up only delays an event: :meth:`JobEventHub.recheck_s` is that
timeout, longer while notifications from other processes flow.

When the server stops, :func:`close_streams` ends every stream of the process at once (its
client resumes on another process with ``Last-Event-ID``) instead of holding the shutdown.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenforge.store.group_commit import Changes

#: The fallback re-read interval of a stream while cross-process notifications flow.
NOTIFIED_RECHECK_S = 5.0

_HUBS: weakref.WeakSet[JobEventHub] = weakref.WeakSet()


def close_streams() -> None:
    """The server is shutting down: every stream of this process ends now."""
    for hub in list(_HUBS):
        hub.close()


class JobEventHub:
    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        #: whether job events of other processes are announced (a LISTEN connection is up)
        self.cross_process = False
        #: the process is stopping: streams end instead of waiting
        self.closed = False
        _HUBS.add(self)

    def close(self) -> None:
        self.closed = True
        self.notify_all()

    def on_committed(self, changes: list[Changes]) -> None:
        """:class:`~tokenforge.store.feed.ChangeFeed` subscriber: wake the streams of every
        job that got an event."""
        for c in changes:
            for event in c.events:
                self.notify(event["job_id"])

    def on_notification(self, job_id: str | None) -> None:
        """A job event was committed by some process (``None``: notifications may have been
        missed, so every stream looks again)."""
        if job_id is None:
            self.notify_all()
        else:
            self.notify(job_id)

    def set_cross_process(self, flowing: bool) -> None:
        self.cross_process = flowing

    def recheck_s(self, poll_s: float) -> float:
        """How long a stream waits before re-reading the database: ``poll_s``, or at least
        :data:`NOTIFIED_RECHECK_S` while other processes' events are announced."""
        return max(poll_s, NOTIFIED_RECHECK_S) if self.cross_process else poll_s

    def notify(self, job_id: str) -> None:
        for event in self._waiters.get(job_id, ()):
            event.set()

    def notify_all(self) -> None:
        for events in self._waiters.values():
            for event in events:
                event.set()

    @contextmanager
    def watch(self, job_id: str) -> Iterator[asyncio.Event]:
        """An event set by every wake-up of ``job_id`` while the block runs (and at once when
        the hub is closed). Clear it *before* reading the database, then wait on it with
        :meth:`wait_for`: a wake-up that lands while the stream reads or writes is kept."""
        event = asyncio.Event()
        if self.closed:
            event.set()
        self._waiters[job_id].add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get(job_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    self._waiters.pop(job_id, None)

    @staticmethod
    async def wait_for(event: asyncio.Event, timeout_s: float) -> bool:
        """Wait until ``event`` is set or the timeout; True when it was set."""
        try:
            async with asyncio.timeout(timeout_s):  # not wait_for: it can lose a cancellation (3.11)
                await event.wait()
            return True
        except TimeoutError:
            return False

    async def wait(self, job_id: str, timeout_s: float) -> bool:
        """Wait until the next wake-up of ``job_id`` or the timeout; True when woken."""
        with self.watch(job_id) as event:
            return await self.wait_for(event, timeout_s)
