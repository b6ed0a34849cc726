"""The market end to end: launch -> trades -> indexed -> what the API says == what the chain says.

On the embedded default, in process (the app, the worker and the market indexer). Tokens are
launched through the API, development wallets trade them until one curve graduates, and an
independent client — plain web3.py with its own minimal ABI written below, none of
TokenForge's artifacts or readers — reads the curves' reserves, the holders' balances, the
trades' receipts and the graduated pool's reserves on chain and compares them with
``/v1/tokens/{id}``, ``/holders`` and ``/trades``.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from eth_account import Account
from web3 import Web3

from tests.support.stack import running_stack, wait_final
from tokenforge.market.simulation import DevTraders, SimMarket, SimulationConfig, embedded_funder

pytestmark = pytest.mark.slow

U256 = {"type": "uint256", "name": ""}
ABI = [
    {
        "type": "function",
        "name": "reserves",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [U256, U256, U256, U256],
    },
    {
        "type": "function",
        "name": "graduated",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [{"type": "bool", "name": ""}],
    },
    {
        "type": "function",
        "name": "balanceOf",
        "stateMutability": "view",
        "inputs": [{"type": "address", "name": "a"}],
        "outputs": [U256],
    },
    {"type": "function", "name": "totalSupply", "stateMutability": "view", "inputs": [], "outputs": [U256]},
    {
        "type": "function",
        "name": "getReserves",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [{"type": "uint112", "name": ""}, {"type": "uint112", "name": ""}, {"type": "uint32", "name": ""}],
    },
    {
        "type": "function",
        "name": "token0",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [{"type": "address", "name": ""}],
    },
    {
        "type": "event",
        "name": "Trade",
        "anonymous": False,
        "inputs": [
            {"indexed": True, "type": "address", "name": "trader"},
            {"indexed": False, "type": "bool", "name": "isBuy"},
            {"indexed": False, "type": "uint256", "name": "nativeAmount"},
            {"indexed": False, "type": "uint256", "name": "tokenAmount"},
            {"indexed": False, "type": "uint256", "name": "fee"},
            {"indexed": False, "type": "uint256", "name": "virtualNative"},
            {"indexed": False, "type": "uint256", "name": "virtualToken"},
        ],
    },
]


@pytest.fixture
def market_settings(settings):
    settings.chains = {"ethereum": "embedded"}
    return settings


async def launch(client, count: int) -> list[dict]:
    bodies = [
        {
            "chain": "ethereum",
            "name": f"Truth {i}",
            "symbol": f"TRU{i}",
            "supply": "1000000000",
            "creator": Account.create().address,
        }
        for i in range(count)
    ]
    accepted = [await client.post("/v1/tokens", json=b) for b in bodies]
    assert all(r.status_code == 202 for r in accepted), [r.text for r in accepted]
    jobs = await asyncio.gather(*(wait_final(client, r.json()["job"]["id"]) for r in accepted))
    assert [j["status"] for j in jobs] == ["confirmed"] * count, jobs
    return [(await client.get(f"/v1/tokens/{r.json()['token']['id']}")).json() for r in accepted]


async def indexed(client, token_id: str, trades: int, timeout_s: float = 30) -> dict:
    """The token's detail once its market shows ``trades`` trades (polled; the indexer writes
    a batch at a time)."""
    deadline = time.monotonic() + timeout_s
    while True:
        token = (await client.get(f"/v1/tokens/{token_id}")).json()
        market = token.get("market")
        if market and market["trade_count"] >= trades:
            return token
        assert time.monotonic() < deadline, f"{token_id}: {market and market['trade_count']} of {trades} indexed"
        await asyncio.sleep(0.05)


async def all_trades(client, token_id: str) -> list[dict]:
    items, cursor = [], None
    while True:
        params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(f"/v1/tokens/{token_id}/trades", params=params)).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


async def test_api_matches_the_chain_after_trades_and_a_graduation(market_settings):
    async with running_stack(market_settings, start=False) as (container, client):
        await container.start(indexer=True)
        tokens = await launch(client, 2)
        chain = (await container.deployers.get("ethereum")).embedded
        traders = DevTraders(
            chain.async_web3(),
            chain_id=1337,
            network="embedded",
            fund=embedded_funder(chain),
            config=SimulationConfig(
                wallets=8, trades=2000, until_graduated=1, focus=0.7, seed=7
            ),  # stops at the graduation
            block_listener=chain.add_block_listener,
        )
        curves = {t["address"]: t for t in tokens}
        w3: Web3 = chain.web3()
        markets = []
        for t in tokens:
            reply = (await client.get(f"/v1/tokens/{t['id']}")).json()
            curve = (reply.get("market") or {}).get("curve")
            if curve is None:  # not indexed yet: the curve is the token's first CREATE
                import rlp
                from eth_utils import keccak, to_canonical_address, to_checksum_address

                curve = to_checksum_address(keccak(rlp.encode([to_canonical_address(t["address"]), 1]))[12:])
            markets.append(SimMarket(t["address"], curve))
        results, summary = await traders.run(markets)
        assert len(summary.graduated) >= 1 and summary.sells > 0

        for market in markets:
            ok = [r for r in results if r.token == market.token and r.status == 1]
            token = await indexed(client, curves[market.token]["id"], len(ok))
            api = token["market"]
            assert api["curve"] == market.curve
            assert api["trade_count"] == len(ok)
            curve = w3.eth.contract(address=market.curve, abi=ABI)
            erc20 = w3.eth.contract(address=market.token, abi=ABI)
            reserves = curve.functions.reserves().call()
            assert api["reserves"] == {
                "virtual_native": str(reserves[0]),
                "virtual_token": str(reserves[1]),
                "native_raised": str(reserves[2]),
                "tokens_left": str(reserves[3]),
            }
            graduated = curve.functions.graduated().call()
            assert api["state"] == ("graduated" if graduated else "trading")

            # holders: every listed balance is the chain's, and (all listed) they add up to the supply
            holders = (await client.get(f"/v1/tokens/{token['id']}/holders", params={"limit": 100})).json()
            assert holders["holder_count"] <= 100
            assert len(holders["items"]) == holders["holder_count"]
            for h in holders["items"]:
                assert int(h["balance"]) == erc20.functions.balanceOf(h["address"]).call(), h
            assert sum(int(h["balance"]) for h in holders["items"]) == erc20.functions.totalSupply().call()
            by_address = {h["address"].lower(): h for h in holders["items"]}
            if not graduated:
                assert by_address[market.curve.lower()]["is_curve"]

            # trades: one per successful trade, each as its receipt's Trade log says
            trades = await all_trades(client, token["id"])
            assert {t["tx_id"].lower() for t in trades} == {r.tx_hash.lower() for r in ok}
            for t in trades[:40]:
                receipt = w3.eth.get_transaction_receipt(t["tx_id"])
                (raw,) = [e for e in receipt["logs"] if e["logIndex"] == t["log_index"]]
                assert raw["address"].lower() == market.curve.lower()
                log = curve.events.Trade().process_log(raw)
                assert t["trader"].lower() == log["args"]["trader"].lower() == receipt["from"].lower()
                assert t["side"] == ("buy" if log["args"]["isBuy"] else "sell")
                assert t["native_amount"] == str(log["args"]["nativeAmount"])
                assert t["token_amount"] == str(log["args"]["tokenAmount"])
                assert t["fee"] == str(log["args"]["fee"])
                assert t["block_number"] == receipt["blockNumber"]

            if graduated:  # the pool holds what the chain says, and the API names it
                pool = api["pool"]
                assert pool and by_address[pool.lower()]["is_pool"]
                pair = w3.eth.contract(address=Web3.to_checksum_address(pool), abi=ABI)
                r0, r1, _ = pair.functions.getReserves().call()
                token_reserve = r0 if pair.functions.token0().call().lower() == market.token.lower() else r1
                assert (
                    int(by_address[pool.lower()]["balance"]) == token_reserve == erc20.functions.balanceOf(pool).call()
                )
