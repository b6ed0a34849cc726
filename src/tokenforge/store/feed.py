"""What this process committed, announced after the commit: the one place where caches,
live streams and metrics learn that state changed.

Every writer of :class:`~tokenforge.store.group_commit.Changes` publishes them here once
its transaction has committed (the group committer for each batch; the sweeper, the
idempotent create path and operator actions for theirs). Subscribers must be quick and
must not raise (a failing one is logged and skipped): they drop a cache entry, wake a
stream, count a metric.

This feed is per process. Other processes learn of changes through the database
(PostgreSQL ``NOTIFY`` from triggers, :mod:`tokenforge.store.notify`) or share the cache
itself (Redis), so nothing here has to cross a process boundary.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenforge.store.group_commit import Changes

log = logging.getLogger(__name__)

Subscriber = Callable[["list[Changes]"], None]


class ChangeFeed:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def committed(self, changes: Iterable[Changes]) -> None:
        """Announce ``changes``, which are committed."""
        batch = list(changes)
        if not batch:
            return
        for subscriber in self._subscribers:
            try:
                subscriber(batch)
            except Exception:  # one subscriber's bug must not stop the others or the writer
                log.exception("change subscriber %r failed", subscriber)
