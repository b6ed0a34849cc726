"""Queue depth and outbox backlog, sampled into gauges.

``tokenforge_queue_depth{topic}`` (messages ready in the broker for each launch topic, when
the queue backend can tell: its optional ``async depth(topic) -> int``),
``tokenforge_outbox_pending`` and ``tokenforge_outbox_lag_seconds`` (unsent due rows and the
age of the oldest: one SQL statement). Relay, worker and sweeper processes sample
periodically (:meth:`BacklogSampler.run`, started by the health server); the API samples
when ``/metrics`` is scraped. A failed sample (database or broker down) leaves the gauges
as they were: ``tokenforge_dependency_up``, refreshed by the same sample, reports the outage.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Collection
from typing import TYPE_CHECKING

from tokenforge.jobs.handlers.launch import launch_topic
from tokenforge.observability.metrics import OUTBOX_LAG, OUTBOX_PENDING, QUEUE_DEPTH
from tokenforge.observability.readiness import REQUIRED, check_readiness
from tokenforge.store.repositories import outbox as outbox_repo

if TYPE_CHECKING:
    from tokenforge.bootstrap import Container

log = logging.getLogger(__name__)


class BacklogSampler:
    def __init__(
        self,
        container: Container,
        *,
        timeout_s: float = 1.0,
        readiness_checks: Collection[str] = (),
        required: Collection[str] = REQUIRED,
    ) -> None:
        """``readiness_checks``: dependencies to check at each sample as well, so that
        ``tokenforge_dependency_up`` is current at every scrape, not only when someone asks
        ``/readyz``."""
        self._container = container
        self._topics = [launch_topic(chain) for chain in container.settings.chains]
        self._timeout_s = timeout_s
        self._checks = tuple(readiness_checks)
        self._required = tuple(required)

    async def sample(self) -> None:
        """Read the outbox backlog and every launch topic's depth (and the readiness checks),
        each within the timeout."""
        probes: list[Awaitable[object]] = [self._outbox(), *(self._depth(topic) for topic in self._topics)]
        if self._checks:
            probes.append(
                check_readiness(
                    self._container, checks=self._checks, required=self._required, timeout_s=self._timeout_s
                )
            )
        await asyncio.gather(*probes)

    async def run(self, interval_s: float = 15.0) -> None:
        """Sample every ``interval_s`` until cancelled."""
        while True:
            await self.sample()
            await asyncio.sleep(interval_s)

    async def _outbox(self) -> None:
        now_s = time.time()
        try:
            async with asyncio.timeout(self._timeout_s), self._container.sessions() as session:
                pending, oldest = await outbox_repo.backlog(session, now_s=now_s)
        except Exception as exc:  # noqa: BLE001 - a sample is best effort; readiness reports outages
            log.debug("outbox backlog not sampled: %s", type(exc).__name__)
            return
        OUTBOX_PENDING.set(pending)
        OUTBOX_LAG.set(max(0.0, now_s - oldest) if oldest is not None else 0.0)

    async def _depth(self, topic: str) -> None:
        depth = getattr(self._container.queue, "depth", None)
        if depth is None:
            return
        try:
            async with asyncio.timeout(self._timeout_s):
                ready = await depth(topic)
        except Exception as exc:  # noqa: BLE001 - as above
            log.debug("queue depth of %s not sampled: %s", topic, type(exc).__name__)
            return
        if ready is not None:
            QUEUE_DEPTH.labels(topic).set(ready)
