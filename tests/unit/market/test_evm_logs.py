"""The EVM log source decodes real logs of an embedded chain: a launch, buys, sells,
transfers and a graduation, in chain order; logs of other contracts are ignored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from eth_account import Account
from eth_utils import to_checksum_address

from tests.support.market_chain import WHOLE, Market, MarketDriver
from tokenforge.chains.evm.deployer import EvmDeployer
from tokenforge.chains.evm.embedded import EmbeddedEvmChain
from tokenforge.chains.evm.open import open_embedded_evm_deployer
from tokenforge.market.events import Graduated, Launched, Traded, Transferred
from tokenforge.market.evm_logs import GRADUATED_TOPIC, TRADE_TOPIC, EvmLogSource

ZERO = "0x" + "0" * 40


@dataclass
class Env:
    deployer: EvmDeployer
    chain: EmbeddedEvmChain
    driver: MarketDriver
    source: EvmLogSource


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    deployer = await open_embedded_evm_deployer("ethereum", 1337, None, Account.create().key)
    chain = deployer.embedded
    assert chain is not None
    source = EvmLogSource("ethereum", chain.async_web3(), deployer.factory.address, batch_blocks=2000)
    try:
        yield Env(deployer, chain, MarketDriver(chain.web3(), 1337, deployer.factory.address), source)
    finally:
        await deployer.close()


async def funded(env: Env, n: int):
    accounts = [Account.create() for _ in range(n)]
    for a in accounts:
        await env.chain.run(env.chain.fund, a.address, 100 * WHOLE)
    return accounts


def impostor_code() -> bytes:
    """Init code of a contract that, when called, emits a ``Trade``-topic log and a
    ``TokenCreated``-topic log that no TokenForge curve or factory wrote."""
    from tokenforge.chains.evm.codec import TOKEN_CREATED_TOPIC

    runtime = (
        b"\x33\x7f"
        + TRADE_TOPIC
        + b"\x60\x00\x60\x00\xa2"  # LOG2(0, 0, Trade, caller)
        + b"\x33\x33\x33\x7f"
        + TOKEN_CREATED_TOPIC
        + b"\x60\x00\x60\x00\xa4"  # LOG4
        + b"\x00"
    )
    return bytes([0x60, len(runtime), 0x80, 0x60, 11, 0x60, 0x00, 0x39, 0x60, 0x00, 0xF3]) + runtime


async def test_a_market_lifecycle_decodes_in_chain_order(env: Env) -> None:
    creator, alice, bob = await funded(env, 3)
    d = env.driver
    market = d.launch(creator)
    d.buy(alice, market, WHOLE // 10)
    d.buy(bob, market, WHOLE // 5)
    sold = d.balance(market, alice.address) // 2
    d.sell(alice, market, sold)
    d.transfer(bob, market, alice.address, 5 * WHOLE)
    grad = d.buy(bob, market, 20 * WHOLE)  # more than what is left: cut, refunded, graduates
    head = await env.source.head()

    batch = await env.source.fetch(market.block_number, head)
    records = batch.records
    order = [(r.at.block_number, r.at.log_index) for r in records]
    assert order == sorted(order)
    assert batch.blocks[-1].number == head
    assert {r.at.block_number for r in records} <= {b.number for b in batch.blocks}
    by_number = {b.number: b for b in batch.blocks}
    for r in records:
        assert r.at.block_hash == by_number[r.at.block_number].hash
        assert r.at.block_time == by_number[r.at.block_number].timestamp

    # the launch: the mint to the curve first, then TokenCreated
    mint, launched = records[0], records[1]
    assert isinstance(mint, Transferred) and isinstance(launched, Launched)
    assert (mint.token, mint.sender, mint.recipient, mint.amount) == (market.token, ZERO, market.curve, 10**27)
    assert (launched.token, launched.curve, launched.creator) == (market.token, market.curve, creator.address)
    assert launched.supply == 10**27 and launched.platform_fee_bps == 95 and launched.creator_fee_bps == 30
    assert launched.virtual_native0 > 0 and launched.launched_at > 0 and mint.at.tx_id == launched.at.tx_id

    trades = [r for r in records if isinstance(r, Traded)]
    assert [(t.trader, t.is_buy) for t in trades] == [
        (alice.address, True),
        (bob.address, True),
        (alice.address, False),
        (bob.address, True),
    ]
    assert trades[0].native_amount == WHOLE // 10 and trades[0].fee > 0
    assert trades[2].token_amount == sold
    assert all(t.curve == market.curve for t in trades)
    virtual_native, virtual_token, _real_native, tokens_left = d.reserves(market)
    assert (trades[-1].virtual_native, trades[-1].virtual_token) == (virtual_native, virtual_token)
    assert tokens_left == 0 and trades[-1].native_amount < 20 * WHOLE  # the refund is not counted

    graduated = [r for r in records if isinstance(r, Graduated)]
    assert len(graduated) == 1
    g = graduated[0]
    pool = d.w3.eth.contract(address=market.token, abi=d._token_abi).functions.pool().call()
    assert g.pool == to_checksum_address(pool) and g.curve == market.curve
    assert (
        g.native_liquidity > 0 and g.token_liquidity > 0 and g.at.tx_id == "0x" + bytes(grad["transactionHash"]).hex()
    )

    # every balance change of the token is a Transferred: replaying them gives the chain's balances
    balances: dict[str, int] = {}
    for r in records:
        if isinstance(r, Transferred):
            balances[r.sender] = balances.get(r.sender, 0) - r.amount
            balances[r.recipient] = balances.get(r.recipient, 0) + r.amount
    for holder in (alice.address, bob.address, market.curve, g.pool):
        assert balances.get(holder, 0) == d.balance(market, holder), holder
    assert any(isinstance(r, Transferred) and r.recipient == g.pool for r in records)


async def test_logs_of_other_contracts_are_ignored(env: Env) -> None:
    (caller,) = await funded(env, 1)
    d = env.driver
    tx = {
        "type": 2, "chainId": 1337, "nonce": d.w3.eth.get_transaction_count(caller.address),
        "value": 0, "data": impostor_code(), "gas": 200_000,
        "maxFeePerGas": 200 * 10**9, "maxPriorityFeePerGas": 10**9,
    }  # fmt: skip
    receipt = d.w3.eth.wait_for_transaction_receipt(
        d.w3.eth.send_raw_transaction(caller.sign_transaction(tx).raw_transaction), poll_latency=0.02
    )
    impostor = receipt["contractAddress"]
    emitted = d.send(caller, impostor, b"")
    assert {bytes(e["topics"][0]) for e in emitted["logs"]} >= {TRADE_TOPIC}
    head = await env.source.head()
    batch = await env.source.fetch(0, head)
    assert batch.records == ()
    assert [b.number for b in batch.blocks] == [head]
    assert GRADUATED_TOPIC != TRADE_TOPIC


async def test_known_markets_and_split_ranges(env: Env) -> None:
    creator, alice = await funded(env, 2)
    d = env.driver
    market: Market = d.launch(creator)
    d.buy(alice, market, WHOLE // 10)
    d.transfer(alice, market, creator.address, WHOLE)
    head = await env.source.head()
    whole = await env.source.fetch(0, head)

    one_block_calls = EvmLogSource("ethereum", env.chain.async_web3(), env.deployer.factory.address, batch_blocks=1)
    assert (await one_block_calls.fetch(0, head)).records == whole.records

    # a source started after the launch decodes the market's logs once it is told about it
    late = EvmLogSource("ethereum", env.chain.async_web3(), env.deployer.factory.address)
    after_launch = market.block_number + 1
    assert (await late.fetch(after_launch, head)).records == ()
    late.know([(market.token, market.curve)])
    later = (await late.fetch(after_launch, head)).records
    assert [type(r).__name__ for r in later] == ["Transferred", "Traded", "Transferred"]  # curve pays, then logs
    assert later == tuple(r for r in whole.records if r.at.block_number >= after_launch)


async def test_first_block_is_the_factory_deployment(env: Env) -> None:
    first = await env.source.first_block()
    code = env.driver.w3.eth.get_code
    assert code(env.deployer.factory.address, first) and not code(env.deployer.factory.address, first - 1)


async def test_blocks_above_the_head_are_none(env: Env) -> None:
    head = await env.source.head()
    ref = await env.source.block(head)
    assert ref is not None and ref.number == head
    assert await env.source.block(head + 5) is None
