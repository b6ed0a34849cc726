"""Derived tables of the market indexer in the database: candles, 24 h figures, holders.

Used by :class:`~tokenforge.market.indexer.writer.MarketWriter` inside its transactions
(which are fenced): nothing here opens a transaction or checks the lease.

* candles: the batch's candles (:func:`tokenforge.market.candles.fold`) are merged into the
  stored ones in Python (exact integer volumes on both databases) and upserted in one
  statement;
* 24 h figures: from the 1h candles of the 24 hourly buckets up to ``now_s`` (one grouped
  query): ``volume_24h_native`` in whole native coins and ``price_change_24h_pct`` against
  the open of the window's first candle (None without one);
* holders: signed changes added to stored balances, zero balances deleted, holder counts
  moved;
* retention: bounded deletes of old 1s candles.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import and_, bindparam, delete, or_, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from tokenforge.market import candles as cdl
from tokenforge.store.db import dialect_name, rows_matched
from tokenforge.store.models import CandleRow, HolderRow, table

CANDLES, HOLDERS = table(CandleRow), table(HolderRow)
#: Most 1s candles one retention pass deletes.
PRUNE_BATCH = 5000
#: Rows per ``IN (…)`` list (SQLite caps bound parameters per statement).
CHUNK = 500

Market = dict[str, Any]


def chunks(items: Iterable[Any], size: int = CHUNK) -> Iterable[list[Any]]:
    items = list(items)
    for i in range(0, len(items), size):
        yield items[i : i + size]


def insert_for(s: AsyncSession) -> Any:
    """The dialect's ``insert`` (with ``on_conflict_do_*``) for ``s``'s database."""
    return postgresql.insert if dialect_name(s) == "postgresql" else sqlite.insert


def window_start(now_s: int) -> int:
    """The first 1h bucket of the 24 h window ending at ``now_s`` (24 hourly buckets)."""
    return cdl.bucket_of(now_s, 3600) - 23 * 3600


class Aggregates:
    """The derived tables of one chain's markets (module docstring)."""

    def __init__(self, chain: str, *, native_decimals: int, retention_1s_s: float) -> None:
        self.chain = chain
        self.native_decimals = native_decimals
        self.retention_1s_s = retention_1s_s

    async def upsert_candles(self, s: AsyncSession, ticks: dict[str, list[cdl.Tick]]) -> None:
        """Merges the new trades' candles into the stored ones (read, merge, one upsert)."""
        if not ticks:
            return
        new = {(token, iv, b): c for token, ts in ticks.items() for (iv, b), c in cdl.fold(ts).items()}
        stored = await self.load_candles(s, new)
        rows = []
        for key, candle in new.items():
            merged = stored[key].then(candle) if key in stored else candle
            rows.append(self.candle_row(key, merged))
        ins = insert_for(s)(CANDLES)
        await s.execute(
            ins.on_conflict_do_update(
                index_elements=["chain", "token_address", "interval", "bucket"],
                set_={
                    c: ins.excluded[c]
                    for c in ("open", "high", "low", "close", "volume_native", "volume_token", "trades")
                },
            ),
            rows,
        )

    def candle_row(self, key: tuple[str, str, int], c: cdl.Candle) -> dict[str, Any]:
        token, interval, bucket = key
        return {
            "chain": self.chain,
            "token_address": token,
            "interval": interval,
            "bucket": bucket,
            "open": c.open,
            "high": c.high,
            "low": c.low,
            "close": c.close,
            "volume_native": str(c.volume_native),
            "volume_token": str(c.volume_token),
            "trades": c.trades,
        }

    async def load_candles(
        self, s: AsyncSession, keys: Iterable[tuple[str, str, int]]
    ) -> dict[tuple[str, str, int], cdl.Candle]:
        """The stored candles among ``keys`` (token, interval, bucket): one query per token chunk,
        each interval's bucket range."""
        spans: dict[str, tuple[int, int]] = {}
        tokens: set[str] = set()
        for token, iv, b in keys:
            tokens.add(token)
            lo, hi = spans.get(iv, (b, b))
            spans[iv] = (min(lo, b), max(hi, b))
        wanted = set(keys)
        out: dict[tuple[str, str, int], cdl.Candle] = {}
        c = CANDLES.c
        for part in chunks(tokens):
            rows = await s.execute(
                select(CANDLES).where(
                    c.chain == self.chain,
                    c.token_address.in_(part),
                    or_(*(and_(c.interval == iv, c.bucket.between(lo, hi)) for iv, (lo, hi) in spans.items())),
                )
            )
            for r in rows:
                key = (r.token_address, r.interval, r.bucket)
                if key in wanted:
                    out[key] = cdl.Candle(
                        r.open, r.high, r.low, r.close, int(r.volume_native), int(r.volume_token), r.trades
                    )
        return out

    async def set_24h(self, s: AsyncSession, markets: list[Market], now_s: int) -> None:
        """Sets ``volume_24h_native`` and ``price_change_24h_pct`` of ``markets`` from their
        1h candles of the 24 h up to ``now_s`` (one grouped query per chunk of tokens)."""
        if not markets:
            return
        c = CANDLES.c
        for part in chunks(markets):
            tokens = [m["token_address"] for m in part]
            found = await self.window_figures(s, now_s, c.token_address.in_(tokens))
            for m in part:
                volume, first_open = found.get(m["token_address"], (0.0, None))
                m["volume_24h_native"] = volume
                m["price_change_24h_pct"] = (m["price_native"] / first_open - 1.0) * 100.0 if first_open else None

    async def window_figures(self, s: AsyncSession, now_s: int, *where: Any) -> dict[str, tuple[float, float | None]]:
        """token → (24 h volume in whole native coins, open of the window's first 1h candle).

        One query for the window's 1h candles (at most 24 a token), summed here in exact
        integers: volumes are decimal strings of up to 78 digits, and a database's own
        text-to-float conversion of numbers beyond 64 bits is not to be relied on (SQLite's
        answered 0 for them in a process where other native code had run)."""
        c = CANDLES.c
        scope = [c.chain == self.chain, c.interval == "1h", c.bucket >= window_start(now_s), *where]
        rows = await s.execute(select(c.token_address, c.bucket, c.volume_native, c.open).where(*scope))
        volume: dict[str, int] = {}
        first: dict[str, tuple[int, float]] = {}
        for row in rows:
            token, bucket, vol, open_ = str(row[0]), int(row[1]), str(row[2]), float(row[3])
            volume[token] = volume.get(token, 0) + int(vol)
            if token not in first or bucket < first[token][0]:
                first[token] = (bucket, open_)
        scale = 10**self.native_decimals
        return {token: (total / scale, first[token][1]) for token, total in volume.items()}

    async def move_balances(
        self, s: AsyncSession, deltas: dict[tuple[str, str], tuple[int, int]], markets: dict[str, Market]
    ) -> set[str]:
        """Adds ``deltas`` ((token, holder) → (change, block of the change)) to the stored
        balances and the holder counts in ``markets``; returns tokens whose count changed."""
        stored = await self.load_balances(s, deltas)
        upserts, gone = [], []
        counted: dict[str, int] = defaultdict(int)
        for (tok, h), (d, block) in deltas.items():
            before = stored.get((tok, h), 0)
            after = before + d
            if before == after == 0:
                continue
            if after == 0:
                gone.append({"k_token": tok, "k_holder": h})
            else:
                upserts.append(
                    {
                        "chain": self.chain,
                        "token_address": tok,
                        "holder": h,
                        "balance": str(after),
                        "balance_sort": float(after),
                        "updated_block": block,
                    }
                )
            counted[tok] += (after != 0) - (before != 0)
        if upserts:
            ins = insert_for(s)(HOLDERS)
            await s.execute(
                ins.on_conflict_do_update(
                    index_elements=["chain", "token_address", "holder"],
                    set_={c: ins.excluded[c] for c in ("balance", "balance_sort", "updated_block")},
                ),
                upserts,
            )
        if gone:
            await s.execute(
                delete(HOLDERS).where(
                    HOLDERS.c.chain == self.chain,
                    HOLDERS.c.token_address == bindparam("k_token"),
                    HOLDERS.c.holder == bindparam("k_holder"),
                ),
                gone,
            )
        changed = set()
        for tok, n in counted.items():
            if n and tok in markets:
                markets[tok]["holder_count"] += n
                changed.add(tok)
        return changed

    async def load_balances(self, s: AsyncSession, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
        by_token: dict[str, list[str]] = defaultdict(list)
        for tok, h in keys:
            by_token[tok].append(h)
        out: dict[tuple[str, str], int] = {}
        for tok, holders in by_token.items():
            for part in chunks(holders):
                rows = await s.execute(
                    select(HOLDERS.c.holder, HOLDERS.c.balance).where(
                        HOLDERS.c.chain == self.chain, HOLDERS.c.token_address == tok, HOLDERS.c.holder.in_(part)
                    )
                )
                out.update({(tok, r[0]): int(r[1]) for r in rows})
        return out

    async def prune_candles(self, s: AsyncSession, now_s: float) -> int:
        """Deletes up to :data:`PRUNE_BATCH` 1s candles older than ``retention_1s_s``."""
        c = CANDLES.c
        oldest = (
            select(c.token_address, c.bucket)
            .where(c.chain == self.chain, c.interval == "1s", c.bucket < int(now_s - self.retention_1s_s))
            .limit(PRUNE_BATCH)
        )
        result = await s.execute(
            delete(CANDLES).where(
                c.chain == self.chain, c.interval == "1s", tuple_(c.token_address, c.bucket).in_(oldest)
            )
        )
        return rows_matched(result)
