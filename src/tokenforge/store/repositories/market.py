"""SQL for reads of the market: markets of tokens, trades, candles, holders, stats, events.

Every read here is a fixed number of statements whatever the number of tokens, trades or
holders it covers (one for a page of tokens with their markets: an outer join, never a
read per token). The indexer writes these tables; nothing here writes.

Pages are keyset pages: trades newest first by (block_number, log_index, tx_hash); token
lists by a sort value then ``seq``, both descending, tokens without a market (or without a
value) last.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, case, func, literal, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from tokenforge.store.models import (
    CandleRow,
    HolderRow,
    MarketEventRow,
    MarketRow,
    TokenRow,
    TradeRow,
    UTCDateTime,
)

#: ``GET /v1/tokens?sort=`` values; ``created`` is the token list's own order (by ``seq``).
TokenSort = Literal["created", "market_cap", "volume_24h", "last_trade", "progress"]
TOKEN_SORTS: tuple[str, ...] = ("created", "market_cap", "volume_24h", "last_trade", "progress")
#: What a missing value sorts as (below every real value: they are all >= 0 / after 1970).
_NO_NUMBER = -1.0
_NO_TIME = datetime(1970, 1, 1, tzinfo=UTC)


def sort_value(sort: str) -> ColumnElement[Any]:
    """The SQL expression a non-``created`` sort orders by (missing values lowest)."""
    if sort == "market_cap":
        return func.coalesce(MarketRow.market_cap_native, _NO_NUMBER)
    if sort == "volume_24h":
        return func.coalesce(MarketRow.volume_24h_native, _NO_NUMBER)
    if sort == "progress":
        return func.coalesce(MarketRow.progress_bps, -1)
    if sort == "last_trade":
        return func.coalesce(MarketRow.last_trade_at, literal(_NO_TIME, UTCDateTime()))
    raise ValueError(f"unknown sort {sort!r}")


def sort_key_of(sort: str, market: MarketRow | None) -> float | int | datetime:
    """The value of ``sort`` for a listed token, as :func:`sort_value` computes it."""
    if sort == "last_trade":
        return _NO_TIME if market is None or market.last_trade_at is None else market.last_trade_at
    if market is None:
        return -1 if sort == "progress" else _NO_NUMBER
    value = {"market_cap": market.market_cap_native, "volume_24h": market.volume_24h_native}.get(sort)
    if sort == "progress":
        return market.progress_bps
    return _NO_NUMBER if value is None else float(value)


@dataclass(frozen=True, slots=True)
class TokenWithMarket:
    token: TokenRow
    market: MarketRow | None


def _with_market() -> Any:
    return select(TokenRow, MarketRow).outerjoin(MarketRow, MarketRow.token_id == TokenRow.id)


async def token_with_market(session: AsyncSession, token_id: str) -> TokenWithMarket | None:
    """The token and its market (None before the indexer saw its launch); one statement."""
    row = (await session.execute(_with_market().where(TokenRow.id == token_id))).first()
    return None if row is None else TokenWithMarket(row[0], row[1])


async def list_with_markets(
    session: AsyncSession,
    *,
    limit: int,
    sort: str = "created",
    after: tuple[Any, int] | int | None = None,
    chain: str | None = None,
    creator: str | None = None,
    status: str | None = None,
) -> list[TokenWithMarket]:
    """A page of tokens with their markets, in one statement. ``sort="created"``: newest
    first, ``after`` is the last ``seq`` of the previous page (exclusive). Other sorts:
    by :func:`sort_value` then ``seq``, both descending; ``after`` is ``(value, seq)`` of
    the previous page's last token."""
    stmt = _with_market().limit(limit)
    if sort == "created":
        stmt = stmt.order_by(TokenRow.seq.desc())
        if after is not None:
            stmt = stmt.where(TokenRow.seq < after)
    else:
        value = sort_value(sort)
        stmt = stmt.order_by(value.desc(), TokenRow.seq.desc())
        if after is not None:
            assert isinstance(after, tuple)
            last_value, last_seq = after
            stmt = stmt.where(or_(value < last_value, and_(value == last_value, TokenRow.seq < last_seq)))
    if chain is not None:
        stmt = stmt.where(TokenRow.chain == chain)
    if creator is not None:
        stmt = stmt.where(TokenRow.creator == creator)
    if status is not None:
        stmt = stmt.where(TokenRow.status == status)
    return [TokenWithMarket(r[0], r[1]) for r in (await session.execute(stmt)).all()]


