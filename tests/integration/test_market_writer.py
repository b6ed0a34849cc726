"""The indexer's writer on SQLite and PostgreSQL, fed synthetic batches (no chain).

A small simulated chain (:class:`SimChain`) launches tokens, trades them with the curve
math of ``domain/curve.py``, moves balances and graduates sold-out curves; it can fork at
any block, as a reorg would. The tests check what a user would see: trades counted once,
candles equal to a recomputation from the stored trades, holders summing to the supply,
a rollback restoring the state before the orphaned blocks, the lease fencing a second
writer, and old block times landing in their monthly partitions on PostgreSQL.
"""

from __future__ import annotations

import copy
import random
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text, update

from tokenforge.domain.curve import CurveError, CurveParams, CurveReserves, buy, graduation, sell
from tokenforge.market import candles as cdl
from tokenforge.market.events import (
    Batch,
    BlockRef,
    Graduated,
    Launched,
    MarketRecord,
    Position,
    Traded,
    Transferred,
)
from tokenforge.market.indexer.writer import MarketWriter
from tokenforge.store.db import make_engine, make_sessionmaker, utcnow
from tokenforge.store.migrate import upgrade_to_head
from tokenforge.store.models import (
    CandleRow,
    HolderChangeRow,
    HolderRow,
    IndexCheckpointRow,
    IndexedBlockRow,
    JobRow,
    MarketEventRow,
    MarketRow,
    TokenRow,
    TradeRow,
)

pytestmark = pytest.mark.integration

ZERO = "0x" + "0" * 40
SUPPLY = 10**9 * 10**18
T0 = int(time.time()) - 3600  # block times: 12 s apart from an hour ago


def addr(tag: str) -> str:
    return "0x" + tag.encode().hex().ljust(40, "0")[:40]


@dataclass
class SimState:
    number: int = 0
    launched: int = 0
    curves: dict[str, tuple[str, CurveReserves]] = field(default_factory=dict)  # token -> (curve, reserves)
    graduated: set[str] = field(default_factory=set)
    balances: dict[tuple[str, str], int] = field(default_factory=dict)


