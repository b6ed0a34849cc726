"""Dead letters as an operator meets them: listed and re-queued from the CLI and the
operator API, and a message the broker gave up on shows up as a dead job once the sweeper
has reconciled it with the database."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest
from sqlalchemy import select, update

from tests.support.auth import bearer, issue_key
from tests.support.fake_deployer import FakeDeployer
from tests.support.stack import running_stack, wait_final
from tokenforge.auth.principal import Role
from tokenforge.config import Settings
from tokenforge.errors import TransientError
from tokenforge.jobs.handlers.launch import launch_topic
from tokenforge.jobs.policy import RetryPolicy
from tokenforge.jobs.sweeper import Sweeper
from tokenforge.store.db import make_engine
from tokenforge.store.migrate import current_revision
from tokenforge.store.models import JobEventRow, JobRow

pytestmark = pytest.mark.integration

CREATOR = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
TOPIC = launch_topic("ethereum")
#: The stack's client carries an operator key already (tests/support/stack.py).
OPS: dict[str, str] = {}


def body(i: int = 0) -> dict:
    return {"chain": "ethereum", "name": f"Dead {i}", "symbol": f"DED{i}", "supply": 5, "creator": CREATOR}


async def launch_dead(client, fake: FakeDeployer, n: int = 1) -> list[str]:
    """``n`` launches that die (max_attempts=1, signing fails once each)."""
    ids = []
    for i in range(n):
        fake.fail_next("sign", TransientError("rpc down", code="rpc_unavailable"))
        job_id = (await client.post("/v1/tokens", json=body(i))).json()["job"]["id"]
        assert (await wait_final(client, job_id))["status"] == "dead"
        ids.append(job_id)
    return ids


async def cli(data_dir, *args: str) -> tuple[int, str, str]:
    """``tokenforge jobs ...`` in its own process, without blocking the stack's event loop."""
    env = {**os.environ, "TOKENFORGE_DATA_DIR": str(data_dir), "COLUMNS": "200"}
    env.pop("TOKENFORGE_DATABASE_URL", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tokenforge.cli.main",
        "jobs",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode(), err.decode()


@pytest.fixture
def dead_settings(settings):
    settings.max_attempts = 1
    return settings


@pytest.mark.slow
async def test_cli_lists_dead_jobs_and_retries_one_then_all(dead_settings):
    fake = FakeDeployer()
    async with running_stack(dead_settings, {"ethereum": fake}) as (_, client):
        first, second, third = await launch_dead(client, fake, 3)

        code, out, err = await cli(dead_settings.data_dir, "dead")
        assert code == 0, err
        assert "3 dead jobs" in out and all(j in out for j in (first, second, third))
        assert "rpc_unavailable" in out

        code, out, err = await cli(dead_settings.data_dir, "retry", first)
        assert code == 0, err
        assert f"re-queued {first}" in out
        job = await wait_final(client, first)
        assert job["status"] == "confirmed" and job["attempts"] == 0
        assert (await client.get(f"/v1/tokens/{job['token_id']}")).json()["status"] == "live"

        code, _, err = await cli(dead_settings.data_dir, "retry", first)
        assert code == 1 and "not dead" in err

        code, out, err = await cli(dead_settings.data_dir, "retry", "--all")
        assert code == 0, err
        assert "re-queued 2 dead jobs" in out
        assert [(await wait_final(client, j))["status"] for j in (second, third)] == ["confirmed"] * 2
        code, out, _ = await cli(dead_settings.data_dir, "dead")
        assert "no dead jobs" in out


@pytest.mark.slow
async def test_cli_refuses_an_unmigrated_database_and_does_not_migrate_it(tmp_path):
    code, _, err = await cli(tmp_path / "fresh", "dead")
    assert code == 1
    assert "tokenforge migrate" in err
    code, _, err = await cli(tmp_path / "fresh", "retry", "--all")
    assert code == 1 and "tokenforge migrate" in err
    engine = make_engine(Settings(data_dir=tmp_path / "fresh").resolved_database_url)
    try:
        assert await current_revision(engine) is None
    finally:
        await engine.dispose()


def dead_letter_sweeper(container) -> Sweeper:
    """A sweeper of ``container`` that reconciles the launch topic's dead letters."""
    return Sweeper(
        container.sessions,
        policy=RetryPolicy(),
        interval_s=60,
        stale_s=60,
        wake_relay=container.wake_relay,
        feed=container.feed,
        queue=container.queue,
        dead_letter_topics=[TOPIC],
    )


async def test_operator_api_needs_an_operator_lists_and_retries(dead_settings):
    fake = FakeDeployer()
    async with running_stack(dead_settings, {"ethereum": fake}) as (container, client):
        (dead,) = await launch_dead(client, fake)
        alive = (await client.post("/v1/tokens", json=body(9))).json()["job"]["id"]
        assert (await wait_final(client, alive))["status"] == "confirmed"

        creator = bearer(await issue_key(container.sessions, Role.CREATOR, wallet="0x" + "ab" * 20))
        for headers in (creator,):
            refused = await client.get("/v1/ops/dead-letters", headers=headers)
            assert refused.status_code == 403 and refused.json()["type"] == "/problems/forbidden"
            assert (await client.post(f"/v1/ops/jobs/{dead}/retry", headers=headers)).status_code == 403
        for headers in ({"Authorization": ""}, {"Authorization": "Bearer nope"}):
            refused = await client.get("/v1/ops/dead-letters", headers=headers)
            assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
            assert (await client.post(f"/v1/ops/jobs/{dead}/retry", headers=headers)).status_code == 401

        page = (await client.get("/v1/ops/dead-letters", headers=OPS)).json()
        assert page["next_cursor"] is None
        (item,) = page["items"]
        assert item["job_id"] == dead and item["chain"] == "ethereum" and item["attempts"] == 1
        assert item["error"]["code"] == "rpc_unavailable" and item["died_at"]
        assert item["in_broker_dead_letters"] is False

        unknown = await client.post("/v1/ops/jobs/no-such-job/retry", headers=OPS)
        assert unknown.status_code == 404
        conflict = await client.post(f"/v1/ops/jobs/{alive}/retry", headers=OPS)
        assert conflict.status_code == 409 and conflict.json()["type"] == "/problems/job-not-dead"

        retried = await client.post(f"/v1/ops/jobs/{dead}/retry", headers=OPS)
        assert retried.status_code == 202
        assert retried.json()["status"] == "queued" and retried.json()["attempts"] == 0
        assert (await wait_final(client, dead))["status"] == "confirmed"
        assert (await client.get("/v1/ops/dead-letters", headers=OPS)).json()["items"] == []


async def test_dead_letters_page_through_every_dead_job(dead_settings):
    fake = FakeDeployer()
    async with running_stack(dead_settings, {"ethereum": fake}) as (_, client):
        ids = await launch_dead(client, fake, 3)
        seen: list[str] = []
        cursor = None
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = (await client.get("/v1/ops/dead-letters", params=params, headers=OPS)).json()
            seen += [i["job_id"] for i in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == ids[::-1], "most recently dead first, each once"
        bad = await client.get("/v1/ops/dead-letters", params={"cursor": "bm9wZQ"}, headers=OPS)
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.cursor"


async def dead_letter(queue, job_id: str) -> None:
    """Publish a launch message for ``job_id`` whose handler always fails, until the broker
    gives up on it (its delivery limit)."""

    async def crash(_delivery) -> None:
        raise RuntimeError("this step crashes every time")

    await queue.publish(TOPIC, {"job_id": job_id}, message_id=f"{job_id}:crash")
    sub = await queue.consume(TOPIC, crash, prefetch=1)
    await queue.join(TOPIC, timeout_s=30)
    await sub.stop()
    assert [d.body["job_id"] for d in await queue.dead_letters(TOPIC)] == [job_id]


async def test_a_message_the_broker_dead_lettered_makes_its_job_dead(any_db_settings):
    async with running_stack(any_db_settings, {"ethereum": FakeDeployer()}, start=False) as (container, client):
        accepted = (await client.post("/v1/tokens", json=body())).json()
        job_id = accepted["job"]["id"]
        queue = container.queue
        await dead_letter(queue, job_id)
        assert (await client.get("/v1/ops/dead-letters", headers=OPS)).json()["items"] == []

        sweeper = dead_letter_sweeper(container)
        report = await sweeper.sweep()
        assert report.dead_lettered == 1 and report.reenqueued == 0
        assert await queue.dead_letters(TOPIC) == []
        job = (await client.get(f"/v1/jobs/{job_id}")).json()
        assert job["status"] == "dead" and job["error"]["code"] == "delivery_limit"
        assert (await client.get(f"/v1/tokens/{accepted['token']['id']}")).json()["status"] == "failed"
        async with container.sessions() as s:
            last = (
                (
                    await s.execute(
                        select(JobEventRow).where(JobEventRow.job_id == job_id).order_by(JobEventRow.id.desc())
                    )
                )
                .scalars()
                .first()
            )
        limit = queue.delivery_limit
        assert last is not None and f"after {limit} deliveries" in last.message
        assert last.data["deliveries"] == limit
        (item,) = (await client.get("/v1/ops/dead-letters", headers=OPS)).json()["items"]
        assert item["job_id"] == job_id and item["error"]["code"] == "delivery_limit"
        assert item["in_broker_dead_letters"] is False

        # a dead letter of a job that is already final: listed until reconciled, then acked
        await dead_letter(queue, job_id)
        (item,) = (await client.get("/v1/ops/dead-letters", headers=OPS)).json()["items"]
        assert item["in_broker_dead_letters"] is True
        assert (await sweeper.sweep()).dead_lettered == 0
        assert await queue.dead_letters(TOPIC) == []


async def test_a_dead_letter_stays_in_the_broker_until_its_job_is_recorded_dead(settings):
    async with running_stack(settings, {"ethereum": FakeDeployer()}, start=False) as (container, client):
        job_id = (await client.post("/v1/tokens", json=body())).json()["job"]["id"]
        await dead_letter(container.queue, job_id)
        sweeper = dead_letter_sweeper(container)

        async def database_down(_letters):
            raise TransientError("database down", code="db_unavailable")

        sweeper._bury = database_down  # type: ignore[method-assign]
        assert (await sweeper.sweep()).dead_lettered == 0, "the rest of the pass still runs"
        assert [d.body["job_id"] for d in await container.queue.dead_letters(TOPIC)] == [job_id]
        assert (await client.get(f"/v1/jobs/{job_id}")).json()["status"] == "queued"


async def test_a_dead_letter_never_buries_a_launch_whose_transaction_may_still_land(settings):
    """Only a queued job with nothing signed is dead when the broker gives up on its message:
    a broadcast transaction can still be mined, so its job is left for the sweeper."""
    async with running_stack(settings, {"ethereum": FakeDeployer()}, start=False) as (container, client):
        job_id = (await client.post("/v1/tokens", json=body())).json()["job"]["id"]
        async with container.sessions() as s:
            await s.execute(
                update(JobRow).where(JobRow.id == job_id).values(status="submitted", tx_id="0x" + "ab" * 32)
            )
            await s.commit()
        await dead_letter(container.queue, job_id)
        sweeper = dead_letter_sweeper(container)
        assert (await sweeper.sweep()).dead_lettered == 0
        assert await container.queue.dead_letters(TOPIC) == [], "the dead letter is settled"
        assert (await client.get(f"/v1/jobs/{job_id}")).json()["status"] == "submitted"
