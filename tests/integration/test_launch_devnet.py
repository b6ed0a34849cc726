"""Launches through the whole stack on ``tokenforge devnet``: EVM and Solana over JSON-RPC
from one devnet process, the same configuration path as a real network.

Shown here: both families launch and read back with independent clients; a Solana
transaction lost on its way (the node never saw it) expires with its blockhash and the
worker lands the SAME mint with a fresh blockhash, exactly once; a worker killed after a
Solana broadcast is succeeded by one that confirms that very transaction.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from eth_account import Account
from solana.rpc.async_api import AsyncClient
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature
from web3 import Web3

from tests.integration.test_launch_hardhat import events_until
from tests.support.bodies import launch_body
from tests.support.devnet import running_devnet
from tests.support.erc20 import ERC20_ABI
from tests.support.fault_proxy import FaultProxy, solana_signature_answer
from tests.support.server import crash_and_resume
from tests.support.solana_decode import decode_mint
from tests.support.stack import running_stack, wait_final


def local(url: str, **over) -> dict:
    return {"network": "local", "endpoints": [url], "dev_fund_base_units": 10**21, **over}


def solana_local(url: str, **over) -> dict:
    return {"network": "local", "endpoints": [url], "dev_fund_base_units": 10**13, **over}


def solana_body(i: int = 0) -> dict:
    return launch_body(
        chain="solana",
        name=f"Devnet Mint {i}",
        symbol=f"DM{i}",
        decimals=6,
        supply="5000",
        creator=str(Keypair().pubkey()),
        metadata_uri=f"https://example.com/{i}.json",
    )


async def successful_signatures(url: str, mint: str) -> list[str]:
    async with AsyncClient(url) as client:
        found = (await client.get_signatures_for_address(Pubkey.from_string(mint))).value
    return [str(s.signature) for s in found if s.err is None]


async def read_mint(url: str, mint: str):
    async with AsyncClient(url) as client:
        return decode_mint((await client.get_account_info(Pubkey.from_string(mint))).value.data)


async def test_evm_and_solana_launch_on_one_devnet_and_read_back(settings, tmp_path):
    with running_devnet(tmp_path, chains="ethereum,solana") as devnet:
        settings.chains = {
            "ethereum": local(devnet.evm_url("ethereum"), deployer_keys=2),
            "solana": solana_local(devnet.solana_url),
        }
        async with running_stack(settings) as (_container, client):
            evm = await client.post(
                "/v1/tokens",
                json=launch_body(
                    chain="ethereum", name="Devnet Coin", symbol="DVC", decimals=18, creator=Account.create().address
                ),
            )
            sol = await client.post("/v1/tokens", json=solana_body())
            assert evm.status_code == sol.status_code == 202
            jobs = [await wait_final(client, r.json()["job"]["id"]) for r in (evm, sol)]
            tokens = [(await client.get(f"/v1/tokens/{r.json()['token']['id']}")).json() for r in (evm, sol)]
        assert [j["status"] for j in jobs] == ["confirmed", "confirmed"]
        erc20 = Web3(Web3.HTTPProvider(devnet.evm_url("ethereum"))).eth.contract(
            address=tokens[0]["address"], abi=ERC20_ABI
        )
        assert erc20.functions.symbol().call() == "DVC"
        mint = await read_mint(devnet.solana_url, tokens[1]["address"])
        assert (mint.supply, mint.decimals, mint.mint_authority) == (5000 * 10**6, 6, None)
        assert mint.name == "Devnet Mint 0" and mint.uri == "https://example.com/0.json"


async def test_lost_solana_transaction_expires_and_the_same_mint_lands_once(settings, tmp_path):
    with running_devnet(tmp_path, slot_ms=10, chains="solana") as devnet, FaultProxy(devnet.solana_url) as proxy:
        settings.chains = {"solana": solana_local(proxy.url)}
        async with running_stack(settings) as (container, client):
            proxy.swallow({"sendTransaction"}, times=1, answer=solana_signature_answer)
            accepted = (await client.post("/v1/tokens", json=solana_body())).json()
            job_id = accepted["job"]["id"]
            job = await wait_final(client, job_id)
            events = await events_until(container, job_id, lambda e: e["status"] == "confirmed")
            token = (await client.get(f"/v1/tokens/{accepted['token']['id']}")).json()
    assert job["status"] == "confirmed"
    signed = [e["data"]["tx_id"] for e in events if "signed" in e["message"]]
    assert len(signed) == 2 and signed[0] != signed[1], "re-signed with a fresh blockhash"
    assert {e["data"]["token_address"] for e in events if "signed" in e["message"]} == {token["address"]}
    assert any("dropped" in e["message"] for e in events)
    assert token["tx_id"] == signed[1]
    with running_devnet(tmp_path, chains="solana", data_dir=devnet.data_dir) as again:
        assert await successful_signatures(again.solana_url, token["address"]) == [signed[1]]
        async with AsyncClient(again.solana_url) as sol:
            statuses = (
                await sol.get_signature_statuses([Signature.from_string(signed[0])], search_transaction_history=True)
            ).value
        assert statuses == [None], "the lost transaction never landed"


@pytest.mark.slow
def test_worker_killed_after_solana_broadcast_successor_confirms_the_same_transaction(tmp_path):
    with running_devnet(tmp_path, chains="solana") as devnet:
        env = {"TOKENFORGE_CHAINS": json.dumps({"solana": solana_local(devnet.solana_url)})}
        _accepted, _job, _events, token = crash_and_resume(
            tmp_path / "data", "solana", "after_broadcast", solana_body(), env=env
        )
        assert asyncio.run(successful_signatures(devnet.solana_url, token["address"])) == [token["tx_id"]]
