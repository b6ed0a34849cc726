"""GET /readyz of an API process names each dependency ok / degraded / down: the database
down makes it unready (503); a dead Redis or a chain whose RPC endpoints all fail only
degrades it (200); no URL secret appears in the answer or in /metrics."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import require_service
from tests.support.pg_cluster import PostgresCluster, require_initdb
from tests.support.server import free_port
from tests.support.stack import running_stack
from tokenforge.cache import open_cache
from tokenforge.chains.rpc.endpoints import EndpointConfig
from tokenforge.chains.rpc.pool import RpcPool
from tokenforge.errors import TransientError

pytestmark = pytest.mark.integration


async def test_every_dependency_is_named_and_ok(settings):
    async with running_stack(settings, start=False) as (_, client):
        resp = await client.get("/readyz")
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "ok"
    assert {"database", "broker"} <= set(body["checks"])
    assert {f"chain:{c}" for c in settings.chains} <= set(body["checks"])
    for check in body["checks"].values():
        assert check["status"] == "ok" and check["error"] is None and check["latency_ms"] >= 0


async def test_a_dead_redis_degrades_but_keeps_the_api_ready(settings):
    url = f"redis://:cache-password@127.0.0.1:{free_port()}/0"  # nothing listens there
    async with running_stack(settings, start=False) as (container, client):
        container.cache = open_cache(url, timeout_s=0.2)
        resp = await client.get("/readyz")
        metrics = (await client.get("/metrics")).text
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "degraded"
    assert body["checks"]["cache"]["status"] == "down"
    assert body["checks"]["database"]["status"] == "ok"
    assert "cache-password" not in resp.text
    assert 'tokenforge_dependency_up{dependency="cache"} 0.0' in metrics


async def test_a_live_redis_is_ok(settings):
    require_service("Redis", "127.0.0.1", 6379)
    async with running_stack(settings, start=False) as (container, client):
        container.cache = open_cache("redis://127.0.0.1:6379/0", timeout_s=1.0)
        resp = await client.get("/readyz")
    assert resp.json()["checks"]["cache"]["status"] == "ok"


async def test_open_breakers_of_a_json_rpc_chain_degrade_readiness_without_showing_the_key(settings):
    secret_url = f"http://127.0.0.1:{free_port()}/v3/SECRETKEY123"  # refuses connections
    settings.chains = {"ethereum": {"network": "testnet", "endpoints": [secret_url]}, "solana": "embedded"}
    settings.public_url = "https://forge.example"  # a testnet deployment needs one
    pool = RpcPool("ethereum", [EndpointConfig(url=secret_url, timeout_s=1.0)], failure_threshold=1, reset_after_s=60)
    try:
        with pytest.raises(TransientError):
            await pool.call("eth_chainId")
        async with running_stack(settings, start=False) as (container, client):
            container.pools["ethereum"] = pool
            resp = await client.get("/readyz")
            metrics = (await client.get("/metrics")).text
    finally:
        await pool.close()
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "degraded"
    assert body["checks"]["chain:ethereum"]["status"] == "down"
    assert body["checks"]["chain:solana"]["status"] == "ok"
    assert "SECRETKEY123" not in resp.text and "SECRETKEY123" not in metrics
    label = pool.labels[0]
    assert f'tokenforge_rpc_breaker_open{{chain="ethereum",endpoint="{label}"}} 1.0' in metrics
    assert f'tokenforge_rpc_requests_total{{chain="ethereum",endpoint="{label}",outcome="error"}}' in metrics


@pytest.mark.slow
async def test_the_database_down_makes_the_api_unready_within_the_timeout(settings):
    require_initdb()
    with PostgresCluster() as pg:
        settings.database_url = pg.url
        async with running_stack(settings, start=False) as (_, client):
            assert (await client.get("/readyz")).status_code == 200
            await asyncio.to_thread(pg.stop)
            resp = await client.get("/readyz")
            assert resp.status_code == 503
            body = resp.json()
            assert body["status"] == "unavailable"
            assert body["checks"]["database"]["status"] == "down"
            assert body["checks"]["database"]["latency_ms"] < 3000
            assert body["checks"]["broker"]["status"] == "ok"
            assert (await client.get("/healthz")).status_code == 200  # alive, just not ready
            await asyncio.to_thread(pg.start)
            assert (await client.get("/readyz")).status_code == 200
