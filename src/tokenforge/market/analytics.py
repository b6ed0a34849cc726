"""Public reads of the market: indexed rows rendered as the API's JSON bodies.

:class:`Analytics` turns rows of :mod:`tokenforge.store.repositories.market` into response
bodies (JSON bytes): amounts in base units as decimal strings, prices as floats, USD
figures from the process's :class:`~tokenforge.market.price_feed.PriceFeed` with the price
used and its age in ``native_price`` (``null`` figures when no USD price was ever
obtained). Every body is cached (:mod:`tokenforge.cache`) for about a second
(:data:`MARKET`, :data:`MARKET_READS`, :data:`MARKET_TOKEN_LIST`): market data changes with
every block, so a short TTL keeps it fresh without invalidation from the indexer's process.

A token's detail is its cached token body (:data:`~tokenforge.cache.TOKEN`, invalidated on
every change of the token) with its cached market part spliced in (:func:`detail_body`);
when both miss they come from one statement (a join), never two.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tokenforge.api.schemas.tokens import token_out
from tokenforge.cache import TOKEN, TOKEN_LIST, Cache, Entry
from tokenforge.domain.chains import CHAINS, Family
from tokenforge.domain.curve import BPS, CurveParams, CurveReserves
from tokenforge.errors import NotFound, ValidationFailed
from tokenforge.market.price_feed import NativePrice, PriceFeed, PriceUnavailable
from tokenforge.store.models import CandleRow, HolderRow, MarketRow, TokenRow, TradeRow
from tokenforge.store.repositories import market as market_repo
from tokenforge.store.repositories import tokens as tokens_repo

#: The ``market`` part of ``GET /v1/tokens/{id}``, keyed by token id (``null`` when none yet).
MARKET = Entry("market", ttl_s=1.0)
#: ``GET /v1/tokens`` pages with their markets: the token list's namespace and generation
#: (so a new or changed token drops them), with the market's short TTL.
MARKET_TOKEN_LIST = Entry(TOKEN_LIST.name, ttl_s=1.0, by_generation=True)
#: Trades pages, candles, holders, stats.
MARKET_READS = Entry("market_reads", ttl_s=1.0)


def native_decimals(chain: str) -> int:
    """Decimals of the chain's native coin: 18 on EVM chains, 9 on Solana."""
    return 9 if CHAINS[chain].family == Family.SOLANA else 18


def detail_body(token_json: bytes, market_json: bytes) -> bytes:
    """``GET /v1/tokens/{id}``: the token's JSON object with ``"market"`` added last."""
    return token_json[:-1] + b',"market":' + market_json + b"}"


