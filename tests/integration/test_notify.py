"""PostgreSQL LISTEN/NOTIFY wake-ups, and several relays on one database.

The listener hears migration 0004's triggers (an outbox insert, a job event with its job id),
comes back by itself when its connection is killed, and tells its owner it may have missed
something. Two relays publish 500 rows exactly once between them; a relay that finds the
due rows held by another relay waits for a wake-up instead of asking again at once.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import pytest

from tests.support.bodies import fakes, launch_body
from tests.support.stack import running_stack
from tokenforge.bootstrap import build_container
from tokenforge.jobs.outbox import OutboxRelay
from tokenforge.store.db import make_engine, make_sessionmaker, utcnow
from tokenforge.store.migrate import upgrade_to_head
from tokenforge.store.models import OutboxRow
from tokenforge.store.notify import JOB_EVENTS_CHANNEL, OUTBOX_CHANNEL, PgListener, asyncpg_dsn
from tokenforge.store.repositories import outbox as outbox_repo

pytestmark = pytest.mark.integration

WAIT_S = 10.0


def test_the_listener_dsn_is_the_database_url_without_the_driver():
    dsn = asyncpg_dsn("postgresql+asyncpg://tf:p%40ss@db.example:6432/tokenforge")
    assert dsn == "postgresql://tf:p%40ss@db.example:6432/tokenforge"
    with pytest.raises(ValueError, match="PostgreSQL"):
        asyncpg_dsn("sqlite+aiosqlite:///tf.db")


@pytest.fixture
async def migrated(postgres_url):
    engine = make_engine(postgres_url)
    await upgrade_to_head(engine)
    try:
        yield postgres_url, make_sessionmaker(engine)
    finally:
        await engine.dispose()


class Heard:
    """Notifications a callback received, awaitable one by one."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()

    def __call__(self, payload: str | None) -> None:
        self.queue.put_nowait(payload)

    async def next(self) -> str | None:
        return await asyncio.wait_for(self.queue.get(), WAIT_S)

    async def next_payload(self) -> str:
        """The next notification that carries a payload (skipping reconnection markers)."""
        while (payload := await self.next()) is None:
            pass
        return payload


def _add_rows(session, count: int) -> list[str]:
    ids = [f"m-{uuid.uuid4().hex}" for _ in range(count)]
    for message_id in ids:
        outbox_repo.add(
            session,
            topic="t",
            message_id=message_id,
            payload={},
            available_at_s=time.time(),
            now=utcnow(),
        )
    return ids


async def test_outbox_inserts_and_job_events_wake_the_listener_and_a_killed_connection_comes_back(migrated, settings):
    url, _ = migrated
    settings.database_url = url
    outbox, events = Heard(), Heard()
    states: list[bool] = []
    listener = PgListener(url, on_state=states.append)
    listener.listen(OUTBOX_CHANNEL, outbox)
    listener.listen(JOB_EVENTS_CHANNEL, events)
    listener.start()
    admin = await asyncpg.connect(asyncpg_dsn(url))
    try:
        async with running_stack(settings, fakes(), start=False) as (_container, client):
            assert await listener.wait_connected(WAIT_S)
            assert await outbox.next() is None and await events.next() is None, "told to look after connecting"

            first = (await client.post("/v1/tokens", json=launch_body())).json()["job"]["id"]
            assert await events.next_payload() == first, "a job event names its job"
            assert await outbox.next() == "", "an outbox insert wakes relays"

            # an operator (or a failover) kills the listening connection
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid() AND datname = current_database()"
            )
            assert killed == 1
            assert await outbox.next() is None, "reconnected, and told it may have missed something"
            assert listener.connections == 2 and states[:3] == [True, False, True]
            second = (await client.post("/v1/tokens", json=launch_body(symbol="TWO"))).json()["job"]["id"]
            assert await events.next_payload() == second
    finally:
        await admin.close()
        await listener.stop()
    assert states[-1] is False