async def market_of(session: AsyncSession, token_id: str) -> MarketRow | None:
    """The market of a TokenForge launch (by token id)."""
    stmt = select(MarketRow).where(MarketRow.token_id == token_id).limit(1)
    return (await session.execute(stmt)).scalar_one_or_none()


async def trades_page(
    session: AsyncSession,
    chain: str,
    token_address: str,
    *,
    limit: int,
    before: tuple[int, int, str] | None = None,
) -> list[TradeRow]:
    """Trades of one token, newest first by (block_number, log_index, tx_hash); ``before``
    is that triple of the previous page's last trade (exclusive). One statement."""
    order = (TradeRow.block_number, TradeRow.log_index, TradeRow.tx_hash)
    stmt = (
        select(TradeRow)
        .where(TradeRow.chain == chain, TradeRow.token_address == token_address)
        .order_by(*(c.desc() for c in order))
        .limit(limit)
    )
    if before is not None:
        stmt = stmt.where(tuple_(*order) < tuple_(*(literal(v) for v in before)))
    return list((await session.execute(stmt)).scalars())


async def candles(
    session: AsyncSession,
    chain: str,
    token_address: str,
    interval: str,
    *,
    from_s: int | None,
    to_s: int | None,
    limit: int,
) -> list[CandleRow]:
    """Candles of one interval with ``from_s <= bucket < to_s``, oldest first; the newest
    ``limit`` of them when more match. One statement."""
    stmt = select(CandleRow).where(
        CandleRow.chain == chain, CandleRow.token_address == token_address, CandleRow.interval == interval
    )
    if from_s is not None:
        stmt = stmt.where(CandleRow.bucket >= from_s)
    if to_s is not None:
        stmt = stmt.where(CandleRow.bucket < to_s)
    rows = list((await session.execute(stmt.order_by(CandleRow.bucket.desc()).limit(limit))).scalars())
    rows.reverse()
    return rows


async def top_holders(session: AsyncSession, chain: str, token_address: str, *, limit: int) -> list[HolderRow]:
    """The largest balances first (ties by address). One statement."""
    stmt = (
        select(HolderRow)
        .where(HolderRow.chain == chain, HolderRow.token_address == token_address)
        .order_by(HolderRow.balance_sort.desc(), HolderRow.holder)
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())


@dataclass(frozen=True, slots=True)
class ChainStats:
    chain: str
    markets: int
    trades: int
    graduations: int
    volume_24h_native: float


async def stats(session: AsyncSession) -> list[ChainStats]:
    """Per chain: TokenForge markets, their trade count, graduations and 24 h volume (from
    the markets' rolling figures). One statement."""
    graduated = func.sum(case((MarketRow.state == "graduated", 1), else_=0))
    stmt = (
        select(
            MarketRow.chain,
            func.count(),
            func.coalesce(func.sum(MarketRow.trade_count), 0),
            func.coalesce(graduated, 0),
            func.coalesce(func.sum(MarketRow.volume_24h_native), 0.0),
        )
        .where(MarketRow.token_id.is_not(None))
        .group_by(MarketRow.chain)
        .order_by(MarketRow.chain)
    )
    rows: list[Any] = list((await session.execute(stmt)).all())
    return [ChainStats(str(c), int(n), int(trades), int(grads), float(volume)) for c, n, trades, grads, volume in rows]


async def events_after(
    session: AsyncSession,
    after_id: int,
    *,
    chain: str | None = None,
    token_address: str | None = None,
    limit: int = 500,
) -> list[MarketEventRow]:
    """Market events with ``id > after_id``, oldest first, at most ``limit``. With ``chain``
    and ``token_address``: only that token's, and its chain's events that name no token
    (a rollback of blocks)."""
    stmt = select(MarketEventRow).where(MarketEventRow.id > after_id).order_by(MarketEventRow.id).limit(limit)
    if chain is not None and token_address is not None:
        stmt = stmt.where(
            MarketEventRow.chain == chain,
            or_(MarketEventRow.token_address == token_address, MarketEventRow.token_address.is_(None)),
        )
    return list((await session.execute(stmt)).scalars())


async def last_event_id(session: AsyncSession) -> int:
    """The newest market event's id (0 when there is none)."""
    return int((await session.execute(select(func.coalesce(func.max(MarketEventRow.id), 0)))).scalar_one())
