"""Server-Sent Events of the market's feed (the ``market_events`` table) on any API process.

The indexer inserts ``market_events`` rows (kinds ``token``, ``trade``, ``graduation``,
``rollback``); on PostgreSQL a trigger ``NOTIFY``s :data:`~tokenforge.store.notify.MARKET_EVENTS_CHANNEL`
at commit (no payload). :class:`MarketStreams` is the process's wake-up hub for them: the
container's :class:`~tokenforge.store.notify.PgListener` calls
:meth:`MarketStreams.on_notification`, which wakes every open stream, and each stream
re-reads the table after the last id it sent (so a notification is only a wake-up, and a
lost one only delays an event until the fallback re-read: ``event_poll_s``, or
:data:`~tokenforge.jobs.events.NOTIFIED_RECHECK_S` while notifications flow). On SQLite
there are no notifications: streams re-read every ``event_poll_s``.

:func:`follow` is one stream: from ``Last-Event-ID`` (replayed from the table) or else
from the newest event, optionally one token's events only (with its chain's rollbacks),
``: keep-alive`` comments while idle, and a ``retry:`` hint when the database fails or the
process stops. :class:`MarketStreams` is a :class:`~tokenforge.jobs.events.JobEventHub`,
so :func:`tokenforge.jobs.events.close_streams` (the server's graceful stop) ends these
streams too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tokenforge.api.problems import retry_after_s
from tokenforge.errors import TransientError
from tokenforge.jobs.events import JobEventHub
from tokenforge.store.models import MarketEventRow
from tokenforge.store.repositories import market as market_repo

#: Idle time after which a stream sends a ``: keep-alive`` comment.
KEEPALIVE_S = 15.0
#: How soon a client whose stream ended because the server stops should reconnect.
RECONNECT_MS = 500
#: Events read per database round trip (a long replay takes several).
BATCH = 500
#: The largest id a 64-bit column holds; a larger ``Last-Event-ID`` means "after all".
MAX_EVENT_ID = 2**63 - 1
_ALL = "*"


class MarketStreams(JobEventHub):
    """Wake-ups of this process's market streams (see the module docstring)."""

    def on_notification(self, payload: str | None) -> None:
        """A market event was committed somewhere (or notifications may have been missed):
        every stream looks again (the notification names no token)."""
        self.notify_all()

    def wake(self) -> None:
        """Wake every stream (a writer of this process committed market events)."""
        self.notify_all()


def parse_last_event_id(value: str | None) -> int | None:
    """The id to resume after, or None (absent or not decimal digits: start live)."""
    if value and value.isascii() and value.isdigit():
        return min(int(value), MAX_EVENT_ID)
    return None


def event_json(ev: MarketEventRow) -> dict[str, Any]:
    return {
        "id": ev.id,
        "kind": ev.kind,
        "chain": ev.chain,
        "token_address": ev.token_address,
        "block_number": ev.block_number,
        "payload": ev.payload,
        "at": ev.created_at.isoformat().replace("+00:00", "Z"),
    }


def sse_event(ev: MarketEventRow) -> bytes:
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (ev.id, ev.kind.encode(), orjson.dumps(event_json(ev)))


async def follow(
    sessions: async_sessionmaker[AsyncSession],
    hub: MarketStreams,
    *,
    after: int | None,
    poll_s: float,
    is_disconnected: Callable[[], Awaitable[bool]],
    chain: str | None = None,
    token_address: str | None = None,
    keepalive_s: float = KEEPALIVE_S,
) -> AsyncIterator[bytes]:
    """The SSE bytes of one stream: events after ``after`` (None: after the newest now),
    then each new one; see the module docstring. Ends when the client is gone, with a
    ``retry:`` line when the database fails or the server stops."""
    with hub.watch(_ALL) as woken:
        if after is None:
            try:
                async with sessions() as session:
                    after = await market_repo.last_event_id(session)
            except TransientError as exc:
                yield b"retry: %d\n\n" % (retry_after_s(exc) * 1000)
                return
            yield b": live\n\n"  # the response starts at once (clients see the stream is open)
        idle_s = 0.0
        while True:
            woken.clear()  # before the read: a wake-up during the read or the writes is kept
            try:
                async with sessions() as session:
                    events = await market_repo.events_after(
                        session, after, chain=chain, token_address=token_address, limit=BATCH
                    )
            except TransientError as exc:
                yield b"retry: %d\n\n" % (retry_after_s(exc) * 1000)
                return
            for ev in events:
                yield sse_event(ev)
                after = ev.id
            if len(events) == BATCH:
                continue  # a replay: read on at once
            if await is_disconnected():
                return
            if hub.closed:  # the server is stopping: resume on another process
                yield b"retry: %d\n\n" % RECONNECT_MS
                return
            recheck_s = min(hub.recheck_s(poll_s), keepalive_s)
            woke = await hub.wait_for(woken, recheck_s)
            idle_s = 0.0 if woke or events else idle_s + recheck_s
            if idle_s >= keepalive_s:
                idle_s = 0.0
                yield b": keep-alive\n\n"
