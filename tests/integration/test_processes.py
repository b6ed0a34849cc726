"""The processes of a distributed deployment, run for real: ``tokenforge migrate``, ``api``,
``relay``, ``worker`` and ``sweeper`` on PostgreSQL (and RabbitMQ, the devnet's Solana)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from solders.keypair import Keypair

from tests.conftest import fresh_postgres_database
from tests.support.devnet import running_devnet
from tests.support.processes import (
    devnet_solana,
    migrate,
    operator_key,
    rabbit_vhost,
    role_env,
    running,
    start,
    tokenforge,
)
from tokenforge.domain.jobs import FINAL
from tokenforge.store.migrate import head_revision

pytestmark = pytest.mark.integration

CLK_TCK = os.sysconf("SC_CLK_TCK")
FINAL_VALUES = {s.value for s in FINAL}


def test_worker_help_lists_its_options():
    done = subprocess.run(
        tokenforge("worker", "--help"), capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "200"}
    )
    assert done.returncode == 0, done.stderr
    for option in ("--chains", "--concurrency", "--health-port", "--no-sweeper"):
        assert option in done.stdout, done.stdout


@pytest.mark.slow
async def test_api_refuses_an_unmigrated_database_until_migrate_has_run(tmp_path):
    async with fresh_postgres_database() as url:
        env = role_env(tmp_path / "data", url)
        refused = await asyncio.to_thread(
            subprocess.run, tokenforge("api", "--port", "1"), env=env, capture_output=True, text=True, timeout=120
        )
        assert refused.returncode != 0
        (line,) = [x for x in refused.stderr.splitlines() if "cannot start" in x]
        assert "schema_not_migrated" in line and "run `tokenforge migrate` first" in line

        migrated = await asyncio.to_thread(migrate, env)
        assert migrated.returncode == 0, migrated.stderr
        assert migrated.stdout.strip() == f"database at revision {head_revision()}"
        again = await asyncio.to_thread(migrate, env)
        assert again.returncode == 0 and again.stdout == migrated.stdout, "migrating twice changes nothing"

        api = start("api", ["api", "--workers", "2"], env, tmp_path)
        with running(api):
            await asyncio.to_thread(api.wait_ready)
            async with httpx.AsyncClient(base_url=api.base_url, timeout=10) as client:
                assert (await client.get("/v1/tokens")).status_code == 200, "it reads the database"
            api.terminate()
            assert await asyncio.to_thread(api.wait) == 0, api.stderr()[-2000:]


def test_migrate_reports_an_unreachable_database_in_one_line_without_its_password(tmp_path):
    url = "postgresql+asyncpg://tokenforge:s3cret-pw@127.0.0.1:1/tokenforge"
    done = subprocess.run(
        tokenforge("migrate"), env=role_env(tmp_path / "data", url), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert "s3cret-pw" not in done.stdout + done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("cannot migrate the database postgresql+asyncpg://tokenforge:***@127.0.0.1:1/tokenforge")


@pytest.mark.parametrize("role", ["relay", "worker"])
def test_relay_and_worker_refuse_the_in_process_broker(tmp_path, role):
    env = role_env(tmp_path / "data", f"sqlite+aiosqlite:///{tmp_path / 'tf.db'}", broker_url="memory://")
    done = subprocess.run(tokenforge(role), env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "needs a shared broker" in done.stderr and "TOKENFORGE_BROKER_URL" in done.stderr


@pytest.mark.slow
async def test_sweeper_process_starts_on_a_migrated_database_and_stops_on_sigterm(tmp_path):
    async with fresh_postgres_database() as url:
        env = role_env(tmp_path / "data", url)
        assert (await asyncio.to_thread(migrate, env)).returncode == 0
        sweeper = start("sweeper", ["sweeper"], env, tmp_path)
        with running(sweeper):
            await asyncio.to_thread(sweeper.wait_ready)
            assert sweeper.stdout().splitlines() == ["tokenforge sweeper ready"]
            sweeper.terminate()
            assert await asyncio.to_thread(sweeper.wait) == 0, sweeper.stderr()[-2000:]


def _cpu_s(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


@pytest.mark.slow
async def test_an_idle_relay_uses_almost_no_cpu(tmp_path):
    async with fresh_postgres_database() as url:
        with rabbit_vhost() as broker_url:
            env = role_env(tmp_path / "data", url, broker_url=broker_url)
            assert (await asyncio.to_thread(migrate, env)).returncode == 0
            relay = start("relay", ["relay", "--health-port", "0"], env, tmp_path)
            with running(relay):
                await asyncio.to_thread(relay.wait_ready)
                (line,) = relay.stdout().splitlines()
                assert line == f"tokenforge relay ready; health on {relay.health_url}"
                async with httpx.AsyncClient(base_url=relay.health_url, timeout=10) as client:
                    assert (await client.get("/healthz")).status_code == 200
                    ready = await client.get("/readyz")
                    assert ready.status_code == 200, ready.text
                before = _cpu_s(relay.process.pid)
                await asyncio.sleep(2.0)  # the thing measured: two seconds of nothing to do
                used_s = _cpu_s(relay.process.pid) - before
                assert used_s < 0.2, f"an idle relay used {used_s:.2f} s of CPU in 2 s"
                relay.terminate()
                assert await asyncio.to_thread(relay.wait) == 0


def _launch(base_url: str, i: int, key: str) -> str:
    body = {"chain": "solana", "name": f"Drain {i}", "symbol": f"DRN{i}", "supply": 10}
    body["creator"] = str(Keypair().pubkey())
    reply = httpx.post(f"{base_url}/v1/tokens", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert reply.status_code == 202, reply.text
    return reply.json()["job"]["id"]


def _statuses(base_url: str, job_ids: list[str]) -> list[str]:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        return [client.get(f"/v1/jobs/{j}").json()["status"] for j in job_ids]


def _wait_for_progress(base_url: str, job_id: str) -> None:
    """Until the job's stream shows a worker took it (its first event after ``queued``)."""
    with httpx.stream("GET", f"{base_url}/v1/jobs/{job_id}/events", timeout=120) as resp:
        for line in resp.iter_lines():
            if line.startswith("data:") and json.loads(line[5:])["status"] != "queued":
                return


