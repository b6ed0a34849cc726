"""Launches through the whole stack (HTTP API → outbox → worker → JSON-RPC) on a real
Hardhat node, configured the way an operator configures a real network.

Shown here: launches on a key pool read back independently; a stuck launch replaced with
higher fees by the worker and confirmed once (both also on ``tokenforge devnet``, which
serves the same development methods without Node.js); failover to a second endpoint when
the primary fails, with the primary's breaker open in ``GET /v1/chains``; a server killed
after broadcast and before the receipt, whose successor confirms the very same transaction.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from eth_account import Account
from web3 import Web3

from tests.support.bodies import launch_body
from tests.support.devnet import running_devnet
from tests.support.erc20 import ERC20_ABI
from tests.support.fault_proxy import FaultProxy
from tests.support.hardhat import mine, running_hardhat, set_automine
from tests.support.server import crash_and_resume
from tests.support.stack import running_stack, wait_final
from tokenforge.chains.evm.codec import TOKEN_CREATED_TOPIC, launch_salt


def hardhat_chain(*endpoints, **over) -> dict:
    return {
        "ethereum": {
            "network": "local",
            "endpoints": list(endpoints),
            "dev_fund_base_units": 10**21,
            "keeper_interval_s": 0.2,
            **over,
        }
    }


def body(i: int = 0) -> dict:
    return launch_body(
        chain="ethereum",
        name=f"Node Token {i}",
        symbol=f"NT{i}",
        decimals=18,
        supply="1000",
        creator=Account.create().address,
    )


async def post(client, payload) -> dict:
    resp = await client.post("/v1/tokens", json=payload)
    assert resp.status_code == 202, resp.text
    return resp.json()


async def events_until(container, job_id: str, predicate, timeout_s: float = 60.0) -> list[dict]:
    """The job's events up to the first one matching ``predicate``; woken by the job hub.

    (An SSE stream cannot be read incrementally through httpx's in-process ASGI transport.)
    """
    from tokenforge.store.repositories.jobs import events_after

    seen: list[dict] = []

    async def follow():
        after = 0
        while True:
            async with container.sessions() as s:
                rows = await events_after(s, job_id, after)
            for row in rows:
                after = row.id
                seen.append({"status": row.status, "message": row.message, "data": row.data})
                if predicate(seen[-1]):
                    return
            await container.hub.wait(job_id, 1.0)

    await asyncio.wait_for(follow(), timeout_s)
    return seen


def read_token(url: str, address: str) -> tuple[str, int]:
    token = Web3(Web3.HTTPProvider(url)).eth.contract(address=address, abi=ERC20_ABI)
    return token.functions.symbol().call(), token.functions.totalSupply().call()


@contextmanager
def evm_node(kind: str, tmp_path) -> Iterator[str]:
    """The JSON-RPC URL of a fresh Hardhat node or ``tokenforge devnet`` (ethereum, chain id 31337)."""
    if kind == "hardhat":
        with running_hardhat() as node:
            yield node.url
    else:
        with running_devnet(tmp_path, chains="ethereum", in_memory=True) as devnet:
            yield devnet.evm_url("ethereum")


@pytest.mark.parametrize("kind", ["hardhat", "devnet"])
async def test_launches_through_the_api_with_a_key_pool(settings, tmp_path, kind):
    with evm_node(kind, tmp_path) as url:
        settings.chains = hardhat_chain(url, deployer_keys=2)
        async with running_stack(settings) as (_container, client):
            accepted = [await post(client, body(i)) for i in range(4)]
            jobs = [await wait_final(client, a["job"]["id"]) for a in accepted]
            assert [j["status"] for j in jobs] == ["confirmed"] * 4
            for a in accepted:
                token = (await client.get(f"/v1/tokens/{a['token']['id']}")).json()
                assert read_token(url, token["address"]) == (token["symbol"], 1000 * 10**18)
            chains = {c["chain"]: c for c in (await client.get("/v1/chains")).json()["items"]}
            eth = chains["ethereum"]
            assert eth["network"] == "local" and eth["open_in_this_process"]
            assert [e["state"] for e in eth["endpoints"]] == ["closed"]
            assert len(eth["keys"]) == 2 and all(k["enabled"] for k in eth["keys"])
            assert eth["alerts"] == []


@pytest.mark.parametrize("kind", ["hardhat", "devnet"])
async def test_stuck_launch_is_replaced_by_the_worker_and_confirmed_once(settings, tmp_path, kind):
    with evm_node(kind, tmp_path) as url:
        settings.chains = hardhat_chain(url, stuck_after_s=0.3)
        async with running_stack(settings) as (container, client):
            set_automine(url, False)  # nothing is mined until the test says so
            accepted = await post(client, body())
            job_id = accepted["job"]["id"]
            events = await events_until(container, job_id, lambda e: "replaced" in e["message"])
            first_tx = next(e["data"]["tx_id"] for e in events if "signed" in e["message"])
            replacement = events[-1]["data"]
            assert replacement["replaces"] == first_tx and replacement["tx_id"] != first_tx
            mine(url)
            job = await wait_final(client, job_id)
            token = (await client.get(f"/v1/tokens/{accepted['token']['id']}")).json()
    assert job["status"] == "confirmed"
    assert token["tx_id"] == replacement["tx_id"], "the replacement (higher fee) is the one mined"


async def test_failover_to_the_second_endpoint_and_the_primary_breaker_opens(settings):
    with running_hardhat() as node, FaultProxy(node.url) as primary:
        primary.set_mode("error", status=503)
        settings.chains = {
            "ethereum": {
                "network": "local",
                "dev_fund_base_units": 10**21,
                "breaker_failures": 2,
                "breaker_reset_s": 300,
                "endpoints": [{"url": primary.url, "weight": 1000}, node.url],
            }
        }
        async with running_stack(settings) as (_container, client):
            accepted = [await post(client, body(i)) for i in range(3)]
            jobs = [await wait_final(client, a["job"]["id"]) for a in accepted]
            eth = {c["chain"]: c for c in (await client.get("/v1/chains")).json()["items"]}["ethereum"]
    assert [j["status"] for j in jobs] == ["confirmed"] * 3
    assert all(j["attempts"] == 0 for j in jobs), "failover happens inside one request, not by retrying the job"
    assert primary.count() >= 2 and primary.count(upstream=True) == 0
    states = [e["state"] for e in eth["endpoints"]]
    assert states[0] == "open" and states[1] == "closed"
    assert any("open" in a for a in eth["alerts"])


async def test_an_endpoint_serving_another_chain_stops_the_chain_at_start(settings):
    """Checked on every endpoint, not only on the one the pool picks first."""
    from tokenforge.errors import PermanentError

    with running_hardhat() as node, FaultProxy(node.url) as wrong:
        wrong.swallow({"eth_chainId"}, answer=lambda _request: "0x1")  # "I am Ethereum mainnet"
        settings.chains = hardhat_chain({"url": node.url, "weight": 1000}, wrong.url)
        with pytest.raises(PermanentError) as err:
            async with running_stack(settings):
                pass
    assert err.value.code == "chain_id_mismatch" and "serves chain id 1" in err.value.message
    assert wrong.count("eth_sendRawTransaction") == 0


async def test_transaction_lost_on_the_way_is_resent_with_the_same_bytes(settings):
    """The endpoint answered the broadcast but the node never got it (dropped): the worker
    notices the node does not know the transaction and sends the recorded bytes again."""
    with running_hardhat() as node, FaultProxy(node.url) as proxy:
        settings.chains = hardhat_chain(proxy.url)
        async with running_stack(settings) as (container, client):
            proxy.swallow({"eth_sendRawTransaction"}, times=1)
            container.deployers.opened("ethereum").KNOWN_RECHECK_S = 0.2
            accepted = await post(client, body())
            job = await wait_final(client, accepted["job"]["id"])
            events = await events_until(container, job["id"], lambda e: e["status"] == "confirmed")
            token = (await client.get(f"/v1/tokens/{accepted['token']['id']}")).json()
    assert job["status"] == "confirmed" and job["attempts"] == 0
    signed = [e["data"] for e in events if "signed" in e["message"]]
    assert len(signed) == 1 and token["tx_id"] == signed[0]["tx_id"], "same transaction, never re-signed"
    assert proxy.count("eth_sendRawTransaction") >= 2 and proxy.count("eth_sendRawTransaction", upstream=True) >= 1


@pytest.mark.slow
def test_worker_killed_after_broadcast_successor_confirms_the_same_transaction(tmp_path):
    with running_hardhat() as node:
        env = {"TOKENFORGE_CHAINS": json.dumps(hardhat_chain(node.url))}
        accepted, _job, _events, token = crash_and_resume(
            tmp_path / "data",
            "ethereum",
            "after_broadcast",
            body(),
            env=env,
            before=lambda: set_automine(node.url, False),  # the broadcast stays pending until the worker is gone
            between=lambda: mine(node.url),  # the receipt exists only now, with no worker watching
        )
        job_id = accepted["job"]["id"]
        w3 = Web3(Web3.HTTPProvider(node.url))
        created = w3.eth.get_logs(
            {"fromBlock": 0, "toBlock": "latest", "topics": [TOKEN_CREATED_TOPIC, None, None, launch_salt(job_id)]}
        )
        assert len(created) == 1, "exactly one token for the job"
        assert read_token(node.url, token["address"])[1] == 1000 * 10**18


async def test_endpoint_api_keys_and_deployer_keys_never_reach_logs_events_or_health(settings, caplog):
    import logging

    from tokenforge.keys.local import LocalKeyStore

    caplog.set_level(logging.DEBUG)
    with running_hardhat() as node, FaultProxy(node.url) as failing, FaultProxy(node.url) as good:
        failing.set_mode("error", status=503)
        settings.chains = hardhat_chain(
            {"url": f"{failing.url}/v3/SECRETAPIKEY1", "weight": 1000},
            f"{good.url}/v3/SECRETAPIKEY2?key=SECRETAPIKEY3",
            breaker_failures=1,
            deployer_keys=2,
        )
        async with running_stack(settings) as (container, client):
            accepted = await post(client, body())
            job = await wait_final(client, accepted["job"]["id"])
            events = await events_until(container, job["id"], lambda e: e["status"] == "confirmed")
            chains = (await client.get("/v1/chains")).text
            keys = LocalKeyStore(settings.data_dir).evm_deployer_keys("ethereum", 2)
    assert job["status"] == "confirmed"
    seen = caplog.text + chains + json.dumps(events) + json.dumps(job)
    assert "SECRETAPIKEY" not in seen
    for key in keys:
        assert key.hex() not in seen and key.hex() not in (settings.data_dir / "keys.json").read_text()
    endpoints = json.loads(chains)["items"][0]["endpoints"]
    assert [e["state"] for e in endpoints] == ["open", "closed"]  # reported, by redacted labels
    assert all(e["label"].endswith("/…") for e in endpoints)


def test_keys_list_reads_balances_from_the_endpoints(tmp_path):
    import os
    import subprocess
    import sys

    from tests.support.hardhat import set_balance
    from tokenforge.keys.local import LocalKeyStore

    with running_hardhat() as node:
        address = Account.from_key(LocalKeyStore(tmp_path).evm_deployer_key("ethereum")).address
        set_balance(node.url, address, 12345)
        env = {
            **os.environ,
            "TOKENFORGE_DATA_DIR": str(tmp_path),
            "TOKENFORGE_CHAINS": json.dumps(hardhat_chain(node.url)),
        }
        out = subprocess.run(
            [sys.executable, "-m", "tokenforge", "keys", "list", "--balances"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    assert f"{address}  12345 wei" in out
