"""Undoing the blocks above a fork point (a reorg), inside :meth:`MarketWriter.rollback`'s
transaction (the writer has fenced it already).

In order: the trades above ``to_block`` are deleted; balances lose the changes recorded
above it (``holder_changes``, which the writer keeps for :data:`~.writer.KEEP_BLOCKS`);
every candle those trades fell in is recomputed from the trades that remain in its bucket
(and deleted when none remain); markets launched above it are deleted with their candles
and holders; markets graduated above it trade again; the state of every affected market is
recomputed from its newest remaining trade (or its launch terms), its ATH and trade count
from all its remaining trades, its 24 h figures at the new checkpoint's block time; market
events above it are deleted (earlier ``rollback`` events are kept) and one ``rollback``
event names the first orphaned block; ``indexed_blocks`` above it are deleted and the
checkpoint moves to ``to_block`` with its stored hash — or, when ``to_block`` was not
stored (it had no records), to the newest stored block below it, which is equivalent (the
blocks between hold no records); with no stored block at all, to ``(to_block, "")``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tokenforge.market import candles as cdl
from tokenforge.market.indexer.aggregates import Market, chunks
from tokenforge.market.indexer.writer import (
    BLOCKS,
    CANDLES,
    CHANGES,
    CHECKPOINTS,
    EVENTS,
    HOLDERS,
    MARKETS,
    TRADES,
    at,
    order_events,
)
from tokenforge.store.db import utcnow

if TYPE_CHECKING:
    from tokenforge.market.indexer.writer import MarketWriter


async def roll_back(w: MarketWriter, s: AsyncSession, to_block: int) -> int:
    """Undoes every block above ``to_block``; returns the trades removed."""
    chain, t = w.chain, TRADES.c
    removed_rows = (
        await s.execute(select(t.token_address, t.block_time).where(t.chain == chain, t.block_number > to_block))
    ).all()
    keys: set[tuple[str, str, int]] = set()
    earliest: dict[str, int] = {}
    for row in removed_rows:
        token, block_time = str(row[0]), row[1]
        moment = int(block_time.timestamp())
        earliest[token] = min(earliest.get(token, moment), moment)
        keys.update((token, iv, cdl.bucket_of(moment, sec)) for iv, sec in cdl.INTERVALS.items())
    if removed_rows:
        await s.execute(delete(TRADES).where(t.chain == chain, t.block_number > to_block))

    m = MARKETS.c
    orphaned: set[str] = set(
        (await s.execute(select(m.token_address).where(m.chain == chain, m.created_block > to_block))).scalars()
    )
    ungraduated: set[str] = set(
        (await s.execute(select(m.token_address).where(m.chain == chain, m.graduated_block > to_block))).scalars()
    )
    reversed_deltas = await _reverse_holder_changes(w, s, to_block)
    markets = await w.load_markets(
        s, tokens=set(earliest) | ungraduated | {tok for tok, _ in reversed_deltas}, curves=set()
    )
    await w.agg.move_balances(s, reversed_deltas, markets)
    await s.execute(delete(CHANGES).where(CHANGES.c.chain == chain, CHANGES.c.block_number > to_block))

    await _recompute_candles(w, s, keys, {tok: e for tok, e in earliest.items() if tok not in orphaned})
    if orphaned:
        for part in chunks(orphaned):
            for tbl in (CANDLES, HOLDERS, MARKETS):
                await s.execute(delete(tbl).where(tbl.c.chain == chain, tbl.c.token_address.in_(part)))

    now_s = await _checkpoint_to(w, s, to_block)
    restate = [markets[tok] for tok in (set(earliest) | ungraduated) - orphaned if tok in markets]
    for market in restate:
        if market["token_address"] in ungraduated:
            market.update(state="trading", pair_address=None, graduated_at=None, graduated_block=None)
    await _recompute_state(w, s, restate)
    await w.agg.set_24h(s, restate, now_s)
    survivors = [mk for tok, mk in markets.items() if tok not in orphaned]
    await w.write_markets(s, survivors, created=set())

    e = EVENTS.c
    await s.execute(delete(EVENTS).where(e.chain == chain, e.block_number > to_block, e.kind != "rollback"))
    await order_events(s)
    await s.execute(
        EVENTS.insert().values(
            chain=chain,
            token_address=None,
            kind="rollback",
            block_number=to_block,
            payload={"first_orphaned_block": to_block + 1, "trades_removed": len(removed_rows)},
            created_at=utcnow(),
        )
    )
    return len(removed_rows)


async def _reverse_holder_changes(
    w: MarketWriter, s: AsyncSession, to_block: int
) -> dict[tuple[str, str], tuple[int, int]]:
    """(token, holder) → (minus the changes above ``to_block``, the block of the holder's
    newest remaining change, else ``to_block``)."""
    c = CHANGES.c
    rows = await s.execute(
        select(c.token_address, c.holder, c.delta).where(c.chain == w.chain, c.block_number > to_block)
    )
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for change in rows:
        totals[(change.token_address, change.holder)] -= int(change.delta)
    latest: dict[tuple[str, str], int] = {}
    by_token: dict[str, list[str]] = defaultdict(list)
    for token, holder in totals:
        by_token[token].append(holder)
    for token, holders in by_token.items():
        for part in chunks(holders):
            found = await s.execute(
                select(c.holder, func.max(c.block_number))
                .where(c.chain == w.chain, c.token_address == token, c.holder.in_(part), c.block_number <= to_block)
                .group_by(c.holder)
            )
            latest.update({(token, r[0]): int(r[1]) for r in found})
    return {key: (d, latest.get(key, to_block)) for key, d in totals.items()}


async def _recompute_candles(
    w: MarketWriter, s: AsyncSession, keys: set[tuple[str, str, int]], earliest: dict[str, int]
) -> None:
    """Rebuilds the candles ``keys`` of the surviving tokens ``earliest`` (token → its oldest
    removed trade's time) from the remaining trades."""
    if not keys:
        return
    c, t = CANDLES.c, TRADES.c
    await s.execute(
        delete(CANDLES).where(
            c.chain == w.chain,
            c.token_address == bindparam("k_token"),
            c.interval == bindparam("k_interval"),
            c.bucket == bindparam("k_bucket"),
        ),
        [{"k_token": tok, "k_interval": iv, "k_bucket": b} for tok, iv, b in keys],
    )
    if not earliest:
        return
    since = at(cdl.bucket_of(min(earliest.values()), cdl.INTERVALS["1d"]))
    ticks: dict[str, list[cdl.Tick]] = defaultdict(list)
    for part in chunks(earliest):
        rows = await s.execute(
            select(t.token_address, t.block_time, t.price_native, t.native_amount, t.token_amount)
            .where(t.chain == w.chain, t.token_address.in_(part), t.block_time >= since)
            .order_by(t.block_number, t.log_index)
        )
        for r in rows:
            tick = cdl.Tick(int(r.block_time.timestamp()), r.price_native, int(r.native_amount), int(r.token_amount))
            ticks[r.token_address].append(tick)
    rows_out = [
        w.agg.candle_row((token, iv, b), candle)
        for token, ts in ticks.items()
        for (iv, b), candle in cdl.fold(ts).items()
        if (token, iv, b) in keys
    ]
    if rows_out:
        await s.execute(CANDLES.insert(), rows_out)


async def _recompute_state(w: MarketWriter, s: AsyncSession, markets: list[Market]) -> None:
    """Sets each market's state from its remaining trades (grouped queries per chunk)."""
    t = TRADES.c
    for part in chunks(markets):
        tokens = [mk["token_address"] for mk in part]
        scope = (t.chain == w.chain, t.token_address.in_(tokens))
        agg = {
            r[0]: (int(r[1]), float(r[2]))
            for r in await s.execute(
                select(t.token_address, func.count(), func.max(t.price_native)).where(*scope).group_by(t.token_address)
            )
        }
        rank = func.row_number().over(
            partition_by=t.token_address, order_by=(t.block_number.desc(), t.log_index.desc())
        )
        inner = (
            select(t.token_address, t.virtual_native, t.virtual_token, t.block_time, t.block_number, rank.label("rank"))
            .where(*scope)
            .subquery()
        )
        newest: dict[str, Any] = {r.token_address: r for r in await s.execute(select(inner).where(inner.c.rank == 1))}
        for mk in part:
            graduated = (mk["state"], mk["pair_address"], mk["graduated_at"], mk["graduated_block"])
            holders = mk["holder_count"]
            w.launch_state(mk)
            mk.update(
                state=graduated[0], pair_address=graduated[1], graduated_at=graduated[2], graduated_block=graduated[3]
            )
            mk["holder_count"] = holders
            mk["updated_block"] = max(mk["created_block"], mk["graduated_block"] or 0)
            last = newest.get(mk["token_address"])
            if last is None:
                continue
            count, top = agg[mk["token_address"]]
            w.set_reserves(mk, int(last.virtual_native), int(last.virtual_token))
            mk.update(
                ath_price_native=max(mk["ath_price_native"], top),
                trade_count=count,
                last_trade_at=last.block_time,
                updated_block=max(mk["updated_block"], int(last.block_number)),
            )


async def _checkpoint_to(w: MarketWriter, s: AsyncSession, to_block: int) -> int:
    """Deletes the blocks above ``to_block`` and moves the checkpoint (module docstring);
    returns the new checkpoint's block time (the clock's time when it is unknown)."""
    b = BLOCKS.c
    await s.execute(delete(BLOCKS).where(b.chain == w.chain, b.number > to_block))
    below = (
        await s.execute(
            select(b.number, b.hash, b.timestamp).where(b.chain == w.chain).order_by(b.number.desc()).limit(1)
        )
    ).first()
    number, block_hash, now_s = (below[0], below[1], int(below[2])) if below else (to_block, "", int(w.clock()))
    await s.execute(
        update(CHECKPOINTS)
        .where(CHECKPOINTS.c.chain == w.chain)
        .values(block_number=number, block_hash=block_hash, updated_at=utcnow())
    )
    return now_s