def encode_cursor(*parts: object) -> str:
    """An opaque cursor of ``parts`` (joined by ``|``; none may contain it)."""
    return base64.urlsafe_b64encode("|".join(map(str, parts)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, field: str = "query.cursor") -> list[str]:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split("|")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValidationFailed(field, "is not a cursor this API returned") from None


def _bigint(text: str) -> bool:
    """Whether ``text`` is ASCII decimal digits of a value a 64-bit column holds."""
    return text.isascii() and text.isdigit() and len(text) <= 19 and int(text) < 2**63


def trade_cursor(cursor: str) -> tuple[int, int, str]:
    """``(block_number, log_index, tx_hash)`` of a trades cursor; ValidationFailed otherwise."""
    parts = decode_cursor(cursor)
    if len(parts) == 3 and _bigint(parts[0]) and _bigint(parts[1]) and 0 < len(parts[2]) <= 128:
        return int(parts[0]), int(parts[1]), parts[2]
    raise ValidationFailed("query.cursor", "is not a cursor this API returned")


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _usd(native: float | None, price: NativePrice | None) -> float | None:
    return None if native is None or price is None else native * float(price.usd)


def price_json(price: NativePrice | None) -> dict[str, Any] | None:
    if price is None:
        return None
    return {
        "asset": price.asset,
        "usd": str(price.usd),
        "as_of": price.as_of,
        "age_s": round(price.age_s(), 3),
        "source": price.source,
    }


def market_json(m: MarketRow, price: NativePrice | None) -> dict[str, Any]:
    """The ``market`` object of a token read (see docs/market.md)."""
    params = CurveParams(
        supply=int(m.supply), virtual_native0=int(m.virtual_native0), platform_fee_bps=0, creator_fee_bps=0
    )
    reserves = CurveReserves(params, native_raised=int(m.native_raised), tokens_sold=int(m.tokens_sold))
    return {
        "curve": m.curve_address,
        "state": m.state,
        "price_native": m.price_native,
        "price_usd": _usd(m.price_native, price),
        "market_cap_native": m.market_cap_native,
        "market_cap_usd": _usd(m.market_cap_native, price),
        "progress_pct": m.progress_bps * 100 / BPS,
        "volume_24h_native": m.volume_24h_native,
        "volume_24h_usd": _usd(m.volume_24h_native, price),
        "price_change_24h_pct": m.price_change_24h_pct,
        "trade_count": m.trade_count,
        "holder_count": m.holder_count,
        "ath_price_native": m.ath_price_native,
        "last_trade_at": _iso(m.last_trade_at),
        "pool": m.pair_address,
        "reserves": {
            "virtual_native": str(reserves.virtual_native),
            "virtual_token": str(reserves.virtual_token),
            "native_raised": m.native_raised,
            "tokens_left": str(max(0, reserves.tokens_left)),
        },
        "fees": {
            "platform_bps": m.platform_fee_bps,
            "creator_bps": m.creator_fee_bps,
            "launch_fee_bps": m.launch_fee_bps,
            "launch_window": m.launch_window,
            "window_unit": "blocks" if m.window_in_blocks else "seconds",
        },
        "as_of_block": m.updated_block,
        "native_price": price_json(price),
    }


def trade_json(t: TradeRow) -> dict[str, Any]:
    return {
        "tx_id": t.tx_hash,
        "log_index": t.log_index,
        "block_number": t.block_number,
        "block_time": _iso(t.block_time),
        "trader": t.trader,
        "side": t.side,
        "native_amount": t.native_amount,
        "token_amount": t.token_amount,
        "fee": t.fee,
        "price_native": t.price_native,
    }


def candle_json(c: CandleRow) -> dict[str, Any]:
    return {
        "time": c.bucket,
        "open": c.open,
        "high": c.high,
        "low": c.low,
        "close": c.close,
        "volume_native": c.volume_native,
        "volume_token": c.volume_token,
        "trades": c.trades,
    }


def _same(a: str | None, b: str) -> bool:
    """Address equality (EVM addresses in any letter case)."""
    return a is not None and (a == b or (a.startswith("0x") and a.lower() == b.lower()))


def holder_json(h: HolderRow, m: MarketRow) -> dict[str, Any]:
    supply = int(m.supply)
    return {
        "address": h.holder,
        "balance": h.balance,
        "pct_of_supply": 0.0 if supply == 0 else int(h.balance) * 100 / supply,
        "is_creator": _same(m.creator, h.holder),
        "is_curve": _same(m.curve_address, h.holder),
        "is_pool": _same(m.pair_address, h.holder),
    }


class Analytics:
    """The market's public reads; see the module docstring. Cheap to build per request."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], cache: Cache, prices: PriceFeed | None) -> None:
        self._sessions = sessions
        self._cache = cache
        self._prices = prices

    async def native_price(self, chain: str) -> NativePrice | None:
        """The USD price of ``chain``'s native coin, or None when none was ever obtained."""
        if self._prices is None:
            return None
        try:
            return await self._prices.price(CHAINS[chain].native_symbol)
        except PriceUnavailable:
            return None

    async def _prices_of(self, chains: Iterable[str]) -> dict[str, NativePrice | None]:
        return {chain: await self.native_price(chain) for chain in sorted(set(chains))}

    # -- token reads ---------------------------------------------------------------------

    async def token_detail(self, session: AsyncSession, token_id: str) -> bytes:
        """``GET /v1/tokens/{id}`` (token fields and ``market``); NotFound for an unknown id."""
        loaded: list[market_repo.TokenWithMarket] = []

        async def joined() -> market_repo.TokenWithMarket:
            if not loaded:
                found = await market_repo.token_with_market(session, token_id)
                if found is None:
                    raise NotFound(f"token {token_id} does not exist")
                loaded.append(found)
            return loaded[0]

        async def load_market() -> bytes:
            m = (await joined()).market
            return b"null" if m is None else orjson.dumps(market_json(m, await self.native_price(m.chain)))

        async def load_token() -> bytes:
            return orjson.dumps(token_out((await joined()).token).model_dump(mode="json"))

        market = await self._cache.read(MARKET, token_id, load_market)
        token = await self._cache.read(TOKEN, token_id, load_token)
        return detail_body(token, market)

    async def token_page(
        self,
        session: AsyncSession,
        *,
        key: str,
        limit: int,
        sort: str,
        after: tuple[Any, int] | int | None,
        chain: str | None,
        creator: str | None,
        status: str | None,
    ) -> bytes:
        """A ``GET /v1/tokens`` page (``{items, next_cursor}``), cached under ``key``."""

        async def load() -> bytes:
            rows = await market_repo.list_with_markets(
                session, limit=limit + 1, sort=sort, after=after, chain=chain, creator=creator, status=status
            )
            page = rows[:limit]
            prices = await self._prices_of(r.market.chain for r in page if r.market is not None)
            items = [_listed(r.token, r.market, prices) for r in page]
            next_cursor = None
            if len(rows) > limit:
                last = page[-1]
                next_cursor = list_cursor(sort, last.token.seq, market_repo.sort_key_of(sort, last.market))
            return orjson.dumps({"items": items, "next_cursor": next_cursor})

        return await self._cache.read(MARKET_TOKEN_LIST, key, load)

    # -- market reads ----------------------------------------------------------------------

    async def _market(self, session: AsyncSession, token_id: str) -> MarketRow:
        m = await market_repo.market_of(session, token_id)
        if m is None:
            if await tokens_repo.get(session, token_id) is None:
                raise NotFound(f"token {token_id} does not exist")
            raise NotFound(f"token {token_id} has no market yet")
        return m

    async def trades(self, session: AsyncSession, token_id: str, *, cursor: str | None, limit: int) -> bytes:
        """``{items, next_cursor}``: the token's trades, newest first."""
        before = trade_cursor(cursor) if cursor else None

        async def load() -> bytes:
            m = await self._market(session, token_id)
            rows = await market_repo.trades_page(session, m.chain, m.token_address, limit=limit + 1, before=before)
            page = rows[:limit]
            nxt = None
            if len(rows) > limit:
                nxt = encode_cursor(page[-1].block_number, page[-1].log_index, page[-1].tx_hash)
            return orjson.dumps({"items": [trade_json(t) for t in page], "next_cursor": nxt})

        return await self._cache.read(MARKET_READS, f"trades|{token_id}|{limit}|{cursor or ''}", load)

    async def candles(
        self, session: AsyncSession, token_id: str, *, interval: str, from_s: int | None, to_s: int | None, limit: int
    ) -> bytes:
        """``{interval, items}``: buckets with ``from_s <= time < to_s``, oldest first (the
        newest ``limit`` when more match)."""

        async def load() -> bytes:
            m = await self._market(session, token_id)
            rows = await market_repo.candles(
                session, m.chain, m.token_address, interval, from_s=from_s, to_s=to_s, limit=limit
            )
            return orjson.dumps({"interval": interval, "items": [candle_json(c) for c in rows]})

        key = f"candles|{token_id}|{interval}|{from_s}|{to_s}|{limit}"
        return await self._cache.read(MARKET_READS, key, load)

    async def holders(self, session: AsyncSession, token_id: str, *, limit: int) -> bytes:
        """``{holder_count, items}``: the largest balances first."""

        async def load() -> bytes:
            m = await self._market(session, token_id)
            rows = await market_repo.top_holders(session, m.chain, m.token_address, limit=limit)
            return orjson.dumps({"holder_count": m.holder_count, "items": [holder_json(h, m) for h in rows]})

        return await self._cache.read(MARKET_READS, f"holders|{token_id}|{limit}", load)

    async def stats(self, session: AsyncSession) -> bytes:
        """``GET /v1/stats``: totals over every chain, 24 h volume and native prices per chain."""

        async def load() -> bytes:
            per_chain = await market_repo.stats(session)
            prices = await self._prices_of(s.chain for s in per_chain)
            body = {
                "tokens": sum(s.markets for s in per_chain),
                "trades": sum(s.trades for s in per_chain),
                "graduations": sum(s.graduations for s in per_chain),
                "volume_24h": [
                    {"chain": s.chain, "native": s.volume_24h_native, "usd": _usd(s.volume_24h_native, prices[s.chain])}
                    for s in per_chain
                ],
                "native_prices": {c: price_json(p) for c, p in prices.items()},
            }
            return orjson.dumps(body)

        return await self._cache.read(MARKET_READS, "stats", load)


def _listed(token: TokenRow, m: MarketRow | None, prices: dict[str, NativePrice | None]) -> dict[str, Any]:
    body = token_out(token).model_dump(mode="json")
    body["market"] = None if m is None else market_json(m, prices.get(m.chain))
    return body


def list_cursor(sort: str, seq: int, value: float | int | datetime) -> str:
    """The ``next_cursor`` of a token page: ``s{seq}`` for ``created`` (the list's existing
    cursor), else the sort, the last token's sort value and its ``seq``."""
    if sort == "created":
        return base64.urlsafe_b64encode(f"s{seq}".encode()).decode().rstrip("=")
    shown = value.isoformat() if isinstance(value, datetime) else repr(value)
    return encode_cursor(sort, shown, seq)


def parse_list_cursor(cursor: str, sort: str) -> tuple[Any, int]:
    """``(value, seq)`` of a non-``created`` list cursor made for ``sort``."""
    parts = decode_cursor(cursor)
    try:
        if len(parts) == 3 and parts[0] == sort and _bigint(parts[2]):
            raw, seq = parts[1], int(parts[2])
            if sort == "last_trade":
                value: Any = datetime.fromisoformat(raw)
                if value.tzinfo is not None:
                    return value, seq
            elif sort == "progress":
                if _bigint(raw):
                    return int(raw), seq
            else:
                number = float(raw)
                if number == number and abs(number) != float("inf"):
                    return number, seq
    except ValueError:
        pass
    raise ValidationFailed("query.cursor", f"is not a cursor this API returned for sort={sort}")