class SimChain:
    """Blocks of launches, trades and transfers; ``fork(n)`` replaces every block above ``n``."""

    def __init__(self, seed: int, *, max_tokens: int = 3, t0: int = T0, max_buy_wei: int = 15 * 10**17) -> None:
        self.rng = random.Random(seed)
        self.max_buy_wei = max_buy_wei
        self.max_tokens = max_tokens
        self.t0 = t0
        self.state = SimState()
        self.snapshots: dict[int, SimState] = {0: copy.deepcopy(self.state)}
        self.forks = 0
        self.traders = [addr(f"trader{i}") for i in range(4)]

    def hash(self, number: int) -> str:
        return f"0x{self.forks:04x}{number:060x}"

    def fork(self, to_block: int) -> None:
        self.state = copy.deepcopy(self.snapshots[to_block])
        self.snapshots = {n: s for n, s in self.snapshots.items() if n <= to_block}
        self.forks += 1

    def batch(self, blocks: int, *, actions: int = 3) -> Batch:
        refs, records = [], []
        for _ in range(blocks):
            ref, recs = self._block(actions)
            refs.append(ref)
            records.extend(recs)
        return Batch(tuple(refs), tuple(records))

    def _block(self, actions: int) -> tuple[BlockRef, list[MarketRecord]]:
        s = self.state
        s.number += 1
        n, now = s.number, self.t0 + 12 * s.number
        out: list[Any] = []

        def at() -> Position:
            return Position(n, self.hash(n), now, f"0x{self.forks:02x}{n:08x}{len(out):04x}", len(out))

        def move(token: str, sender: str, recipient: str, amount: int) -> None:
            out.append(Transferred(at(), token, sender, recipient, amount))
            for who, d in ((sender, -amount), (recipient, amount)):
                s.balances[(token, who)] = s.balances.get((token, who), 0) + d

        for _ in range(self.rng.randint(0, actions)):
            roll = self.rng.random()
            trading = [t for t in s.curves if t not in s.graduated]
            if (roll < 0.15 or not s.curves) and s.launched < self.max_tokens:
                s.launched += 1
                token, curve = addr(f"tok{s.launched}"), addr(f"crv{s.launched}")
                params = CurveParams(SUPPLY, 15 * 10**17, 95, 30, migration_fee=5 * 10**15, launched_at=now)
                s.curves[token] = (curve, CurveReserves(params))
                move(token, ZERO, curve, SUPPLY)
                out.append(
                    Launched(
                        at(), token, curve, addr("creator"), SUPPLY, 15 * 10**17, 95, 30, 0, 0, False, 5 * 10**15, now
                    )
                )
            elif trading and roll < 0.75:
                token = self.rng.choice(trading)
                curve, reserves = s.curves[token]
                trader = self.rng.choice(self.traders)
                try:
                    trade = buy(reserves, self.rng.randint(10**15, self.max_buy_wei), now)
                except CurveError:
                    continue
                move(token, curve, trader, trade.token_amount)
                self._trade(out, at(), token, trader, trade)
                if trade.completes:
                    native, tokens, fee = graduation(trade.after)
                    pool = addr(f"pool{token[-6:]}")
                    move(token, curve, pool, tokens)
                    out.append(Graduated(at(), curve, pool, native, tokens, 0, fee))
                    s.graduated.add(token)
            elif trading and roll < 0.9:
                token = self.rng.choice(trading)
                curve, reserves = s.curves[token]
                holding = [(t, b) for (tok, t), b in s.balances.items() if tok == token and t in self.traders and b > 0]
                if not holding:
                    continue
                trader, balance = self.rng.choice(holding)
                try:
                    trade = sell(reserves, self.rng.randint(1, balance), now)
                except CurveError:
                    continue
                move(token, trader, curve, trade.token_amount)
                self._trade(out, at(), token, trader, trade)
            else:
                holding = [(k, b) for k, b in s.balances.items() if k[1] in self.traders and b > 0]
                if holding:
                    (token, sender), balance = self.rng.choice(holding)
                    move(token, sender, self.rng.choice(self.traders), self.rng.choice([balance, balance // 2 or 1]))
        self.snapshots[n] = copy.deepcopy(s)
        return BlockRef(n, self.hash(n), self.hash(n - 1), now), out

    def _trade(self, out: list[Any], at: Position, token: str, trader: str, trade: Any) -> None:
        curve, _ = self.state.curves[token]
        after = trade.after
        self.state.curves[token] = (curve, after)
        out.append(
            Traded(
                at,
                curve,
                trader,
                trade.is_buy,
                trade.native_amount,
                trade.token_amount,
                trade.fee,
                after.virtual_native,
                after.virtual_token,
            )
        )


# ---------------------------------------------------------------------- helpers


@pytest.fixture
async def sessions(any_db_settings):
    engine = make_engine(any_db_settings.resolved_database_url)
    await upgrade_to_head(engine)
    try:
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()


class Clock:
    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now


async def leading_writer(sessions, chain: str = "ethereum", **kw: Any) -> MarketWriter:
    writer = MarketWriter(sessions, chain, **kw)
    assert await writer.acquire("indexer-1", 300)
    return writer


async def rows(sessions, model: Any, chain: str, *order: str) -> list[dict[str, Any]]:
    async with sessions() as s:
        result = await s.execute(select(model.__table__).where(model.chain == chain).order_by(*order))
        return [dict(r._mapping) for r in result]


def rounded(items: list[dict[str, Any]], drop: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Rows with floats to 12 significant digits (sums may add in another order)."""
    return [
        {k: float(f"{v:.12g}") if isinstance(v, float) else v for k, v in r.items() if k not in drop} for r in items
    ]


async def check_consistent(sessions, chain: str, sim: SimChain) -> None:
    """What the database holds is what the chain says, and candles are what the trades say."""
    trades = await rows(sessions, TradeRow, chain, "block_number", "log_index")
    by_token: dict[str, list[cdl.Tick]] = {}
    for t in trades:
        by_token.setdefault(t["token_address"], []).append(
            cdl.Tick(
                int(t["block_time"].timestamp()), t["price_native"], int(t["native_amount"]), int(t["token_amount"])
            )
        )
    expected = {(tok, iv, b): c for tok, ts in by_token.items() for (iv, b), c in cdl.fold(ts).items()}
    stored = {
        (c["token_address"], c["interval"], c["bucket"]): cdl.Candle(
            c["open"], c["high"], c["low"], c["close"], int(c["volume_native"]), int(c["volume_token"]), c["trades"]
        )
        for c in await rows(sessions, CandleRow, chain, "bucket")
    }
    assert stored == expected

    markets = {m["token_address"]: m for m in await rows(sessions, MarketRow, chain, "token_address")}
    assert set(markets) == set(sim.state.curves)
    holders = await rows(sessions, HolderRow, chain, "holder")
    for token, (_curve, reserves) in sim.state.curves.items():
        m = markets[token]
        assert (int(m["native_raised"]), int(m["tokens_sold"])) == (reserves.native_raised, reserves.tokens_sold)
        assert m["trade_count"] == len(by_token.get(token, []))
        assert m["state"] == ("graduated" if token in sim.state.graduated else "trading")
        mine = {h["holder"]: int(h["balance"]) for h in holders if h["token_address"] == token}
        assert sum(mine.values()) == SUPPLY
        assert mine == {who: b for (tok, who), b in sim.state.balances.items() if tok == token and b and who != ZERO}
        assert m["holder_count"] == len(mine)


# ---------------------------------------------------------------------- tests


async def test_a_batch_writes_markets_trades_candles_holders_and_events_once(sessions):
    async with sessions() as s, s.begin():  # a TokenForge launch of the first token
        now = utcnow()
        s.add(
            TokenRow(
                id="tok_1",
                chain="ethereum",
                network="embedded",
                name="One",
                symbol="ONE",
                decimals=18,
                supply="1000000000",
                supply_base_units=str(SUPPLY),
                creator=addr("creator"),
                status="deployed",
                job_id="job_1",
                created_at=now,
                updated_at=now,
            )
        )
        await s.flush()
        s.add(
            JobRow(
                id="job_1",
                kind="launch",
                token_id="tok_1",
                chain="ethereum",
                status="confirmed",
                max_attempts=5,
                token_address=addr("tok1").upper().replace("0X", "0x"),
                created_at=now,
                updated_at=now,
            )
        )
    writer = await leading_writer(sessions)
    sim = SimChain(7)
    batch = sim.batch(12)
    written = await writer.apply(batch, leader="indexer-1")
    traded = [r for r in batch.records if isinstance(r, Traded)]
    assert written == len(traded) > 0
    assert await writer.apply(batch, leader="indexer-1") == -1  # a replay writes nothing
    assert await MarketWriter(sessions, "ethereum").apply(batch, leader="indexer-1") == -1
    await check_consistent(sessions, "ethereum", sim)

    assert await writer.checkpoint() == batch.blocks[-1]
    assert [b.number for b in await writer.recent_blocks(3)] == [12, 11, 10]
    assert sorted(await writer.known_markets()) == sorted((t, c) for t, (c, _) in sim.state.curves.items())
    first = (await rows(sessions, MarketRow, "ethereum", "created_block"))[0]
    assert (first["token_id"], first["decimals"]) == ("tok_1", 18)
    events = await rows(sessions, MarketEventRow, "ethereum", "id")
    assert [e["kind"] for e in events if e["kind"] == "trade"] == ["trade"] * len(traded)
    assert events[0]["kind"] == "token" and events[0]["payload"]["token_id"] == "tok_1"
    assert [e["payload"]["tx_id"] for e in events if e["kind"] == "trade"] == [t.at.tx_id for t in traded]
    assert [e["block_number"] for e in events] == sorted(e["block_number"] for e in events)


async def test_trades_count_once_even_when_their_blocks_are_written_again(sessions):
    writer = await leading_writer(sessions)
    tok, crv = addr("tokA"), addr("crvA")
    token = Launched(
        Position(1, "0xb1", T0 + 12, "0xl", 1), tok, crv, addr("c"), SUPPLY, 15 * 10**17, 95, 30, 0, 0, False, 0, T0
    )
    mint = Transferred(Position(1, "0xb1", T0 + 12, "0xl", 0), tok, ZERO, crv, SUPPLY)
    launch = Batch((BlockRef(1, "0xb1", "0xb0", T0 + 12),), (mint, token))
    await writer.apply(launch, leader="indexer-1")
    vn, vt = token.virtual_native0, SUPPLY * 1073 // 1000
    trades = []
    for i in range(5):
        vn, vt = vn + 10**17, vt - 10**24
        trades.append(
            Traded(
                Position(2, "0xb2", T0 + 24, f"0xtx{i}", i),
                token.curve,
                addr("t"),
                True,
                10**17,
                10**24,
                10**15,
                vn,
                vt,
            )
        )
    batch = Batch((BlockRef(2, "0xb2", launch.blocks[-1].hash, T0 + 24),), tuple(trades))
    assert await writer.apply(batch, leader="indexer-1") == 5
    before = (await rows(sessions, CandleRow, "ethereum", "interval"), await rows(sessions, MarketRow, "ethereum"))
    async with sessions() as s, s.begin():  # the checkpoint is behind the stored trades
        await s.execute(update(IndexCheckpointRow).values(block_number=1))
    assert await writer.apply(batch, leader="indexer-1") == 0
    after = (await rows(sessions, CandleRow, "ethereum", "interval"), await rows(sessions, MarketRow, "ethereum"))
    assert after == before
    assert (await rows(sessions, MarketRow, "ethereum"))[0]["trade_count"] == 5


async def table_state(sessions, chain: str) -> dict[str, Any]:
    events = await rows(sessions, MarketEventRow, chain, "id")
    async with sessions() as s:
        checkpoint = (await s.execute(select(IndexCheckpointRow.block_number, IndexCheckpointRow.block_hash))).one()
    return {
        "markets": rounded(await rows(sessions, MarketRow, chain, "token_address")),
        "trades": rounded(await rows(sessions, TradeRow, chain, "block_number", "log_index")),
        "candles": rounded(await rows(sessions, CandleRow, chain, "token_address", "interval", "bucket")),
        "holders": rounded(await rows(sessions, HolderRow, chain, "token_address", "holder")),
        "changes": rounded(await rows(sessions, HolderChangeRow, chain, "seq"), drop=("seq",)),
        "blocks": await rows(sessions, IndexedBlockRow, chain, "number"),
        "events": [(e["kind"], e["block_number"], e["payload"]) for e in events if e["kind"] != "rollback"],
        "checkpoint": tuple(checkpoint),
    }


async def test_rollback_restores_exactly_the_state_before_the_orphaned_blocks(sessions):
    writer = await leading_writer(sessions)
    sim = SimChain(11, max_tokens=4)
    for _ in range(3):
        await writer.apply(sim.batch(5), leader="indexer-1")
    before = await table_state(sessions, "ethereum")
    orphaned = [sim.batch(4, actions=6) for _ in range(3)]  # launches, trades, graduations above block 15
    written = [await writer.apply(b, leader="indexer-1") for b in orphaned]
    assert await table_state(sessions, "ethereum") != before
    assert await writer.rollback(15, leader="indexer-1") == sum(written)
    assert await table_state(sessions, "ethereum") == before
    assert (await writer.checkpoint()).number == 15  # type: ignore[union-attr]
    last = (await rows(sessions, MarketEventRow, "ethereum", "id"))[-1]
    assert (last["kind"], last["payload"]["first_orphaned_block"]) == ("rollback", 16)
    sim.fork(15)
    await writer.apply(sim.batch(6, actions=6), leader="indexer-1")  # the new branch
    await check_consistent(sessions, "ethereum", sim)


CHAINS = iter(range(10**6))


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(
    seed=st.integers(0, 2**32),
    steps=st.lists(
        st.one_of(st.tuples(st.just("apply"), st.integers(1, 6)), st.tuples(st.just("reorg"), st.integers(0, 5))),
        min_size=1,
        max_size=8,
    ),
)
async def test_candles_and_holders_match_the_chain_after_random_batches_and_reorgs(sessions, seed, steps):
    chain = f"sim{next(CHAINS)}"  # one database for every example: a chain each
    writer = MarketWriter(sessions, chain)
    assert await writer.acquire("indexer-1", 300)
    sim = SimChain(seed)
    for kind, n in steps:
        if kind == "apply":
            assert await writer.apply(sim.batch(n, actions=4), leader="indexer-1") >= 0
        else:
            to_block = max(0, sim.state.number - n)
            await writer.rollback(to_block, leader="indexer-1")
            sim.fork(to_block)
        await check_consistent(sessions, chain, sim)


async def test_the_lease_fences_a_second_writer(sessions):
    clock = Clock()
    first = MarketWriter(sessions, "ethereum", clock=clock)
    second = MarketWriter(sessions, "ethereum", clock=clock)
    assert await first.acquire("indexer-1", 10)
    assert not await second.acquire("indexer-2", 10)
    sim = SimChain(5)
    batch = sim.batch(4)
    assert await second.apply(batch, leader="indexer-2") == -1
    assert await second.rollback(0, leader="indexer-2") == -1
    assert await first.apply(batch, leader="indexer-1") >= 0
    assert await first.acquire("indexer-1", 10)  # renewing
    clock.now += 11  # the first process stalls beyond its lease
    assert await second.acquire("indexer-2", 10)
    late = sim.batch(2)
    assert await first.apply(late, leader="indexer-1") == -1
    assert not await first.acquire("indexer-1", 10)
    assert await second.apply(late, leader="indexer-2") >= 0
    await check_consistent(sessions, "ethereum", sim)


async def test_24h_figures_follow_the_window_and_old_1s_candles_are_pruned(sessions):
    clock = Clock(T0 + 3 * 86400)
    writer = MarketWriter(sessions, "ethereum", clock=clock, retention_1s_s=86400)
    assert await writer.acquire("indexer-1", 300)
    sim = SimChain(21)
    await writer.apply(sim.batch(20, actions=4), leader="indexer-1")
    markets = await rows(sessions, MarketRow, "ethereum")
    traded = [m for m in markets if m["trade_count"]]
    assert traded and all(m["volume_24h_native"] > 0 for m in traded)
    for m in traded:
        assert m["price_change_24h_pct"] is not None
    candles = await rows(sessions, CandleRow, "ethereum")
    assert candles and not [c for c in candles if c["interval"] == "1s"]  # 3 days old: pruned
    assert await writer.refresh_24h(T0 + 2 * 86400) == len(traded)
    assert all(
        m["volume_24h_native"] == 0 and m["price_change_24h_pct"] is None
        for m in await rows(sessions, MarketRow, "ethereum")
    )
    assert await writer.refresh_24h(T0 + 2 * 86400) == 0


async def test_old_block_times_get_their_monthly_partition_on_postgresql(postgres_url):
    engine = make_engine(postgres_url)
    await upgrade_to_head(engine)
    sessions = make_sessionmaker(engine)
    try:
        writer = await leading_writer(sessions)
        sim = SimChain(9, t0=1_546_300_800)  # January 2019
        await writer.apply(sim.batch(10, actions=4), leader="indexer-1")
        async with sessions() as s:
            found = (
                await s.execute(text("SELECT count(*) FROM trades_p201901")),
                await s.execute(text("SELECT count(*) FROM trades")),
            )
            in_partition, total = found[0].scalar_one(), found[1].scalar_one()
        assert in_partition == total > 0
    finally:
        await engine.dispose()


async def test_replaying_a_backlog_writes_at_least_500_trades_a_second(sessions, capsys):
    writer = await leading_writer(sessions)
    sim = SimChain(1, max_tokens=20, max_buy_wei=10**16)
    batches = [sim.batch(25, actions=30) for _ in range(8)]
    count = sum(1 for b in batches for r in b.records if isinstance(r, Traded))
    started = time.perf_counter()
    for b in batches:
        await writer.apply(b, leader="indexer-1")
    elapsed = time.perf_counter() - started
    with capsys.disabled():
        print(f"\nmarket writer: {count} trades in {elapsed:.2f} s = {count / elapsed:.0f} trades/s")
    assert count > 1000
    assert count / elapsed >= 500