def _wait_final(base_url: str, job_id: str) -> str:
    with httpx.stream("GET", f"{base_url}/v1/jobs/{job_id}/events", timeout=180) as resp:
        for line in resp.iter_lines():
            if line.startswith("data:"):
                event = json.loads(line[5:])
                if event["final"]:
                    return event["status"]
    raise AssertionError(f"the stream of {job_id} ended before the job was final")


DRAIN_TIMEOUT_S = 10
#: Enough that a worker stopped right after its first step cannot have finished them all
#: (at 40 a fast devnet sometimes confirmed every one before the SIGTERM arrived).
LAUNCHES = 100


def _drain_scenario(tmp_path: Path, database_url: str, broker_url: str) -> None:
    with running_devnet(tmp_path, chains="solana", in_memory=True) as devnet:
        env = role_env(
            tmp_path / "data",
            database_url,
            broker_url=broker_url,
            chains=devnet_solana(devnet.solana_url),
            drain_timeout_s=DRAIN_TIMEOUT_S,
        )
        assert migrate(env).returncode == 0
        key = operator_key(env)
        relay, api = start("relay", ["relay"], env, tmp_path), start("api", ["api"], env, tmp_path)
        with running(relay, api):
            relay.wait_ready()
            api.wait_ready()
            with ThreadPoolExecutor(8) as pool:  # queued before a worker runs: many in flight at once
                job_ids = list(pool.map(lambda i: _launch(api.base_url, i, key), range(LAUNCHES)))
            first = start("worker1", ["worker", "--chains", "solana", "--concurrency", "16"], env, tmp_path)
            with running(first):
                first.wait_ready()
                _wait_for_progress(api.base_url, job_ids[0])
                stopping = time.monotonic()
                first.terminate()
                assert first.wait(DRAIN_TIMEOUT_S + 30) == 0, first.stderr()[-3000:]
                stopped_s = time.monotonic() - stopping
                assert stopped_s < DRAIN_TIMEOUT_S + 5, f"the worker took {stopped_s:.1f} s to stop"
                statuses = _statuses(api.base_url, job_ids)
                assert any(s not in FINAL_VALUES for s in statuses), f"nothing was left to hand over: {statuses}"

            second = start("worker2", ["worker", "--chains", "solana"], env, tmp_path)
            with running(second):
                second.wait_ready()
                outcomes = [_wait_final(api.base_url, j) for j in job_ids]
                assert outcomes == ["confirmed"] * LAUNCHES, outcomes
                for proc in (second, relay, api):
                    proc.terminate()
                for proc in (second, relay, api):
                    assert proc.wait() == 0, f"{proc.name}: {proc.stderr()[-2000:]}"


@pytest.mark.slow
async def test_a_worker_stopped_with_launches_in_flight_drains_and_a_second_worker_confirms_them(tmp_path):
    async with fresh_postgres_database() as url:
        with rabbit_vhost() as broker_url:
            await asyncio.to_thread(_drain_scenario, tmp_path, url, broker_url)


@pytest.mark.slow
async def test_a_worker_started_while_the_broker_is_down_waits_for_it_and_stops_on_sigterm(tmp_path):
    """A supervisor may start a worker before RabbitMQ: it says it waits, does not exit, and
    still drains and exits 0 on SIGTERM."""
    async with fresh_postgres_database() as url:
        env = role_env(tmp_path / "data", url, broker_url="amqp://guest:guest@127.0.0.1:1/")
        assert (await asyncio.to_thread(migrate, env)).returncode == 0
        worker = start("worker", ["worker", "--chains", "solana"], env, tmp_path)
        with running(worker):
            deadline = time.monotonic() + 60
            while "waits for the broker" not in worker.stderr():
                assert worker.process.poll() is None, worker.stderr()[-2000:]
                assert time.monotonic() < deadline, worker.stderr()[-2000:]
                await asyncio.sleep(0.1)
            assert "guest:guest" not in worker.stderr()
            worker.terminate()
            assert await asyncio.to_thread(worker.wait) == 0, worker.stderr()[-2000:]
            assert "ready" not in worker.stdout()
