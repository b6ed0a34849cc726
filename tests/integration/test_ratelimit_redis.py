"""Rate limits shared through Redis: two real ``tokenforge api`` processes on PostgreSQL with
``TOKENFORGE_CACHE_URL`` pointing at one Redis spend one budget between them."""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest

from tests.conftest import require_service
from tests.support.processes import migrate, role_env, running, start

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
BUDGET = 5


async def test_two_api_processes_share_one_write_budget_per_client_ip(tmp_path, postgres_url):
    require_service("Redis", REDIS_HOST, REDIS_PORT)
    # each run is its own client (a fresh address forwarded by the trusted local proxy), so
    # counts left in Redis by an earlier run or another test never meet this one's
    client_ip = f"198.18.{random.randrange(256)}.{random.randrange(1, 255)}"
    env = role_env(
        tmp_path / "data",
        postgres_url,
        cache_url=f"redis://{REDIS_HOST}:{REDIS_PORT}/0",
        rate_limit_writes_ip=f"{BUDGET}/minute",
        trusted_proxies="127.0.0.1",
    )
    migrated = await asyncio.to_thread(migrate, env)
    assert migrated.returncode == 0, migrated.stderr
    api1, api2 = start("api1", ["api"], env, tmp_path), start("api2", ["api"], env, tmp_path)
    with running(api1, api2):
        await asyncio.gather(asyncio.to_thread(api1.wait_ready), asyncio.to_thread(api2.wait_ready))
        headers = {"X-Forwarded-For": client_ip}
        async with (
            httpx.AsyncClient(base_url=api1.base_url, headers=headers, timeout=10) as one,
            httpx.AsyncClient(base_url=api2.base_url, headers=headers, timeout=10) as two,
        ):
            # writes without a credential: refused by authentication (401) unless the limit
            # refuses them first (429); both kinds spend the budget
            answers = await asyncio.gather(*(c.post("/v1/tokens", json={}) for _ in range(6) for c in (one, two)))
            other_client = await one.post("/v1/tokens", json={}, headers={"X-Forwarded-For": "198.19.0.1"})
            reads = await two.get("/v1/tokens")

    statuses = [a.status_code for a in answers]
    assert set(statuses) <= {401, 429}, statuses
    assert statuses.count(401) == BUDGET, f"the two processes together accepted {statuses.count(401)}: {statuses}"
    refused = [a for a in answers if a.status_code == 429]
    assert {a.request.url.port for a in refused} == {httpx.URL(api1.base_url).port, httpx.URL(api2.base_url).port}
    assert all(int(a.headers["Retry-After"]) >= 1 for a in refused)
    assert refused[0].json()["detail"] == f"writes per client IP: {BUDGET} per 1 minute"
    assert other_client.status_code == 401, "another client has its own budget"
    assert reads.status_code == 200
