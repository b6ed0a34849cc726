"""The sweeper: a job nothing will advance is re-enqueued; a job something will advance is not.

Runs on SQLite and PostgreSQL, with the worker of the in-process stack and a chain that
confirms at once (the fake deployer), so each case shows what a user would see: the launch
is confirmed without a restart, or left alone while a live worker holds it.
"""

from __future__ import annotations

import asyncio
import sys
import time

import pytest
from sqlalchemy import func, select, update

from tests.support.fake_deployer import FakeDeployer
from tests.support.stack import running_stack, wait_final
from tokenforge.jobs.policy import RetryPolicy
from tokenforge.jobs.sweeper import Sweeper, lease_owner_id
from tokenforge.store.models import JobEventRow, JobRow, OutboxRow

CREATOR = "0x00000000000000000000000000000000000000A1"
BODY = {"chain": "ethereum", "name": "Swept", "symbol": "SWP", "supply": "1000000", "creator": CREATOR}


@pytest.fixture
def sweep_settings(any_db_settings):
    any_db_settings.sweep_interval_s = 0.1
    any_db_settings.sweep_stale_s = 0.5
    return any_db_settings


class LosingQueue:
    """Accepts the first ``n`` messages of a topic and loses them, as a dying broker would."""

    def __init__(self, queue, n: int) -> None:
        self._queue, self.lost = queue, n
        self._publish = queue.publish

    async def publish(self, topic, body, *, message_id, headers=None):
        if self.lost > 0:
            self.lost -= 1
            return
        await self._publish(topic, body, message_id=message_id, headers=headers)


async def events(container, job_id) -> list[str]:
    async with container.sessions() as s:
        return list(
            (
                await s.execute(
                    select(JobEventRow.message).where(JobEventRow.job_id == job_id).order_by(JobEventRow.id)
                )
            ).scalars()
        )


async def test_a_launch_whose_message_was_lost_is_confirmed_without_a_restart(sweep_settings):
    fake = FakeDeployer()
    async with running_stack(sweep_settings, {"ethereum": fake}) as (container, client):
        losing = LosingQueue(container.queue, 1)
        container.queue.publish = losing.publish  # type: ignore[method-assign]
        job_id = (await client.post("/v1/tokens", json=BODY)).json()["job"]["id"]
        job = await wait_final(client, job_id, timeout_s=30)
        assert losing.lost == 0 and job["status"] == "confirmed"
        assert any("re-enqueued by the sweeper" in m for m in await events(container, job_id))


async def test_a_job_leased_by_a_live_worker_or_with_a_message_due_is_left_alone(sweep_settings):
    fake = FakeDeployer()
    async with running_stack(sweep_settings, {"ethereum": fake}, start=False) as (container, client):
        leased = (await client.post("/v1/tokens", json=BODY)).json()["job"]["id"]
        due_later = (await client.post("/v1/tokens", json={**BODY, "symbol": "LATE"})).json()["job"]["id"]
        async with container.sessions() as s:
            await s.execute(
                update(JobRow)
                .where(JobRow.id == leased)
                .values(lease_owner="another-host:1:abcd", lease_until=time.time() + 60)
            )
            await s.execute(update(OutboxRow).where(OutboxRow.job_id == leased).values(sent_at=time.time() - 60))
            await s.execute(
                update(OutboxRow).where(OutboxRow.job_id == due_later).values(available_at=time.time() + 3600)
            )
            await s.commit()
        await asyncio.sleep(sweep_settings.sweep_stale_s)  # both are stale by the clock
        report = await container.sweeper.sweep()
        assert report.reenqueued == 0
        async with container.sessions() as s:
            rows = (await s.execute(select(func.count()).select_from(OutboxRow))).scalar_one()
        assert rows == 2  # nothing added


async def test_the_lease_of_an_exited_worker_process_is_released_and_its_job_resumed(sweep_settings):
    exited = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import os; print(os.getpid())", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await exited.communicate()  # waits for the process to exit
    dead_pid = int(out)
    fake = FakeDeployer()
    async with running_stack(sweep_settings, {"ethereum": fake}, start=False) as (container, client):
        job_id = (await client.post("/v1/tokens", json=BODY)).json()["job"]["id"]
        host = lease_owner_id().rsplit(":", 2)[0]
        async with container.sessions() as s:  # a worker took it, marked it submitted, and died
            await s.execute(
                update(JobRow)
                .where(JobRow.id == job_id)
                .values(lease_owner=f"{host}:{dead_pid}:dead", lease_until=time.time() + 3600)
            )
            await s.execute(update(OutboxRow).where(OutboxRow.job_id == job_id).values(sent_at=time.time()))
            await s.commit()
        report = await container.sweeper.sweep(queue_empty=True)  # what a new worker does at start
        # released and given a fresh message at once (so not counted again as re-enqueued)
        assert (report.leases_released, report.reenqueued) == (1, 0)
        await container.start()
        job = await wait_final(client, job_id, timeout_s=30)
        assert job["status"] == "confirmed"


async def test_two_sweepers_at_once_re_enqueue_each_job_once(sweep_settings):
    fake = FakeDeployer()
    async with running_stack(sweep_settings, {"ethereum": fake}, start=False) as (container, client):
        ids = [
            (await client.post("/v1/tokens", json={**BODY, "symbol": f"S{i}"})).json()["job"]["id"] for i in range(30)
        ]
        async with container.sessions() as s:  # every first message was sent and lost
            await s.execute(update(OutboxRow).values(sent_at=time.time() - 60))
            await s.commit()
        await asyncio.sleep(sweep_settings.sweep_stale_s)
        policy = RetryPolicy()
        sweepers = [
            Sweeper(
                container.sessions,
                policy=policy,
                interval_s=1,
                stale_s=sweep_settings.sweep_stale_s,
                wake_relay=lambda: None,
                batch=7,
            )
            for _ in range(2)
        ]
        reports = await asyncio.gather(*(sw.sweep() for sw in sweepers))
        assert sum(r.reenqueued for r in reports) == len(ids)
        async with container.sessions() as s:
            per_job = dict(
                (
                    await s.execute(
                        select(OutboxRow.job_id, func.count())
                        .where(OutboxRow.sent_at.is_(None))
                        .group_by(OutboxRow.job_id)
                    )
                ).all()
            )
        assert per_job == dict.fromkeys(ids, 1)
