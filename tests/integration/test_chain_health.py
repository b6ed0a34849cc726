"""RPC endpoint and key health reach every API process: a worker process reports what it
sees to the database, and an API process that never opened the chain answers
``GET /v1/chains`` from there, each entry with its reporter and age."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from tokenforge.api.app import create_app
from tokenforge.bootstrap import build_container
from tokenforge.chains.health import ChainHealthReporter
from tokenforge.chains.registry import DeployerRegistry
from tokenforge.chains.rpc.endpoints import EndpointConfig
from tokenforge.chains.rpc.pool import RpcPool
from tokenforge.store.db import utcnow
from tokenforge.store.models import ChainHealthRow

pytestmark = pytest.mark.integration

API_KEY = "k3y-in-the-path"
PRIMARY = f"https://rpc.example.com/v3/{API_KEY}"
BACKUP = "http://127.0.0.1:1"
KEYS = [
    {"address": "0x00000000000000000000000000000000000000A1", "role": "deployer", "balance_base_units": "7",
     "enabled": False, "alert": "balance below minimum; fund this key"},
    {"address": "0x00000000000000000000000000000000000000B2", "role": "deployer", "balance_base_units": "10",
     "enabled": True, "alert": None},
]  # fmt: skip


class HealthyDeployer:
    """Just what the health report reads from an opened deployer."""

    def health(self) -> dict[str, Any]:
        return {"factory": "0x00000000000000000000000000000000000000F0", "keys": [dict(k) for k in KEYS]}

    async def close(self) -> None:
        pass


async def _opened() -> HealthyDeployer:
    return HealthyDeployer()


@pytest.fixture
def health_settings(any_db_settings):
    any_db_settings.chains = {"ethereum": {"network": "testnet", "endpoints": [PRIMARY, BACKUP]}, "solana": "embedded"}
    any_db_settings.public_url = "https://forge.example"  # a testnet deployment needs one
    any_db_settings.chain_health_interval_s = 5
    return any_db_settings


async def chains(container) -> dict[str, dict]:
    transport = httpx.ASGITransport(app=create_app(container=container))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        resp = await client.get("/v1/chains")
    assert resp.status_code == 200
    assert API_KEY not in resp.text, "an endpoint's API key must never be shown"
    return {c["chain"]: c for c in resp.json()["items"]}


async def test_an_api_process_reports_what_a_worker_process_saw(health_settings):
    worker = await build_container(health_settings, deployers=DeployerRegistry({"ethereum": _opened}))
    api = await build_container(health_settings, deployers=DeployerRegistry({}), migrate=False, sees_all_writes=False)
    pool = RpcPool("ethereum", [EndpointConfig(PRIMARY), EndpointConfig(BACKUP)], failure_threshold=2)
    try:
        await worker.deployers.get("ethereum")
        for _ in range(2):  # the primary keeps failing: its breaker opens in the worker
            pool._endpoints[0].breaker.record_failure()
        pool._endpoints[0].last_error = "HTTP 503"
        reporter = ChainHealthReporter(worker.sessions, worker.deployers, {"ethereum": pool}, interval_s=5)
        assert await reporter.report() == 4

        eth = (await chains(api))["ethereum"]
        assert eth["open_in_this_process"] is False
        primary, backup = eth["endpoints"]
        assert primary["label"] == "https://rpc.example.com/…" and primary["state"] == "open"
        assert primary["last_error"] == "HTTP 503" and primary["consecutive_failures"] == 2
        assert backup["label"] == "http://127.0.0.1:1" and backup["state"] == "closed"
        assert [k["address"] for k in eth["keys"]] == [k["address"] for k in KEYS], "in the configured order"
        assert eth["keys"][0]["alert"] == "balance below minimum; fund this key"
        for entry in eth["endpoints"] + eth["keys"]:
            assert entry["reporter"] == reporter.reporter and entry["stale"] is False
            assert 0 <= entry["age_s"] < 60 and entry["reported_at"].endswith("Z")
        assert eth["alerts"] == [
            f"{KEYS[0]['address']}: balance below minimum; fund this key",
            "endpoint https://rpc.example.com/… is open",
        ]
        async with api.sessions() as s:
            stored = (await s.execute(select(ChainHealthRow))).scalars().all()
        assert API_KEY not in repr([(r.name, r.state) for r in stored])

        # the endpoint answers again; the next report overwrites the row
        pool._endpoints[0].breaker.record_success()
        await reporter.report()
        eth = (await chains(api))["ethereum"]
        assert [e["state"] for e in eth["endpoints"]] == ["closed", "closed"]
        assert (await chains(api))["solana"]["endpoints"] == []
    finally:
        await pool.close()
        await api.close()
        await worker.close()


async def test_entries_nobody_reported_lately_are_flagged_stale(health_settings):
    worker = await build_container(health_settings, deployers=DeployerRegistry({"ethereum": _opened}))
    api = await build_container(health_settings, deployers=DeployerRegistry({}), migrate=False, sees_all_writes=False)
    pool = RpcPool("ethereum", [EndpointConfig(PRIMARY)])
    try:
        await worker.deployers.get("ethereum")
        await ChainHealthReporter(worker.sessions, worker.deployers, {"ethereum": pool}, interval_s=5).report()
        async with worker.sessions() as s:  # the worker stopped reporting a minute ago
            await s.execute(update(ChainHealthRow).values(updated_at=utcnow() - timedelta(seconds=60)))
            await s.commit()
        eth = (await chains(api))["ethereum"]
        assert all(e["stale"] and e["age_s"] >= 60 for e in eth["endpoints"] + eth["keys"])
        assert "https://rpc.example.com/…: no report for 60 s" in eth["alerts"]
    finally:
        await pool.close()
        await api.close()
        await worker.close()


async def test_an_endpoint_taken_out_of_the_configuration_disappears(health_settings):
    worker = await build_container(health_settings, deployers=DeployerRegistry({"ethereum": _opened}))
    two = RpcPool("ethereum", [EndpointConfig(PRIMARY), EndpointConfig(BACKUP)])
    one = RpcPool("ethereum", [EndpointConfig(BACKUP)])
    try:
        await worker.deployers.get("ethereum")
        await ChainHealthReporter(worker.sessions, worker.deployers, {"ethereum": two}, interval_s=5).report()
        async with worker.sessions() as s:
            await s.execute(update(ChainHealthRow).values(updated_at=utcnow() - timedelta(seconds=60)))
            await s.commit()
        await ChainHealthReporter(worker.sessions, worker.deployers, {"ethereum": one}, interval_s=5).report()
        async with worker.sessions() as s:
            names = set(
                (await s.execute(select(ChainHealthRow.name).where(ChainHealthRow.kind == "endpoint"))).scalars()
            )
        assert names == {"http://127.0.0.1:1"}
    finally:
        await two.close()
        await one.close()
        await worker.close()
