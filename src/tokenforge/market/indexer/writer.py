"""The indexer's database side: one transaction per batch of blocks (:class:`MarketWriter`).

Implements :class:`tokenforge.market.indexer.ports.MarketStore` on SQLite and PostgreSQL.

**Fence.** Every write first reads the chain's ``index_checkpoints`` row (``FOR UPDATE`` on
PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` serialises writers) and writes nothing unless the
caller holds an unexpired lease and, for :meth:`~MarketWriter.apply`, the checkpoint is
below the batch's first block. A replayed batch, or one from a process that lost its lease,
therefore returns -1 and changes nothing. Trades are also idempotent on their own:
``INSERT … ON CONFLICT DO NOTHING … RETURNING`` tells which were new, and only those move
candles, market state and the event feed. Holder balances rely on the fence alone
(a ``Transfer`` has no key of its own in ``holder_changes``).

**What a batch writes** (bulk statements, a handful per batch whatever its size):

* ``Launched`` → a ``markets`` row (``token_id`` from the launch job with that token
  address, decimals from its token, 18 for a token launched outside TokenForge) and a
  ``token`` market event.
* ``Traded`` → ``trades`` rows (monthly partitions ensured first on PostgreSQL); the new ones
  update candles of every interval (stored candle merged with the batch's, exact integer
  volumes), the market's reserves, price, market cap, progress, ATH, trade count and last
  trade, and add ``trade`` events. Trades of a curve never launched are ignored.
* ``Graduated`` → the market becomes ``graduated`` with its pool, and a ``graduation`` event.
* ``Transferred`` → ``holders`` balances (zero balances deleted, the zero address is not a
  holder), one ``holder_changes`` row per (block, token, holder) with the signed net change,
  and ``markets.holder_count``.
* the batch's blocks into ``indexed_blocks``; blocks and holder changes more than
  :data:`KEEP_BLOCKS` below the batch's last block are pruned; the checkpoint moves to it.
* 24 h figures of the traded tokens from their 1h candles (one grouped query): the
  24 hourly buckets up to the batch's last block time. :meth:`~MarketWriter.refresh_24h`
  does the same for every market with non-zero figures, for the runner to call each minute.
* at most once a minute, up to :data:`~.aggregates.PRUNE_BATCH` 1s candles older than
  ``retention_1s_s`` are deleted.

``markets.updated_block`` is the block of the market's last launch, trade or graduation;
``volume_24h_native`` is in whole native coins (a float, for sorting). Market event
payloads (JSON): ``token`` {token, token_id, curve, creator, supply, decimals, tx_id,
block_time, price_native}; ``trade`` {token, token_id, curve, tx_id, log_index,
block_number, block_time, trader, side, native_amount, token_amount, fee, price_native,
market_cap_native, progress_bps}; ``graduation`` {token, token_id, curve, pool, tx_id,
block_time, native_liquidity, token_liquidity}; ``rollback`` {first_orphaned_block,
trades_removed}. Amounts are decimal strings, times RFC 3339.

:meth:`~MarketWriter.rollback` is in :mod:`.rollback` (same transaction rules); candles, 24 h
figures, holders and retention in :mod:`.aggregates`.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tokenforge.domain.curve import CurveParams
from tokenforge.market import candles as cdl
from tokenforge.market.events import Batch, BlockRef, Graduated, Launched, Traded, Transferred
from tokenforge.market.indexer.aggregates import Aggregates, Market, chunks, insert_for
from tokenforge.store.db import rows_matched, utcnow
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
    table,
)
from tokenforge.store.partitions import ensure_trade_partitions

MARKETS, TRADES, CANDLES = table(MarketRow), table(TradeRow), table(CandleRow)
HOLDERS, CHANGES, BLOCKS = table(HolderRow), table(HolderChangeRow), table(IndexedBlockRow)
CHECKPOINTS, EVENTS = table(IndexCheckpointRow), table(MarketEventRow)
#: PostgreSQL advisory lock key that orders ``market_events`` inserts (any constant).
EVENT_ORDER_LOCK = 0x7466_6D65  # "tfme"


async def order_events(s: AsyncSession) -> None:
    """On PostgreSQL, makes ``market_events`` ids commit in id order across chains: each
    chain's indexer inserts in its own transaction, and a stream reading "after id N" must
    never see N+10 commit before N+1 (it would skip N+1 for good). The transaction-scoped
    advisory lock is taken just before the insert and held to the commit; SQLite already
    serialises writers."""
    if s.get_bind().dialect.name == "postgresql":
        await s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": EVENT_ORDER_LOCK})


#: Blocks kept below the tip in ``indexed_blocks`` and ``holder_changes`` (deepest reorg undone).
KEEP_BLOCKS = 1000
#: Addresses that mint and burn; never holders.
NOT_HOLDERS = frozenset({"0x" + "0" * 40, "11111111111111111111111111111111"})
#: Market columns a batch may change (written for every touched market).
STATE_COLUMNS = (
    "native_raised",
    "tokens_sold",
    "price_native",
    "market_cap_native",
    "progress_bps",
    "volume_24h_native",
    "price_change_24h_pct",
    "ath_price_native",
    "trade_count",
    "holder_count",
    "last_trade_at",
    "state",
    "pair_address",
    "graduated_at",
    "graduated_block",
    "updated_block",
)


def at(unix_s: int) -> datetime:
    return datetime.fromtimestamp(unix_s, UTC)


class MarketWriter:
    """The :class:`~tokenforge.market.indexer.ports.MarketStore` of one chain (module docstring).

    ``native_decimals``: 18 on EVM, 9 on Solana. ``retention_1s_s``: age of the oldest 1s
    candle kept. ``clock``: unix seconds, for leases and retention."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        chain: str,
        *,
        native_decimals: int = 18,
        retention_1s_s: float = 86400,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.chain = chain
        self._sessions = sessions
        self.native_decimals = native_decimals
        self.retention_1s_s = retention_1s_s
        self.clock = clock
        self._pruned_at = float("-inf")
        self.agg = Aggregates(chain, native_decimals=native_decimals, retention_1s_s=retention_1s_s)

    # ------------------------------------------------------------------ reads and the lease

    async def checkpoint(self) -> BlockRef | None:
        async with self._sessions() as s:
            row = (
                await s.execute(
                    select(
                        CHECKPOINTS.c.block_number, CHECKPOINTS.c.block_hash, BLOCKS.c.parent_hash, BLOCKS.c.timestamp
                    )
                    .outerjoin(
                        BLOCKS,
                        and_(BLOCKS.c.chain == CHECKPOINTS.c.chain, BLOCKS.c.number == CHECKPOINTS.c.block_number),
                    )
                    .where(CHECKPOINTS.c.chain == self.chain)
                )
            ).first()
        if row is None or row.block_number < 0:
            return None
        return BlockRef(row.block_number, row.block_hash, row.parent_hash or "", row.timestamp or 0)

    async def recent_blocks(self, limit: int) -> Sequence[BlockRef]:
        async with self._sessions() as s:
            rows = await s.execute(
                select(BLOCKS.c.number, BLOCKS.c.hash, BLOCKS.c.parent_hash, BLOCKS.c.timestamp)
                .where(BLOCKS.c.chain == self.chain)
                .order_by(BLOCKS.c.number.desc())
                .limit(limit)
            )
            return [BlockRef(r.number, r.hash, r.parent_hash, r.timestamp) for r in rows]

    async def known_markets(self) -> list[tuple[str, str]]:
        async with self._sessions() as s:
            rows = await s.execute(
                select(MARKETS.c.token_address, MARKETS.c.curve_address).where(MARKETS.c.chain == self.chain)
            )
            return [(r[0], r[1]) for r in rows]

    async def acquire(self, leader: str, lease_s: float) -> bool:
        """Takes or renews the lease: one conditional UPDATE, or the row's INSERT on first use
        (checkpoint -1, i.e. none)."""
        now = self.clock()
        async with self._sessions() as s, s.begin():
            renewed = await s.execute(
                update(CHECKPOINTS)
                .where(
                    CHECKPOINTS.c.chain == self.chain,
                    or_(
                        CHECKPOINTS.c.leader == leader,
                        CHECKPOINTS.c.leader.is_(None),
                        CHECKPOINTS.c.lease_until.is_(None),
                        CHECKPOINTS.c.lease_until < now,
                    ),
                )
                .values(leader=leader, lease_until=now + lease_s, updated_at=utcnow())
            )
            if rows_matched(renewed) == 1:
                return True
            created = await s.execute(
                insert_for(s)(CHECKPOINTS)
                .values(
                    chain=self.chain,
                    block_number=-1,
                    block_hash="",
                    leader=leader,
                    lease_until=now + lease_s,
                    updated_at=utcnow(),
                )
                .on_conflict_do_nothing()
            )
            return rows_matched(created) == 1

    async def fence(self, s: AsyncSession, leader: str) -> int | None:
        """The checkpoint's block number (-1: none) with its row locked, or None when
        ``leader`` does not hold an unexpired lease."""
        row = (
            await s.execute(
                select(CHECKPOINTS.c.block_number, CHECKPOINTS.c.leader, CHECKPOINTS.c.lease_until)
                .where(CHECKPOINTS.c.chain == self.chain)
                .with_for_update()
            )
        ).first()
        if row is None or row.leader != leader or row.lease_until is None or row.lease_until < self.clock():
            return None
        return int(row.block_number)

    # ------------------------------------------------------------------ apply

    async def apply(self, batch: Batch, *, leader: str) -> int:
        if not batch.blocks:
            return 0
        async with self._sessions() as s, s.begin():
            checkpoint = await self.fence(s, leader)
            if checkpoint is None or checkpoint >= batch.blocks[0].number:
                return -1
            new_trades = await self._write(s, batch)
            if self.clock() - self._pruned_at >= 60:
                await self.agg.prune_candles(s, self.clock())
                self._pruned_at = self.clock()
            return new_trades

    async def _write(self, s: AsyncSession, batch: Batch) -> int:
        tip = batch.blocks[-1]
        launches = [r for r in batch.records if isinstance(r, Launched)]
        trades = [r for r in batch.records if isinstance(r, Traded)]
        transfers = [r for r in batch.records if isinstance(r, Transferred)]
        curves = {r.curve for r in batch.records if isinstance(r, Traded | Graduated)}
        markets = await self.load_markets(s, tokens={r.token for r in launches + transfers}, curves=curves)
        created = await self._launch(s, launches, markets)
        by_curve = {m["curve_address"]: m for m in markets.values()}

        fresh = await self._insert_trades(s, [t for t in trades if t.curve in by_curve], by_curve)
        events: list[dict[str, Any]] = []
        ticks: dict[str, list[cdl.Tick]] = defaultdict(list)
        touched: set[str] = set(created)
        for r in batch.records:
            if isinstance(r, Launched) and r.token in created:
                events.append(
                    self._event(r.token, "token", r.at.block_number, self._token_payload(markets[r.token], r))
                )
            elif isinstance(r, Traded) and (r.at.tx_id, r.at.log_index) in fresh:
                m = by_curve[r.curve]
                price = self.set_reserves(m, r.virtual_native, r.virtual_token)
                m["ath_price_native"] = max(m["ath_price_native"], price)
                m["trade_count"] += 1
                m["last_trade_at"] = at(r.at.block_time)
                m["updated_block"] = r.at.block_number
                ticks[m["token_address"]].append(cdl.Tick(r.at.block_time, price, r.native_amount, r.token_amount))
                touched.add(m["token_address"])
                events.append(self._event(m["token_address"], "trade", r.at.block_number, self._trade_payload(m, r)))
            elif isinstance(r, Graduated) and r.curve in by_curve and by_curve[r.curve]["state"] != "graduated":
                m = by_curve[r.curve]
                m.update(
                    state="graduated",
                    pair_address=r.pool,
                    graduated_at=at(r.at.block_time),
                    graduated_block=r.at.block_number,
                    updated_block=r.at.block_number,
                )
                touched.add(m["token_address"])
                events.append(
                    self._event(m["token_address"], "graduation", r.at.block_number, self._grad_payload(m, r))
                )

        await self.agg.upsert_candles(s, ticks)
        await self.agg.set_24h(s, [markets[t] for t in ticks], tip.timestamp)
        touched |= await self._holders(s, [t for t in transfers if t.token in markets], markets)
        await self.write_markets(s, [markets[t] for t in touched], created)
        if events:
            await order_events(s)
            await s.execute(EVENTS.insert(), events)
        await self._blocks(s, batch.blocks)
        return len(fresh)

    async def load_markets(self, s: AsyncSession, *, tokens: set[str], curves: set[str]) -> dict[str, Market]:
        """Stored markets by token address, of these tokens or curves."""
        out: dict[str, Market] = {}
        for column, keys in ((MARKETS.c.token_address, tokens), (MARKETS.c.curve_address, curves)):
            for part in chunks(keys):
                rows = await s.execute(select(MARKETS).where(MARKETS.c.chain == self.chain, column.in_(part)))
                out.update({r.token_address: dict(r._mapping) for r in rows})
        return out

    async def _launch(self, s: AsyncSession, launches: list[Launched], markets: dict[str, Market]) -> set[str]:
        """Adds the markets of launches not stored yet to ``markets``; returns their tokens."""
        todo = [r for r in launches if r.token not in markets]
        links = await self._launch_links(s, [r.token for r in todo])
        created: set[str] = set()
        for r in todo:
            token_id, decimals = links.get(r.token.lower(), (None, 18))
            m: Market = {
                "chain": self.chain,
                "token_address": r.token,
                "token_id": token_id,
                "curve_address": r.curve,
                "creator": r.creator,
                "decimals": decimals,
                "supply": str(r.supply),
                "virtual_native0": str(r.virtual_native0),
                "platform_fee_bps": r.platform_fee_bps,
                "creator_fee_bps": r.creator_fee_bps,
                "launch_fee_bps": r.launch_fee_bps,
                "launch_window": r.launch_window,
                "window_in_blocks": r.window_in_blocks,
                "migration_fee": str(r.migration_fee),
                "launched_at": r.launched_at,
                "created_block": r.at.block_number,
                "created_tx": r.at.tx_id,
                "created_at": at(r.at.block_time),
            }
            markets[r.token] = self.launch_state(m)
            created.add(r.token)
        return created

    def launch_state(self, m: Market) -> Market:
        """``m`` with the state of a curve nobody traded on yet."""
        params = self.params(m)
        price = self.set_reserves(m, params.virtual_native0, params.virtual_token0)
        m.update(
            volume_24h_native=0.0,
            price_change_24h_pct=None,
            ath_price_native=price,
            trade_count=0,
            holder_count=m.get("holder_count", 0),
            last_trade_at=None,
            state="trading",
            pair_address=None,
            graduated_at=None,
            graduated_block=None,
            updated_block=m["created_block"],
        )
        return m

    async def _launch_links(self, s: AsyncSession, tokens: list[str]) -> dict[str, tuple[str, int]]:
        """lower(token address) → (token id, decimals) of TokenForge launches."""
        out: dict[str, tuple[str, int]] = {}
        for part in chunks({t.lower() for t in tokens}):
            rows = await s.execute(
                select(JobRow.token_address, JobRow.token_id, TokenRow.decimals)
                .join(TokenRow, TokenRow.id == JobRow.token_id)
                .where(JobRow.chain == self.chain, func.lower(JobRow.token_address).in_(part))
            )
            out.update({str(r[0]).lower(): (r[1], int(r[2])) for r in rows})
        return out

    @staticmethod
    def params(m: Market) -> CurveParams:
        return CurveParams(
            supply=int(m["supply"]), virtual_native0=int(m["virtual_native0"]), platform_fee_bps=0, creator_fee_bps=0
        )

    def set_reserves(self, m: Market, virtual_native: int, virtual_token: int) -> float:
        """Sets the market's reserves-derived state; returns its price."""
        params = self.params(m)
        sold = params.virtual_token0 - virtual_token
        price = cdl.price_native(virtual_native, virtual_token, m["decimals"], self.native_decimals)
        m.update(
            native_raised=str(virtual_native - params.virtual_native0),
            tokens_sold=str(sold),
            price_native=price,
            market_cap_native=cdl.market_cap_native(price, params.supply, m["decimals"]),
            progress_bps=sold * 10_000 // params.tokens_for_sale if params.tokens_for_sale else 0,
        )
        return price

    async def _insert_trades(
        self, s: AsyncSession, trades: list[Traded], by_curve: dict[str, Market]
    ) -> set[tuple[str, int]]:
        """Inserts the trades; returns the (tx id, log index) of those that were new."""
        if not trades:
            return set()
        await ensure_trade_partitions(s, {at(t.at.block_time) for t in trades})
        rows = []
        for t in trades:
            m = by_curve[t.curve]
            rows.append(
                {
                    "chain": self.chain,
                    "tx_hash": t.at.tx_id,
                    "log_index": t.at.log_index,
                    "block_time": at(t.at.block_time),
                    "token_address": m["token_address"],
                    "block_number": t.at.block_number,
                    "block_hash": t.at.block_hash,
                    "trader": t.trader,
                    "side": "buy" if t.is_buy else "sell",
                    "native_amount": str(t.native_amount),
                    "token_amount": str(t.token_amount),
                    "fee": str(t.fee),
                    "virtual_native": str(t.virtual_native),
                    "virtual_token": str(t.virtual_token),
                    "price_native": cdl.price_native(
                        t.virtual_native, t.virtual_token, m["decimals"], self.native_decimals
                    ),
                }
            )
        stmt = insert_for(s)(TRADES).on_conflict_do_nothing().returning(TRADES.c.tx_hash, TRADES.c.log_index)
        result = await s.execute(stmt, rows)
        return {(r[0], r[1]) for r in result}

    async def refresh_24h(self, now_s: float) -> int:
        """Recomputes the 24 h figures at ``now_s`` of every market whose figures are not
        zero (windows move with time, not only with trades); returns the markets changed.
        Its own transaction; no lease needed (it only derives from stored candles)."""
        now = int(now_s)
        async with self._sessions() as s, s.begin():
            rows = await s.execute(
                select(
                    MARKETS.c.token_address,
                    MARKETS.c.price_native,
                    MARKETS.c.volume_24h_native,
                    MARKETS.c.price_change_24h_pct,
                ).where(
                    MARKETS.c.chain == self.chain,
                    or_(MARKETS.c.volume_24h_native != 0, MARKETS.c.price_change_24h_pct.is_not(None)),
                )
            )
            current = {r[0]: (r[1], r[2], r[3]) for r in rows}
            if not current:
                return 0
            found = await self.agg.window_figures(s, now)
            changes = []
            for token, (price, volume, change) in current.items():
                new_volume, first_open = found.get(token, (0.0, None))
                new_change = (price / first_open - 1.0) * 100.0 if first_open else None
                if (new_volume, new_change) != (volume, change):
                    changes.append(
                        {"k_token": token, "volume_24h_native": new_volume, "price_change_24h_pct": new_change}
                    )
            if changes:
                await s.execute(
                    update(MARKETS).where(
                        MARKETS.c.chain == self.chain, MARKETS.c.token_address == bindparam("k_token")
                    ),
                    changes,
                )
            return len(changes)

    async def _holders(self, s: AsyncSession, transfers: list[Transferred], markets: dict[str, Market]) -> set[str]:
        """Applies the transfers to balances; returns the tokens whose holder count changed."""
        per_block: dict[tuple[int, str, str], int] = defaultdict(int)
        for t in transfers:
            if t.sender.lower() not in NOT_HOLDERS:
                per_block[(t.at.block_number, t.token, t.sender)] -= t.amount
            if t.recipient.lower() not in NOT_HOLDERS:
                per_block[(t.at.block_number, t.token, t.recipient)] += t.amount
        changes = [
            {"chain": self.chain, "block_number": b, "token_address": tok, "holder": h, "delta": str(d)}
            for (b, tok, h), d in per_block.items()
            if d
        ]
        if not changes:
            return set()
        await s.execute(CHANGES.insert(), changes)
        deltas: dict[tuple[str, str], tuple[int, int]] = {}
        for (b, tok, h), d in per_block.items():
            if d:  # the holder's updated_block: its newest block with a net change
                deltas[(tok, h)] = (deltas.get((tok, h), (0, b))[0] + d, b)
        return await self.agg.move_balances(s, deltas, markets)

    async def write_markets(self, s: AsyncSession, markets: list[Market], created: set[str]) -> None:
        """Inserts the created markets and writes the state columns of the others."""
        new = [m for m in markets if m["token_address"] in created]
        old = [m for m in markets if m["token_address"] not in created]
        if new:
            await s.execute(insert_for(s)(MARKETS).on_conflict_do_nothing(), new)
        if old:
            await s.execute(
                update(MARKETS).where(MARKETS.c.chain == self.chain, MARKETS.c.token_address == bindparam("k_token")),
                [{"k_token": m["token_address"], **{c: m[c] for c in STATE_COLUMNS}} for m in old],
            )

    async def _blocks(self, s: AsyncSession, blocks: Sequence[BlockRef]) -> None:
        ins = insert_for(s)(BLOCKS)
        await s.execute(
            ins.on_conflict_do_update(
                index_elements=["chain", "number"],
                set_={c: ins.excluded[c] for c in ("hash", "parent_hash", "timestamp")},
            ),
            [
                {
                    "chain": self.chain,
                    "number": b.number,
                    "hash": b.hash,
                    "parent_hash": b.parent_hash,
                    "timestamp": b.timestamp,
                }
                for b in blocks
            ],
        )
        tip = blocks[-1]
        horizon = tip.number - KEEP_BLOCKS
        await s.execute(delete(BLOCKS).where(BLOCKS.c.chain == self.chain, BLOCKS.c.number < horizon))
        await s.execute(delete(CHANGES).where(CHANGES.c.chain == self.chain, CHANGES.c.block_number < horizon))
        await s.execute(
            update(CHECKPOINTS)
            .where(CHECKPOINTS.c.chain == self.chain)
            .values(block_number=tip.number, block_hash=tip.hash, updated_at=utcnow())
        )

    # ------------------------------------------------------------------ events

    def _event(self, token: str, kind: str, block_number: int, payload: dict[str, Any]) -> dict[str, Any]:
        return {
            "chain": self.chain,
            "token_address": token,
            "kind": kind,
            "block_number": block_number,
            "payload": payload,
            "created_at": utcnow(),
        }

    @staticmethod
    def _token_payload(m: Market, r: Launched) -> dict[str, Any]:
        return {
            "token": r.token,
            "token_id": m["token_id"],
            "curve": r.curve,
            "creator": r.creator,
            "supply": str(r.supply),
            "decimals": m["decimals"],
            "tx_id": r.at.tx_id,
            "block_time": at(r.at.block_time).isoformat(),
            "price_native": m["price_native"],
        }

    @staticmethod
    def _trade_payload(m: Market, r: Traded) -> dict[str, Any]:
        return {
            "token": m["token_address"],
            "token_id": m["token_id"],
            "curve": r.curve,
            "tx_id": r.at.tx_id,
            "log_index": r.at.log_index,
            "block_number": r.at.block_number,
            "block_time": at(r.at.block_time).isoformat(),
            "trader": r.trader,
            "side": "buy" if r.is_buy else "sell",
            "native_amount": str(r.native_amount),
            "token_amount": str(r.token_amount),
            "fee": str(r.fee),
            "price_native": m["price_native"],
            "market_cap_native": m["market_cap_native"],
            "progress_bps": m["progress_bps"],
        }

    @staticmethod
    def _grad_payload(m: Market, r: Graduated) -> dict[str, Any]:
        return {
            "token": m["token_address"],
            "token_id": m["token_id"],
            "curve": r.curve,
            "pool": r.pool,
            "tx_id": r.at.tx_id,
            "block_time": at(r.at.block_time).isoformat(),
            "native_liquidity": str(r.native_liquidity),
            "token_liquidity": str(r.token_liquidity),
        }

    # ------------------------------------------------------------------ rollback

    async def rollback(self, to_block: int, *, leader: str) -> int:
        """See :class:`~tokenforge.market.indexer.ports.MarketStore`; -1 (nothing undone)
        without the lease; 0 when the checkpoint is not above ``to_block``."""
        from tokenforge.market.indexer.rollback import roll_back

        async with self._sessions() as s, s.begin():
            checkpoint = await self.fence(s, leader)
            if checkpoint is None:
                return -1
            if checkpoint <= to_block:
                return 0
            return await roll_back(self, s, to_block)
