"""The relay publishes committed outbox rows once they are due, and marks them sent."""

from __future__ import annotations

import time

from tokenforge.jobs.outbox import OutboxRelay
from tokenforge.store.db import make_engine, make_sessionmaker, utcnow
from tokenforge.store.migrate import upgrade_to_head
from tokenforge.store.repositories import outbox as outbox_repo


class RecordingQueue:
    def __init__(self, fail_after: int | None = None):
        self.published: list[str] = []
        self.fail_after = fail_after

    async def publish(self, topic, body, *, message_id, headers=None):
        if self.fail_after is not None and len(self.published) >= self.fail_after:
            raise ConnectionError("broker went away")
        self.published.append(message_id)


async def _setup(any_db_settings):
    engine = make_engine(any_db_settings.resolved_database_url)
    await upgrade_to_head(engine)
    return engine, make_sessionmaker(engine)


async def test_due_rows_published_once_and_delayed_rows_wait(any_db_settings):
    engine, sessions = await _setup(any_db_settings)
    try:
        async with sessions() as s:
            now = time.time()
            outbox_repo.add(s, topic="t", message_id="now", payload={}, available_at_s=now, now=utcnow())
            outbox_repo.add(s, topic="t", message_id="later", payload={}, available_at_s=now + 3600, now=utcnow())
            await s.commit()
        queue = RecordingQueue()
        relay = OutboxRelay(sessions, queue, poll_s=0.1)
        assert await relay.relay_once() == 1
        assert await relay.relay_once() == 0
        assert queue.published == ["now"]
        async with sessions() as s:
            assert await outbox_repo.pending_count(s) == 1
    finally:
        await engine.dispose()


async def test_rows_published_before_a_broker_failure_are_marked_the_rest_retried(any_db_settings):
    engine, sessions = await _setup(any_db_settings)
    try:
        async with sessions() as s:
            for i in range(5):
                outbox_repo.add(s, topic="t", message_id=f"m{i}", payload={}, available_at_s=time.time(), now=utcnow())
            await s.commit()
        flaky = RecordingQueue(fail_after=2)
        relay = OutboxRelay(sessions, flaky, poll_s=0.1)
        try:
            await relay.relay_once()
        except ConnectionError:
            pass
        assert flaky.published == ["m0", "m1"]
        healthy = RecordingQueue()
        await OutboxRelay(sessions, healthy, poll_s=0.1).relay_once()
        assert healthy.published == ["m2", "m3", "m4"], "no loss, no duplicate of the marked rows"
    finally:
        await engine.dispose()
