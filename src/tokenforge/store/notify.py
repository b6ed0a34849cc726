"""PostgreSQL ``LISTEN``/``NOTIFY``: wake-ups from other processes.

Migration 0004 installs triggers that ``NOTIFY`` at commit when outbox rows are inserted
(:data:`OUTBOX_CHANNEL`, empty payload) and for every job event row
(:data:`JOB_EVENTS_CHANNEL`, the job id as payload). A :class:`PgListener` holds one
connection per process, listens on the channels it was given and calls their callbacks.

A notification is only a wake-up: the database stays the source of truth, and whoever
listens also re-reads it on a fallback timer. While the connection is down (the database
restarts, a proxy drops idle connections) notifications are lost, so the listener
reconnects with a growing backoff and, on every (re)connection, calls each callback with
``None``: "you may have missed something, look now". ``on_state(connected)`` tells the
owner whether wake-ups are flowing (to shorten its fallback poll while they are not).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sqlalchemy import make_url

log = logging.getLogger(__name__)

#: Channel names (also in migrations 0004 and 0007).
OUTBOX_CHANNEL = "tokenforge_outbox"
JOB_EVENTS_CHANNEL = "tokenforge_job_events"
MARKET_EVENTS_CHANNEL = "tokenforge_market_events"  # migration 0007

#: A channel callback: the payload, or ``None`` after a (re)connection.
Callback = Callable[[str | None], None]

CONNECT_TIMEOUT_S = 5.0
#: An idle connection is checked this often (a link that died without a word).
KEEPALIVE_S = 30.0
BACKOFF_MIN_S = 0.1
BACKOFF_MAX_S = 5.0


def asyncpg_dsn(database_url: str) -> str:
    """The plain ``postgresql://`` DSN asyncpg takes for a SQLAlchemy URL
    (``postgresql+asyncpg://…``)."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        raise ValueError("LISTEN/NOTIFY needs a PostgreSQL database URL")
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class PgListener:
    """One ``LISTEN`` connection for a process; see the module docstring.

    ``listen()`` the channels, then ``start()``; ``stop()`` closes the connection."""

    def __init__(self, database_url: str, *, on_state: Callable[[bool], None] | None = None) -> None:
        self._dsn = asyncpg_dsn(database_url)
        self._callbacks: dict[str, list[Callback]] = {}
        #: called with True when listening starts, False when the connection is lost
        self.on_state = on_state
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self.connected = False
        #: how many times a connection was established (the first one included)
        self.connections = 0

    def listen(self, channel: str, callback: Callback) -> None:
        """Call ``callback(payload)`` for each notification on ``channel`` (before ``start``)."""
        if self._task is not None:
            raise RuntimeError("listen() before start()")
        self._callbacks.setdefault(channel, []).append(callback)

    def start(self) -> None:
        """Connect and listen in the background (returns at once; see :meth:`wait_connected`)."""
        if self._task is None and self._callbacks:
            self._task = asyncio.create_task(self._run(), name="pg-listener")

    async def wait_connected(self, timeout_s: float) -> bool:
        """Wait until listening (True), or the timeout (False)."""
        try:
            await asyncio.wait_for(self._connected.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._task = None

    def _dispatch(self, channel: str, payload: str | None) -> None:
        for callback in self._callbacks.get(channel, ()):
            try:
                callback(payload)
            except Exception:  # one bad subscriber must not stop the others or the listener
                log.exception("a %s notification callback failed", channel)

    def _set_state(self, connected: bool) -> None:
        self.connected = connected
        if connected:
            self._connected.set()
        else:
            self._connected.clear()
        if self.on_state is not None:
            self.on_state(connected)

    async def _run(self) -> None:
        import asyncpg  # type: ignore[import-untyped]

        failures = 0
        while True:
            lost = asyncio.Event()
            conn = None
            try:
                conn = await asyncpg.connect(self._dsn, timeout=CONNECT_TIMEOUT_S)
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                for channel in self._callbacks:
                    await conn.add_listener(channel, lambda _c, _pid, ch, payload: self._dispatch(ch, payload))
                self.connections += 1
                if failures:
                    log.info("listening for database notifications again after %d failed attempts", failures)
                failures = 0
                self._set_state(True)
                for channel in self._callbacks:
                    self._dispatch(channel, None)  # whatever happened while not listening
                while not lost.is_set():  # a silently dead link shows only when used
                    try:
                        async with asyncio.timeout(KEEPALIVE_S):  # wait_for can lose a cancel (3.11)
                            await lost.wait()
                    except TimeoutError:
                        await conn.execute("SELECT 1", timeout=CONNECT_TIMEOUT_S)
                log.warning("the database notification connection was lost; reconnecting")
            except asyncio.CancelledError:
                raise
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                failures += 1
                if failures == 1:  # once per outage; the message names no host or password
                    log.warning("cannot listen for database notifications (%s); retrying", type(exc).__name__)
            finally:
                if self.connected:
                    self._set_state(False)
                if conn is not None and not conn.is_closed():
                    conn.terminate()
            await asyncio.sleep(min(BACKOFF_MAX_S, BACKOFF_MIN_S * 2 ** min(failures, 10)))
