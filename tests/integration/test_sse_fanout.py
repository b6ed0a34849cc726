"""A job's SSE stream on any API process: events written by a worker process reach a stream
served by another API process than the one that accepted the launch, woken by PostgreSQL
``NOTIFY`` (not by the fallback re-read, set here to a minute)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest
from solders.keypair import Keypair

from tests.conftest import fresh_postgres_database
from tests.support.devnet import running_devnet
from tests.support.processes import devnet_solana, migrate, operator_key, rabbit_vhost, role_env, running, start

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: The streams' fallback re-read interval in this test: an event that only it delivered
#: would arrive a minute late.
EVENT_POLL_S = 60
#: Longer than a graceful stop of the API takes: a stream must not hold it this long.
DRAIN_TIMEOUT_S = 30


def _follow(base_url: str, job_id: str) -> list[tuple[float, dict]]:
    """Every event of the job's stream with its arrival time, until the final one."""
    events: list[tuple[float, dict]] = []
    with httpx.stream("GET", f"{base_url}/v1/jobs/{job_id}/events", timeout=3 * EVENT_POLL_S) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line.startswith("data:"):
                events.append((time.monotonic(), json.loads(line[5:])))
                if events[-1][1]["final"]:
                    break
    return events


def _fan_out(tmp_path: Path, database_url: str, broker_url: str) -> None:
    with running_devnet(tmp_path, chains="solana", in_memory=True) as devnet:
        env = role_env(
            tmp_path / "data",
            database_url,
            broker_url=broker_url,
            chains=devnet_solana(devnet.solana_url),
            event_poll_s=EVENT_POLL_S,
            drain_timeout_s=DRAIN_TIMEOUT_S,
        )
        assert migrate(env).returncode == 0
        auth = {"Authorization": f"Bearer {operator_key(env)}"}
        # the worker first: it creates the shared data directory's keys
        worker = start("worker", ["worker"], env, tmp_path).wait_ready()
        relay = start("relay", ["relay"], env, tmp_path)
        api1, api2 = start("api1", ["api"], env, tmp_path), start("api2", ["api"], env, tmp_path)
        with running(worker, relay, api1, api2):
            for proc in (relay, api1, api2):
                proc.wait_ready()
            body = {"chain": "solana", "name": "Fan Out", "symbol": "FAN", "supply": 10}
            body["creator"] = str(Keypair().pubkey())
            started = time.monotonic()
            accepted = httpx.post(f"{api1.base_url}/v1/tokens", json=body, headers=auth, timeout=30)
            assert accepted.status_code == 202, accepted.text
            events = _follow(api2.base_url, accepted.json()["job"]["id"])
            statuses = [e["status"] for _, e in events]
            assert statuses == ["queued", "submitting", "submitted", "confirmed"], statuses
            took_s = events[-1][0] - started
            # three events came after the stream started waiting: by re-reads alone that
            # is at least three minutes
            assert took_s < EVENT_POLL_S / 2, f"final event after {took_s:.1f} s: not woken by NOTIFY"

            # with no worker, a launch stays queued: its stream stays open until the
            # API process serving it stops, and then ends at once with a reconnect hint
            worker.terminate()
            assert worker.wait() == 0, worker.stderr()[-2000:]
            body["symbol"] = "WAIT"
            waiting = httpx.post(f"{api1.base_url}/v1/tokens", json=body, headers=auth, timeout=30).json()["job"]["id"]
            with httpx.stream("GET", f"{api2.base_url}/v1/jobs/{waiting}/events", timeout=60) as resp:
                lines = resp.iter_lines()
                assert next(line for line in lines if line.startswith("data:"))
                stopping = time.monotonic()
                api2.terminate()
                rest = list(lines)
            assert any(line.startswith("retry:") for line in rest), rest
            assert api2.wait() == 0, api2.stderr()[-2000:]
            stopped_s = time.monotonic() - stopping
            assert stopped_s < DRAIN_TIMEOUT_S / 2, f"an open stream held the shutdown for {stopped_s:.1f} s"
            for proc in (api1, relay):
                proc.terminate()
            for proc in (api1, relay):
                assert proc.wait() == 0, f"{proc.name}: {proc.stderr()[-2000:]}"


async def test_a_launch_accepted_by_one_api_process_streams_live_from_another(tmp_path):
    async with fresh_postgres_database() as database_url:
        with rabbit_vhost() as broker_url:
            await asyncio.to_thread(_fan_out, tmp_path, database_url, broker_url)
