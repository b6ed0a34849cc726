"""Rows of the market tables for tests, written directly (the indexer is not under test).

Each ``*_values`` function returns the column values of one row with sensible defaults
(override any column by keyword); :func:`insert_market_rows` writes them in one
transaction (trade partitions first on PostgreSQL). :func:`launched_tokens` adds live
EVM tokens with their markets, the common start of an API test.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert

from tests.support.bodies import launch_body
from tokenforge.domain.tokens import validate_launch
from tokenforge.store.db import utcnow
from tokenforge.store.group_commit import Changes, write_changes
from tokenforge.store.models import CandleRow, HolderRow, MarketEventRow, MarketRow, TradeRow, table
from tokenforge.store.partitions import ensure_trade_partitions
from tokenforge.store.repositories import tokens as tokens_repo

SUPPLY = 10**9 * 10**18
VIRTUAL_NATIVE0 = 30 * 10**18
_addresses = itertools.count(1)


def address(n: int | None = None) -> str:
    """A distinct EVM address (``0x…`` 40 hex digits)."""
    return "0x" + f"{next(_addresses) if n is None else n:040x}"


def token_values(*, chain: str = "ethereum", symbol: str = "MKT", **over: Any) -> dict[str, Any]:
    """A live token row (with an address) on ``chain``."""
    body = launch_body(chain=chain, symbol=symbol)
    row = tokens_repo.new_token(
        validate_launch(**{"decimals": None, **body}),
        token_id=uuid.uuid4().hex,
        job_id=uuid.uuid4().hex,
        network="embedded",
        now=utcnow(),
    )
    row.update(status="live", address=address())
    row.update(over)
    return row


def market_values(token: dict[str, Any], **over: Any) -> dict[str, Any]:
    """The market of ``token`` (a :func:`token_values` row), trading, nothing sold yet."""
    row: dict[str, Any] = dict(
        chain=token["chain"],
        token_address=token["address"],
        token_id=token["id"],
        curve_address=address(),
        creator=token["creator"],
        decimals=18,
        supply=str(SUPPLY),
        virtual_native0=str(VIRTUAL_NATIVE0),
        platform_fee_bps=95,
        creator_fee_bps=30,
        launch_fee_bps=0,
        launch_window=0,
        window_in_blocks=False,
        migration_fee="0",
        launched_at=1_700_000_000,
        created_block=1,
        created_tx="0x" + "ab" * 32,
        created_at=utcnow(),
        native_raised="0",
        tokens_sold="0",
        price_native=VIRTUAL_NATIVE0 / (SUPPLY * 1073 // 1000),
        market_cap_native=30.0 / 1.073,
        progress_bps=0,
        volume_24h_native=0.0,
        price_change_24h_pct=None,
        ath_price_native=VIRTUAL_NATIVE0 / (SUPPLY * 1073 // 1000),
        trade_count=0,
        holder_count=1,
        last_trade_at=None,
        state="trading",
        pair_address=None,
        graduated_at=None,
        graduated_block=None,
        updated_block=1,
    )
    row.update(over)
    return row


def trade_values(market: dict[str, Any], n: int, **over: Any) -> dict[str, Any]:
    """Trade number ``n`` of ``market``: block ``n // 2 + 2``, log index ``n % 2``, buys."""
    block_time = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=12 * n)
    row: dict[str, Any] = dict(
        chain=market["chain"],
        tx_hash="0x" + f"{n:064x}",
        log_index=n % 2,
        block_time=block_time,
        token_address=market["token_address"],
        block_number=n // 2 + 2,
        block_hash="0x" + f"{n // 2 + 2:064x}",
        trader=address(),
        side="buy",
        native_amount=str(10**17),
        token_amount=str(3 * 10**24),
        fee=str(125 * 10**13),
        virtual_native=str(VIRTUAL_NATIVE0 + 10**17 * (n + 1)),
        virtual_token=str(SUPPLY * 1073 // 1000 - 3 * 10**24 * (n + 1)),
        price_native=2.8e-8 + n * 1e-10,
    )
    row.update(over)
    return row


def candle_values(market: dict[str, Any], bucket: int, *, interval: str = "1m", **over: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict(
        chain=market["chain"],
        token_address=market["token_address"],
        interval=interval,
        bucket=bucket,
        open=1.0,
        high=2.0,
        low=0.5,
        close=1.5,
        volume_native=str(10**18),
        volume_token=str(10**24),
        trades=3,
    )
    row.update(over)
    return row


def holder_values(market: dict[str, Any], holder: str, balance: int, **over: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict(
        chain=market["chain"],
        token_address=market["token_address"],
        holder=holder,
        balance=str(balance),
        balance_sort=float(balance),
        updated_block=1,
    )
    row.update(over)
    return row


def event_values(market: dict[str, Any] | None, kind: str = "trade", **over: Any) -> dict[str, Any]:
    """A ``market_events`` row of ``market`` (None: a chain-wide one, ``ethereum``)."""
    row: dict[str, Any] = dict(
        chain="ethereum" if market is None else market["chain"],
        token_address=None if market is None else market["token_address"],
        kind=kind,
        block_number=5,
        payload={} if market is None else {"token_id": market["token_id"], "token": market["token_address"]},
        created_at=utcnow(),
    )
    row.update(over)
    return row


async def insert_market_rows(
    container: Any,
    *,
    tokens: list[dict[str, Any]] = (),  # type: ignore[assignment]
    markets: list[dict[str, Any]] = (),  # type: ignore[assignment]
    trades: list[dict[str, Any]] = (),  # type: ignore[assignment]
    candles: list[dict[str, Any]] = (),  # type: ignore[assignment]
    holders: list[dict[str, Any]] = (),  # type: ignore[assignment]
    events: list[dict[str, Any]] = (),  # type: ignore[assignment]
) -> None:
    """Write the rows in one transaction (tokens through the app's writer, so caches of this
    process hear of them)."""
    async with container.sessions() as session:
        if tokens:
            await write_changes(session, [Changes(new_tokens=list(tokens))])
        if trades:
            await ensure_trade_partitions(session, [t["block_time"] for t in trades])
        for model, rows in (
            (MarketRow, markets),
            (TradeRow, trades),
            (CandleRow, candles),
            (HolderRow, holders),
            (MarketEventRow, events),
        ):
            if rows:
                await session.execute(insert(table(model)), list(rows))
        await session.commit()


async def launched_tokens(container: Any, count: int, **market_over: Any) -> list[tuple[dict, dict]]:
    """``count`` live EVM tokens, each with a market; ``(token, market)`` rows, oldest first."""
    tokens = [token_values(symbol=f"M{i}") for i in range(count)]
    markets = [market_values(t, **market_over) for t in tokens]
    await insert_market_rows(container, tokens=tokens, markets=markets)
    return list(zip(tokens, markets, strict=True))
