"""The follow loop against a fake chain and a fake store: batches, confirmations, reorgs,
leases, back-off."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import pytest

from tokenforge.errors import ErrorCode, TransientError
from tokenforge.market.events import Batch, BlockRef, MarketRecord, Position, Traded
from tokenforge.market.indexer.runner import ChainIndexer

CURVE = "0x" + "c" * 40
TRADER = "0x" + "a" * 40


def _hash(*parts: object) -> str:
    return "0x" + hashlib.sha256(repr(parts).encode()).hexdigest()


class FakeChain:
    """A chain of blocks, each with a trade count; ``reorg`` replaces blocks above a number."""

    chain = "ethereum"

    def __init__(self, blocks: int, trades_per_block: int = 1) -> None:
        self.refs: list[BlockRef] = [BlockRef(0, _hash(0), "0x" + "0" * 64, 1_700_000_000)]
        self.trades: dict[int, int] = {0: 0}
        self.fork = 0
        self.fetches: list[tuple[int, int]] = []
        self.failures: list[Exception] = []
        self.extend(blocks, trades_per_block)

    def extend(self, blocks: int, trades_per_block: int = 1) -> None:
        for _ in range(blocks):
            parent = self.refs[-1]
            n = parent.number + 1
            self.refs.append(BlockRef(n, _hash(n, self.fork), parent.hash, parent.timestamp + 1))
            self.trades[n] = trades_per_block

    def reorg(self, above: int, new_blocks: int, trades_per_block: int = 2) -> None:
        self.fork += 1
        del self.refs[above + 1 :]
        self.extend(new_blocks, trades_per_block)

    # -- LogSource
    async def head(self) -> int:
        self._maybe_fail()
        return self.refs[-1].number

    async def block(self, number: int) -> BlockRef | None:
        self._maybe_fail()
        return self.refs[number] if number < len(self.refs) else None

    def know(self, markets: Iterable[tuple[str, str]]) -> None:
        pass

    async def fetch(self, from_block: int, to_block: int) -> Batch:
        self._maybe_fail()
        self.fetches.append((from_block, to_block))
        records: list[MarketRecord] = []
        blocks: list[BlockRef] = []
        for ref in self.refs[from_block : to_block + 1]:
            count = self.trades[ref.number]
            for i in range(count):
                at = Position(ref.number, ref.hash, ref.timestamp, _hash("tx", ref.hash, i), i)
                records.append(Traded(at, CURVE, TRADER, True, 10**15, 10**18, 10**13, 10**18, 10**27))
            if count or ref.number == to_block:
                blocks.append(ref)
        return Batch(tuple(blocks), tuple(records))

    async def close(self) -> None:
        pass

    def _maybe_fail(self) -> None:
        if self.failures:
            raise self.failures.pop(0)


@dataclass
class FakeStore:
    """The MarketStore contract in memory (one 'transaction' per call)."""

    chain: str = "ethereum"
    blocks: dict[int, BlockRef] = field(default_factory=dict)
    trades: dict[tuple[str, int], int] = field(default_factory=dict)  # (tx, log index) -> block
    cp: BlockRef | None = None
    holder: str | None = None
    expires: float = 0.0
    writes: list[str] = field(default_factory=list)  # leader of every apply that wrote
    rollbacks: list[int] = field(default_factory=list)

    async def checkpoint(self) -> BlockRef | None:
        return self.cp

    async def recent_blocks(self, limit: int) -> Sequence[BlockRef]:
        return [self.blocks[n] for n in sorted(self.blocks, reverse=True)[:limit]]

    async def known_markets(self) -> list[tuple[str, str]]:
        return []

    async def acquire(self, leader: str, lease_s: float) -> bool:
        now = asyncio.get_running_loop().time()
        if self.holder not in (None, leader) and self.expires > now:
            return False
        self.holder, self.expires = leader, now + lease_s
        return True

    async def apply(self, batch: Batch, *, leader: str) -> int:
        if self.holder != leader or (self.cp is not None and self.cp.number >= batch.blocks[-1].number):
            return -1
        new = 0
        for r in batch.records:
            key = (r.at.tx_id, r.at.log_index)
            if key not in self.trades:
                self.trades[key] = r.at.block_number
                new += 1
        for ref in batch.blocks:
            self.blocks[ref.number] = ref
        self.cp = batch.blocks[-1]
        self.writes.append(leader)
        return new

    async def rollback(self, to_block: int, *, leader: str) -> int:
        assert self.holder == leader
        self.rollbacks.append(to_block)
        gone = [k for k, n in self.trades.items() if n > to_block]
        for k in gone:
            del self.trades[k]
        for n in [n for n in self.blocks if n > to_block]:
            del self.blocks[n]
        self.cp = self.blocks.get(to_block) or max(
            (b for b in self.blocks.values() if b.number <= to_block), key=lambda b: b.number, default=None
        )
        return len(gone)


def indexer(chain: FakeChain, store: FakeStore, leader: str = "a", **kw: object) -> ChainIndexer:
    options: dict = {"confirmations": 0, "from_block": 0, "batch_blocks": 10, "poll_s": 0.05, "lease_s": 15.0}
    options.update(kw)
    return ChainIndexer(chain, store, leader_id=leader, **options)


async def test_catches_up_in_batches_then_follows_new_blocks() -> None:
    chain, store = FakeChain(25), FakeStore()
    ix = indexer(chain, store)
    assert [await ix.step() for _ in range(3)] == [9, 10, 6]  # blocks 0-9 (genesis has none), 10-19, 20-25
    assert chain.fetches == [(0, 9), (10, 19), (20, 25)]
    assert await ix.step() == 0 and store.cp == chain.refs[25]
    task = asyncio.create_task(ix.run())
    try:
        chain.extend(3)
        ix.wake()
        await ix.wait_indexed(28, timeout_s=5)
        assert len(store.trades) == 28
    finally:
        task.cancel()


async def test_backfill_runs_batches_without_waiting_for_the_poll() -> None:
    chain, store = FakeChain(500), FakeStore()
    ix = indexer(chain, store, poll_s=60.0)
    task = asyncio.create_task(ix.run())
    try:
        await ix.wait_indexed(500, timeout_s=5)  # 51 batches, far less than one poll interval
    finally:
        task.cancel()
    assert len(store.trades) == 500


async def test_stays_confirmations_below_the_head() -> None:
    chain, store = FakeChain(20), FakeStore()
    ix = indexer(chain, store, confirmations=5, batch_blocks=100)
    await ix.step()
    assert store.cp == chain.refs[15]
    assert max(store.trades.values()) == 15
    chain.extend(2)
    await ix.step()
    assert store.cp == chain.refs[17]


async def test_a_reorg_is_found_by_hash_and_rolled_back_to_the_fork_point() -> None:
    chain, store = FakeChain(12), FakeStore()
    ix = indexer(chain, store, batch_blocks=4)
    while await ix.step():
        pass
    assert store.cp == chain.refs[12]
    orphaned = {k for k, n in store.trades.items() if n > 8}
    chain.reorg(above=8, new_blocks=6)  # blocks 9-12 replaced, 13-14 new; 2 trades each
    await ix.step()
    assert store.rollbacks == [8]
    while await ix.step():
        pass
    assert store.cp == chain.refs[14]
    assert not orphaned & set(store.trades)
    assert sum(1 for n in store.trades.values() if n > 8) == 12  # the replacement blocks' trades
    assert len(store.trades) == 8 + 12


async def test_a_reorg_deeper_than_the_checkpoint_walks_back_the_stored_blocks() -> None:
    chain, store = FakeChain(30), FakeStore()
    ix = indexer(chain, store, batch_blocks=5)
    while await ix.step():
        pass
    chain.reorg(above=11, new_blocks=10)  # head drops from 30 to 21
    await ix.step()
    assert store.rollbacks == [11]
    while await ix.step():
        pass
    assert store.cp == chain.refs[21]
    assert len(store.trades) == 11 + 20


async def test_a_reorg_during_the_read_discards_the_batch() -> None:
    chain, store = FakeChain(10), FakeStore()
    ix = indexer(chain, store, batch_blocks=100)
    await ix.step()
    chain.extend(5)
    fetch = chain.fetch

    async def fetch_then_reorg(a: int, b: int) -> Batch:
        batch = await fetch(a, b)
        chain.reorg(above=7, new_blocks=9)  # the checkpoint (10) is orphaned during the read
        return batch

    chain.fetch = fetch_then_reorg  # type: ignore[method-assign]
    assert await ix.step() == 0
    chain.fetch = fetch  # type: ignore[method-assign]
    # nothing of the stale read is written; the orphaned blocks are rolled back at once
    assert store.cp is not None and store.cp.number == 7 and store.rollbacks == [7]
    assert len(store.trades) == 7
    while await ix.step() or ix.behind:
        pass
    assert store.rollbacks == [7]
    assert store.cp == chain.refs[16]
    assert len(store.trades) == 7 + 18


async def test_two_runners_with_one_lease_never_both_write() -> None:
    chain, store = FakeChain(40), FakeStore()
    a = indexer(chain, store, "a", lease_s=0.3, poll_s=0.01, batch_blocks=3)
    b = indexer(chain, store, "b", lease_s=0.3, poll_s=0.01, batch_blocks=3)
    tasks = [asyncio.create_task(a.run()), asyncio.create_task(b.run())]
    try:
        await a.wait_indexed(40, timeout_s=5)
        await b.wait_indexed(40, timeout_s=5)  # the follower sees the leader's checkpoint
        assert set(store.writes) == {"a"} or set(store.writes) == {"b"}
        leader = store.writes[0]
        follower = b if leader == "a" else a
        tasks[0 if leader == "a" else 1].cancel()  # the leader dies; its lease runs out
        chain.extend(5)
        await follower.wait_indexed(45, timeout_s=5)
        assert store.writes[-1] == follower.leader_id
    finally:
        for t in tasks:
            t.cancel()
    assert len(store.trades) == 45  # every trade once


async def test_transient_errors_back_off_and_recover(caplog: pytest.LogCaptureFixture) -> None:
    chain, store = FakeChain(5), FakeStore()
    ix = indexer(chain, store, backoff_base_s=0.01, backoff_max_s=0.04)
    chain.failures = [TransientError("node down", code=ErrorCode.RPC_UNAVAILABLE) for _ in range(6)]
    chain.failures.append(RuntimeError("a bug"))
    started = asyncio.get_running_loop().time()
    task = asyncio.create_task(ix.run())
    try:
        with caplog.at_level("INFO", logger="tokenforge.market.indexer.runner"):
            await ix.wait_indexed(5, timeout_s=5)
    finally:
        task.cancel()
    elapsed = asyncio.get_running_loop().time() - started
    assert elapsed >= 0.01 + 0.02 + 0.04 * 5  # doubled, then capped
    failed = [r for r in caplog.records if "step failed" in r.getMessage()]
    assert len(failed) == 1  # one line per streak
    assert any("recovered after 7 failed steps" in r.getMessage() for r in caplog.records)
    assert len(store.trades) == 5
