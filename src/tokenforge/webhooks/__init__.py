"""Signed webhooks: callbacks for a creator's launches (registration in
:mod:`~tokenforge.webhooks.service`, job events → deliveries in
:mod:`~tokenforge.webhooks.dispatcher`, sending in :mod:`~tokenforge.webhooks.delivery`,
the signature in :mod:`~tokenforge.webhooks.signing`).

:class:`Webhooks` is what a process runs of them: the worker role runs the dispatcher and
the delivery consumer (both safe with many worker processes); the API uses the secret box
to seal new secrets and wakes the dispatcher of its own process after a registration.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tokenforge.jobs.policy import RetryPolicy
from tokenforge.jobs.ports import STOP_TIMEOUT_S, JobQueue
from tokenforge.keys.ports import KeyStore
from tokenforge.net.ssrf import Network, parse_networks
from tokenforge.outbound import Budgets
from tokenforge.store.feed import ChangeFeed
from tokenforge.webhooks.delivery import DeliveryHandler
from tokenforge.webhooks.dispatcher import Dispatcher
from tokenforge.webhooks.secrets import SecretBox

#: Deliveries one worker process sends at once (one at a time per webhook).
DELIVERY_PREFETCH = 16
#: The dispatcher's fallback poll (it is woken at once by this process's job events).
DISPATCH_POLL_MIN_S = 0.25


@dataclass
class Webhooks:
    box: SecretBox
    dispatcher: Dispatcher
    handler: DeliveryHandler
    allowed_networks: tuple[Network, ...]
    _task: asyncio.Task | None = field(default=None, repr=False)

    async def start(self, queue: JobQueue, *, requeue_pending: bool = False) -> None:
        """Run the dispatcher and consume delivery messages (the worker role).

        ``requeue_pending``: the queue is new and empty (the in-process queue of a process
        that just started), so every pending delivery is asked for again first (a
        duplicate of a message still on its way is dropped by the delivery's attempt
        count)."""
        if requeue_pending:
            await self.dispatcher.requeue_pending()
        await self.handler.start(queue, prefetch=DELIVERY_PREFETCH)
        self._task = asyncio.create_task(self.dispatcher.run(), name="webhook-dispatcher")

    async def stop(self, *, timeout_s: float | None = STOP_TIMEOUT_S) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.handler.stop(timeout_s=timeout_s)


def build_webhooks(
    settings,
    sessions: async_sessionmaker[AsyncSession],
    keystore: KeyStore,
    *,
    policy: RetryPolicy,
    wake_relay: Callable[[], None],
    feed: ChangeFeed,
) -> Webhooks:
    """Wire webhooks from ``settings`` (:class:`~tokenforge.config.Settings`)."""
    allowed = parse_networks(settings.outbound_allowed_networks)
    box = SecretBox(keystore)
    dispatcher = Dispatcher(
        sessions, wake_relay=wake_relay, poll_s=max(settings.relay_poll_s, DISPATCH_POLL_MIN_S), policy=policy
    )
    feed.subscribe(dispatcher.on_committed)
    handler = DeliveryHandler(
        sessions,
        box,
        timeout_s=settings.webhook_timeout_s,
        max_attempts=settings.webhook_max_attempts,
        policy=policy,
        retry_base_s=settings.webhook_retry_base_s,
        retry_max_s=settings.webhook_retry_max_s,
        per_host=Budgets(settings.webhook_max_rps_per_host, burst=max(1, int(settings.webhook_max_rps_per_host))),
        allowed_networks=allowed,
        wake_relay=wake_relay,
    )
    return Webhooks(box, dispatcher, handler, allowed)
