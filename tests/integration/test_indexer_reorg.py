"""Reorgs on real JSON-RPC nodes: Hardhat (``evm_snapshot``/``evm_revert``) and
``tokenforge devnet`` (the same methods on the embedded chain), indexed by two
:class:`ChainIndexer` s sharing one database (SQLite and PostgreSQL).

What a user sees: trades in blocks that get orphaned disappear from trades, candles,
holders and market state; the replacement blocks' trades appear; the two indexers never
count anything twice (one holds the lease, the other follows its checkpoint).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from eth_account import Account
from sqlalchemy import func, select
from web3 import AsyncHTTPProvider, AsyncWeb3, HTTPProvider, Web3

from tests.support.devnet import fund_evm, running_devnet
from tests.support.hardhat import rpc, running_hardhat
from tests.support.market_chain import WHOLE, Market, MarketDriver
from tokenforge.chains.evm.node import EvmNode
from tokenforge.chains.evm.setup import ensure_factory
from tokenforge.market.evm_logs import EvmLogSource
from tokenforge.market.indexer.runner import ChainIndexer
from tokenforge.market.indexer.writer import MarketWriter
from tokenforge.store.db import make_engine, make_sessionmaker
from tokenforge.store.migrate import upgrade_to_head
from tokenforge.store.models import CandleRow, HolderRow, MarketEventRow, MarketRow, TradeRow

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHAIN = "ethereum"


@pytest.fixture
async def sessions(any_db_settings) -> AsyncIterator:
    engine = make_engine(any_db_settings.resolved_database_url)
    await upgrade_to_head(engine)
    try:
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()


def tx_id(receipt) -> str:
    return "0x" + bytes(receipt["transactionHash"]).hex()


async def trades_in_db(sessions) -> set[str]:
    async with sessions() as s:
        return set((await s.execute(select(TradeRow.tx_hash).where(TradeRow.chain == CHAIN))).scalars())


async def check_database_matches_chain(sessions, driver: MarketDriver, market: Market, holders: list[str]) -> None:
    async with sessions() as s:
        trades = (await s.execute(select(TradeRow).where(TradeRow.chain == CHAIN))).scalars().all()
        row = (await s.execute(select(MarketRow).where(MarketRow.token_address == market.token))).scalar_one()
        minutes = (
            (await s.execute(select(CandleRow).where(CandleRow.chain == CHAIN, CandleRow.interval == "1m")))
            .scalars()
            .all()
        )
        balances = {
            h.holder: int(h.balance)
            for h in (await s.execute(select(HolderRow).where(HolderRow.token_address == market.token))).scalars()
        }
    assert row.trade_count == len(trades)
    assert sum(c.trades for c in minutes) == len(trades)
    assert sum(int(c.volume_native) for c in minutes) == sum(int(t.native_amount) for t in trades)
    virtual_native, virtual_token, _real, _left = driver.reserves(market)
    assert row.price_native == pytest.approx(virtual_native / virtual_token)
    for holder in holders:
        assert balances.get(holder, 0) == driver.balance(market, holder), holder
    assert sum(balances.values()) == 10**27  # the supply, all of it accounted for


async def reorg_scenario(url: str, sessions) -> None:
    w3 = Web3(HTTPProvider(url))
    chain_id = w3.eth.chain_id
    deployer, creator, alice, bob, carol = (Account.create() for _ in range(5))
    for account in (deployer, creator, alice, bob, carol):
        fund_evm(url, account.address, 10**22)
    node = EvmNode(AsyncWeb3(AsyncHTTPProvider(url)))
    try:
        factory = await ensure_factory(node, deployer.key, chain_id)
    finally:
        await node.close()
    driver = MarketDriver(w3, chain_id, factory.address)
    market = driver.launch(creator)
    kept = driver.buy(carol, market, WHOLE // 10)

    indexers = [
        ChainIndexer(
            EvmLogSource(CHAIN, AsyncWeb3(AsyncHTTPProvider(url)), factory.address, batch_blocks=50),
            MarketWriter(sessions, CHAIN),
            confirmations=0,
            batch_blocks=50,
            poll_s=0.05,
            leader_id=f"indexer-{i}",
            lease_s=2.0,
        )
        for i in range(2)
    ]
    tasks = [asyncio.create_task(ix.run()) for ix in indexers]
    try:
        snapshot = rpc(url, "evm_snapshot")
        orphaned = [driver.buy(alice, market, WHOLE // 5), driver.buy(alice, market, WHOLE // 4)]
        driver.transfer(alice, market, carol.address, WHOLE)
        old_head = w3.eth.block_number
        for ix in indexers:
            await ix.wait_indexed(old_head, timeout_s=60)
        assert await trades_in_db(sessions) == {tx_id(kept), *map(tx_id, orphaned)}
        await check_database_matches_chain(sessions, driver, market, [alice.address, carol.address, market.curve])

        assert rpc(url, "evm_revert", [snapshot]) is True
        replacements = [driver.buy(bob, market, WHOLE // 3), driver.buy(carol, market, WHOLE // 7)]
        while w3.eth.block_number <= old_head:  # past the orphaned tip, so "indexed" means re-indexed
            rpc(url, "evm_mine")
        new_head = w3.eth.block_number
        for ix in indexers:
            ix.wake()
            await ix.wait_indexed(new_head, timeout_s=60)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for ix in indexers:
            await ix.source.close()

    assert await trades_in_db(sessions) == {tx_id(kept), *map(tx_id, replacements)}
    assert driver.balance(market, alice.address) == 0
    await check_database_matches_chain(
        sessions, driver, market, [alice.address, bob.address, carol.address, market.curve]
    )
    async with sessions() as s:
        kinds = (await s.execute(select(MarketEventRow.kind, func.count()).group_by(MarketEventRow.kind))).all()
    counts = dict(kinds)
    assert counts.get("rollback", 0) >= 1
    assert counts["token"] == 1  # the launch, written once by whichever indexer led
    assert counts["trade"] == 1 + 2  # each trade announced once; the orphaned ones' events went with them


async def test_reorg_on_hardhat(sessions) -> None:
    with running_hardhat() as node:
        await reorg_scenario(node.url, sessions)


async def test_reorg_on_the_devnet(sessions, tmp_path) -> None:
    with running_devnet(tmp_path, chains="ethereum", in_memory=True) as devnet:
        await reorg_scenario(devnet.evm_url(), sessions)
