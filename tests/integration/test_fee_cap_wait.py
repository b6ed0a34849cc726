"""Waiting on fees never kills a launch.

A launch is signed and broadcast under the chain's fee cap and is not mined; it cannot be
replaced with higher fees because the cap forbids them (on Hardhat and on TokenForge's own
devnet: the cap is just above what the first transaction pays; on Hardhat also: the
market's base fee rises above the cap). The job must stay submitted (saying why, once), use
no attempt through many rounds of checks and re-broadcasts, and be confirmed exactly once
when its transaction is mined.
"""

from __future__ import annotations

import pytest
from eth_account import Account

from tests.support.bodies import launch_body
from tests.support.devnet import running_devnet
from tests.support.hardhat import rpc, running_hardhat, set_automine
from tests.support.stack import running_stack, wait_final

pytestmark = pytest.mark.slow

GWEI = 10**9
CAP_WEI = 40 * GWEI


def node_chain(url: str, cap_wei: int = CAP_WEI) -> dict:
    return {
        "ethereum": {
            "network": "local",
            "endpoints": [url],
            "dev_fund_base_units": 10**21,
            "stuck_after_s": 0.2,
            "max_fee_per_gas_wei": cap_wei,
            "priority_fee_wei": GWEI,
            "keeper_interval_s": 0.2,
        }
    }


def base_fee_wei(url: str) -> int:
    return int(rpc(url, "eth_getBlockByNumber", ["latest", False])["baseFeePerGas"], 16)


def set_base_fee_and_mine(url: str, base_fee_wei: int) -> None:
    rpc(url, "hardhat_setNextBlockBaseFeePerGas", [hex(base_fee_wei)])
    rpc(url, "evm_mine", [])


async def events_of(container, job_id: str) -> list:
    from tokenforge.store.repositories.jobs import events_after

    async with container.sessions() as s:
        return await events_after(s, job_id, 0)


async def wait_for_events(container, job_id: str, predicate, count: int = 1, timeout_s: float = 60.0) -> list:
    import asyncio

    async def follow():
        while True:
            rows = await events_of(container, job_id)
            if sum(1 for r in rows if predicate(r)) >= count:
                return rows
            await container.hub.wait(job_id, 1.0)

    try:
        return await asyncio.wait_for(follow(), timeout_s)
    except TimeoutError:
        messages = [r.message for r in await events_of(container, job_id)]
        raise AssertionError(f"the expected event did not come; the job's events: {messages}") from None


@pytest.fixture(params=["hardhat", "devnet"])
def node_url(request, tmp_path):
    if request.param == "hardhat":
        with running_hardhat() as node:
            yield node.url
        return
    with running_devnet(tmp_path, chains="ethereum") as devnet:
        yield devnet.evm_url("ethereum")


async def held_then_mined(settings, node_url: str, *, after_broadcast=None, before_mining=None) -> None:
    """Post a launch with automine off; once it is broadcast call ``after_broadcast``; wait
    until it is held back and has been re-broadcast three times, check it used no attempt,
    call ``before_mining``, mine, and check it is confirmed with the held transaction."""
    settings.max_confirm_checks = (
        12  # ~0.5 s of checks (more than stuck_after_s): many rounds of "not mined yet; send again" in a short test
    )
    settings.max_attempts = 2
    async with running_stack(settings) as (container, client):
        set_automine(node_url, False)
        resp = await client.post("/v1/tokens", json=launch_body(chain="ethereum", creator=Account.create().address))
        assert resp.status_code == 202, resp.text
        job_id = resp.json()["job"]["id"]
        await wait_for_events(container, job_id, lambda e: e.message == "transaction broadcast")
        if after_broadcast is not None:
            after_broadcast()
        await wait_for_events(container, job_id, lambda e: e.message.startswith("held back by the fee cap"))
        await wait_for_events(
            container, job_id, lambda e: "sending the recorded transaction again" in e.message, count=3
        )
        rows = await events_of(container, job_id)
        held = [r for r in rows if r.message.startswith("held back by the fee cap")]
        assert len(held) == 1, [r.message for r in rows]  # said once, not at every check
        job = (await client.get(f"/v1/jobs/{job_id}")).json()
        assert job["status"] in ("submitted", "submitting") and job["attempts"] == 0, job
        assert job["error"]["code"] == "fee_above_cap"
        if before_mining is not None:
            before_mining()
        set_automine(node_url, True)
        rpc(node_url, "evm_mine", [])
        final = await wait_final(client, job_id, timeout_s=60)
        token = (await client.get(f"/v1/tokens/{resp.json()['token']['id']}")).json()
    assert final["status"] == "confirmed" and final["attempts"] == 0 and final["error"] is None
    assert token["status"] == "live" and token["tx_id"] == job["tx_id"]  # the held transaction is the one mined


async def test_a_launch_whose_replacement_the_cap_forbids_waits_without_using_attempts(settings, node_url):
    base = base_fee_wei(node_url)
    settings.chains = node_chain(node_url, cap_wei=base + base // 2 + GWEI)  # under 2·base + tip: no room to bump
    await held_then_mined(settings, node_url)


async def test_a_launch_held_back_by_a_market_above_the_cap_waits_without_using_attempts(settings):
    with running_hardhat() as node:
        settings.chains = node_chain(node.url)
        await held_then_mined(
            settings,
            node.url,
            after_broadcast=lambda: set_base_fee_and_mine(node.url, 2 * CAP_WEI),  # the market is above the cap
            before_mining=lambda: set_base_fee_and_mine(node.url, GWEI),  # ... and comes back under it
        )
