"""Outbound call budgets (tokenforge/outbound.py) and their use by the RPC pool: calls over
an endpoint's max_rps wait their turn, none fails, and local networks have no budget."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest
from aiohttp import web

from tokenforge.bootstrap import _endpoints
from tokenforge.chains.rpc.endpoints import EndpointConfig
from tokenforge.chains.rpc.pool import RpcPool
from tokenforge.config import DEFAULT_PUBLIC_RPC_RPS, ChainSettings
from tokenforge.outbound import Budgets, CallBudget, Unlimited


async def test_calls_over_the_budget_wait_their_turn_and_none_fails():
    calls, rate_per_s = 30, 20.0
    budget = CallBudget(rate_per_s)
    started_at: list[float] = []

    async def call() -> None:
        await budget.acquire()
        started_at.append(time.monotonic())

    began = time.monotonic()
    results = await asyncio.gather(*(call() for _ in range(calls)), return_exceptions=True)
    elapsed_s = time.monotonic() - began

    assert not any(isinstance(r, BaseException) for r in results)
    assert elapsed_s >= (calls - budget.burst) / rate_per_s - 0.01  # 29 gaps of 50 ms: >= 1.44 s
    assert elapsed_s < (calls / rate_per_s) * 1.5, "waiters sleep until their slot, not longer"
    gaps = [b - a for a, b in itertools.pairwise(started_at)]
    assert min(gaps) >= 1 / rate_per_s - 0.01, "never two calls closer than 1/rate"


async def test_a_burst_goes_at_once_and_the_rest_keeps_the_rate():
    budget = CallBudget(10.0, burst=5)
    began = time.monotonic()
    await asyncio.gather(*(budget.acquire() for _ in range(5)))
    assert time.monotonic() - began < 0.05
    await asyncio.gather(*(budget.acquire() for _ in range(3)))
    assert time.monotonic() - began >= 0.3 - 0.01


async def test_a_cancelled_waiter_gives_its_slot_back():
    budget = CallBudget(5.0)
    await budget.acquire()
    waiter = asyncio.create_task(budget.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert budget.delay_s() == pytest.approx(0.2, abs=0.02), "the next call waits one slot, not two"


async def test_budgets_per_key_are_independent_and_idle_ones_are_forgotten():
    now = [100.0]
    budgets = Budgets(rate_per_s=2.0, max_keys=2, clock=lambda: now[0])
    await asyncio.gather(budgets.acquire("a.example"), budgets.acquire("b.example"))  # no wait: no clock moves
    assert budgets.for_key("a.example").delay_s() == pytest.approx(0.5), "a second call to a host waits"
    assert budgets.for_key("c.example").delay_s() == 0, "another host is not slowed"
    now[0] += 0.5  # a and b have refilled: idle
    await budgets.acquire("c.example")  # c is busy until 0.5 s from now
    budgets.for_key("d.example")  # over max_keys: idle budgets go, busy ones stay
    assert len(budgets) == 2
    assert budgets.for_key("c.example").delay_s() == pytest.approx(0.5), "c kept its schedule"


async def test_no_budget_never_waits():
    began = time.monotonic()
    unlimited = Unlimited()
    await asyncio.gather(*(unlimited.acquire() for _ in range(1000)))
    assert time.monotonic() - began < 0.5


def test_bad_budgets_are_refused():
    with pytest.raises(ValueError, match="rate_per_s"):
        CallBudget(0)
    with pytest.raises(ValueError, match="burst"):
        CallBudget(1.0, burst=0)


def test_endpoint_budgets_default_by_network():
    url = "https://rpc.example.com/v3/secret"
    testnet = ChainSettings(network="testnet", endpoints=[url, {"url": url, "max_rps": 3}])
    local = ChainSettings(network="local", endpoints=[url, {"url": url, "max_rps": 7.5}])
    assert [e.max_rps for e in _endpoints(testnet)] == [DEFAULT_PUBLIC_RPC_RPS, 3]
    assert [e.max_rps for e in _endpoints(local)] == [None, 7.5]
    with pytest.raises(ValueError, match="max_rps"):
        EndpointConfig(url=url, max_rps=0)


async def test_the_pool_spaces_calls_to_an_endpoint_by_its_budget():
    answered: list[float] = []

    async def rpc(request: web.Request) -> web.Response:
        answered.append(time.monotonic())
        body = await request.json()
        return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": "0x1"})

    app = web.Application()
    app.router.add_post("/", rpc)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    calls, rate_per_s = 12, 40.0
    try:
        async with RpcPool("ethereum", [EndpointConfig(f"http://127.0.0.1:{port}/", max_rps=rate_per_s)]) as pool:
            began = time.monotonic()
            answers = await asyncio.gather(*(pool.call("eth_chainId") for _ in range(calls)))
            elapsed_s = time.monotonic() - began
            health = pool.health()
    finally:
        await runner.cleanup()
    assert [a["result"] for a in answers] == ["0x1"] * calls, "no call failed"
    assert elapsed_s >= (calls - 1) / rate_per_s - 0.01
    assert health[0]["max_rps"] == rate_per_s and health[0]["failures"] == 0