class CountingQueue:
    """Publishes into a list, yielding to the loop each time like a broker round trip;
    ``reached(n)`` waits until ``n`` messages were published."""

    def __init__(self) -> None:
        self.published: list[str] = []
        self._changed = asyncio.Condition()

    async def publish(self, topic, body, *, message_id, headers=None):
        await asyncio.sleep(0)
        self.published.append(message_id)
        async with self._changed:
            self._changed.notify_all()

    async def reached(self, count: int, timeout_s: float) -> None:
        async with asyncio.timeout(timeout_s), self._changed:
            await self._changed.wait_for(lambda: len(self.published) >= count)


@pytest.mark.slow
async def test_two_relays_publish_every_row_exactly_once(migrated):
    url, _ = migrated
    engines = [make_engine(url) for _ in range(2)]
    queue = CountingQueue()
    relays = [OutboxRelay(make_sessionmaker(e), queue, poll_s=0.02, batch=50) for e in engines]
    tasks = [asyncio.create_task(r.run()) for r in relays]
    try:
        async with make_sessionmaker(engines[0])() as s:
            expected = []
            for _ in range(10):  # ten commits of 50: both relays find work
                expected += _add_rows(s, 50)
                await s.commit()
        await queue.reached(len(expected), 60)
        await asyncio.sleep(0.3)  # a few more passes: a row published twice would show now
        assert sorted(queue.published) == sorted(expected), "every row once, none twice"
        assert all(r.published > 0 for r in relays), "both relays took part"
        async with make_sessionmaker(engines[0])() as s:
            assert await outbox_repo.pending_count(s) == 0
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for e in engines:
            await e.dispose()


async def test_a_relay_does_not_spin_while_another_relay_holds_the_due_rows(migrated):
    url, sessions = migrated
    async with sessions() as s:
        _add_rows(s, 5)
        await s.commit()
    holder = await asyncpg.connect(asyncpg_dsn(url))  # "the other relay", mid-batch
    queue = CountingQueue()
    relay = OutboxRelay(sessions, queue, poll_s=0.1)
    passes = 0
    relay_once = relay.relay_once

    async def counted() -> int:
        nonlocal passes
        passes += 1
        return await relay_once()

    relay.relay_once = counted  # type: ignore[method-assign]
    try:
        tx = holder.transaction()
        await tx.start()
        held = await holder.fetch(f"SELECT id FROM {OutboxRow.__tablename__} WHERE sent_at IS NULL FOR UPDATE")
        assert len(held) == 5
        task = asyncio.create_task(relay.run())
        await asyncio.sleep(1.0)  # the thing measured: how often it looks in one second
        assert queue.published == []
        assert passes <= 15, f"{passes} passes in 1 s: it spins"
        await tx.rollback()  # the other relay died: its rows are free again
        relay.notify()
        await queue.reached(5, WAIT_S)
        assert len(queue.published) == 5
        relay.stop()
        await asyncio.wait_for(task, WAIT_S)
    finally:
        await holder.close()


async def test_a_relay_process_is_woken_by_rows_another_process_commits(migrated, settings):
    """The relay polls only every ``relay_poll_s`` (here a minute) on its own; a row committed
    through another engine (as by an API process) is published at once, by NOTIFY."""
    url, other_process = migrated
    settings.database_url = url
    settings.relay_poll_s = 60.0
    container = await build_container(settings, migrate=False)
    queue = CountingQueue()
    container.relay = OutboxRelay(container.sessions, queue, poll_s=settings.relay_poll_s)
    try:
        await container.start(relay=True, worker=False)
        assert container.listener is not None and await container.listener.wait_connected(WAIT_S)
        async with other_process() as s:
            expected = _add_rows(s, 3)
            await s.commit()
        await queue.reached(3, WAIT_S)
        assert queue.published == expected
    finally:
        await container.close()
