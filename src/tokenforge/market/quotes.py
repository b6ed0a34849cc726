"""Quotes on a bonding curve: what a buy or a sell would do now, from the indexed state.

A quote reads the curve's launch terms and state from its ``markets`` row (written by the
indexer after each trade) and runs the curve's own math (:mod:`tokenforge.domain.curve`,
identical to ``TokenForgeCurve.sol``) on it. Three kinds:

* buy by native amount (``side=buy, unit=native``): ``amount_in`` wei (fee included) buys
  ``amount_out`` tokens; a buy larger than what is left for sale is cut and ``refund`` wei
  come back (``completes_curve``);
* buy by token amount (``side=buy, unit=token``): the native a buy of at least that many
  tokens costs (:func:`~tokenforge.domain.curve.native_for_tokens`), then that buy quoted;
* sell by token amount (``side=sell, unit=token``): ``amount_in`` tokens pay ``amount_out``
  wei after the fee.

The fee is the one of the next block: at the current time for a launch window in seconds,
at the indexed head + 1 for a window in blocks (the launch fee only decays, so a later block
never charges more). ``fee`` is always in native base units. Prices are native per WHOLE
token (floats, for display); ``price_impact_bps`` is how far the trade moves the curve's
marginal price (rounded down). A quote is exact for the state at ``as_of_block``; trades
mined since then change it, which ``min_out`` (the slippage bound) absorbs.

Problems: an unknown token or a curve not indexed yet -> :class:`~tokenforge.errors.NotFound`;
a graduated curve -> :class:`CurveGraduated` (409, with the pool); bad amounts ->
:class:`~tokenforge.errors.ValidationFailed` naming ``amount`` or ``unit``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

from tokenforge.domain import curve as curve_math
from tokenforge.domain.curve import BPS, CurveError, CurveParams, CurveReserves, CurveState
from tokenforge.errors import Conflict, ErrorCode, NotFound, ValidationFailed
from tokenforge.store.models import MarketRow
from tokenforge.store.repositories.market_quotes import QuoteSource

#: The most a slippage tolerance may be (50 %).
MAX_SLIPPAGE_BPS = 5000
#: Native decimals of the EVM chains (wei per coin).
EVM_NATIVE_DECIMALS = 18


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class Unit(StrEnum):
    """What ``amount`` counts: native base units (wei) or token base units."""

    NATIVE = "native"
    TOKEN = "token"


class CurveGraduated(Conflict):
    """The curve sold out and graduated: trades go to the Uniswap V2 ``pool`` now (409)."""

    code = ErrorCode.CURVE_GRADUATED

    def __init__(self, pool: str | None) -> None:
        where = f"its Uniswap V2 pool {pool}" if pool else "its Uniswap V2 pool"
        super().__init__(f"the bonding curve sold out and graduated; the token trades on {where}")
        self.pool = pool


@dataclass(frozen=True, slots=True)
class Quote:
    """What one trade does to the curve as indexed at ``as_of_block`` (base units)."""

    side: Side
    unit: Unit
    #: buy: wei to send (fee included); sell: tokens sold
    amount_in: int
    #: buy: tokens received; sell: wei received after the fee
    amount_out: int
    #: the fee in wei, and its rate at ``fee_at`` (a time, or a block number for block windows)
    fee: int
    fee_bps: int
    fee_at: int
    #: buy only: wei sent back because the curve had fewer tokens left than ``amount_in`` buys
    refund: int
    completes_curve: bool
    #: tokens still for sale on the curve after this trade
    tokens_left_after: int
    price_before_native: float
    price_after_native: float
    price_impact_bps: int
    as_of_block: int

    def min_out(self, slippage_bps: int) -> int:
        """The least ``amount_out`` a trade with ``slippage_bps`` tolerance accepts (rounded
        down, so the exact quote always passes)."""
        if isinstance(slippage_bps, bool) or not 0 <= slippage_bps <= MAX_SLIPPAGE_BPS:
            raise ValidationFailed("slippage_bps", f"must be 0-{MAX_SLIPPAGE_BPS}")
        return self.amount_out * (BPS - slippage_bps) // BPS


def reserves_of(market: MarketRow) -> CurveReserves:
    """The curve's terms and state as the ``markets`` row records them."""
    params = CurveParams(
        supply=int(market.supply),
        virtual_native0=int(market.virtual_native0),
        platform_fee_bps=market.platform_fee_bps,
        creator_fee_bps=market.creator_fee_bps,
        launch_fee_bps=market.launch_fee_bps,
        launch_window=market.launch_window,
        window_in_blocks=market.window_in_blocks,
        migration_fee=int(market.migration_fee),
        launched_at=market.launched_at,
    )
    state = CurveState.GRADUATED if market.state == "graduated" else CurveState.TRADING
    return CurveReserves(params, int(market.native_raised), int(market.tokens_sold), state)


def price_native(reserves: CurveReserves, token_decimals: int, native_decimals: int = EVM_NATIVE_DECIMALS) -> float:
    """The marginal price in native coin per whole token (the market convention)."""
    return (reserves.virtual_native / 10**native_decimals) / (reserves.virtual_token / 10**token_decimals)


def parse_amount(value: str, field: str = "amount") -> int:
    """A positive integer in base units from its decimal string; ValidationFailed(``field``)."""
    if not isinstance(value, str) or not value.isascii() or not value.isdigit() or len(value) > 78:
        raise ValidationFailed(field, "must be a positive integer in base units, as a string of digits")
    amount = int(value)
    if amount <= 0 or amount >= 2**256:
        raise ValidationFailed(field, "must be a positive integer below 2^256")
    return amount


def quote(
    reserves: CurveReserves,
    side: Side,
    amount: int,
    *,
    unit: Unit | None = None,
    token_decimals: int = 18,
    as_of_block: int = 0,
    now_s: int | None = None,
    pool: str | None = None,
    amount_field: str = "amount",
) -> Quote:
    """Quote ``amount`` (base units of ``unit``; default: native for a buy, tokens for a
    sell) on ``reserves``. ``now_s`` is the next block's time (default: the clock); for a
    launch window in blocks the fee is taken at ``as_of_block + 1``. Problems with the
    amount name ``amount_field``."""
    unit = unit or (Unit.NATIVE if side is Side.BUY else Unit.TOKEN)
    if side is Side.SELL and unit is Unit.NATIVE:
        raise ValidationFailed("unit", "a sell is quoted in tokens (unit=token)")
    if reserves.state is CurveState.GRADUATED or reserves.complete:
        raise CurveGraduated(pool)
    params = reserves.params
    fee_at = as_of_block + 1 if params.window_in_blocks else int(time.time() if now_s is None else now_s)
    try:
        if side is Side.SELL:
            trade = curve_math.sell(reserves, amount, fee_at)
        else:
            native_in = amount
            if unit is Unit.TOKEN:
                native_in = curve_math.native_for_tokens(reserves, amount, fee_at)
            trade = curve_math.buy(reserves, native_in, fee_at)
    except CurveError as exc:
        if exc.reason == "CurveComplete":
            raise CurveGraduated(pool) from None
        if exc.reason == "InsufficientReserve":
            sold = reserves.tokens_sold
            raise ValidationFailed(amount_field, f"more than the {sold} tokens the curve has sold") from None
        raise ValidationFailed(amount_field, "is too small to trade: it buys or pays nothing") from None
    after = trade.after
    if side is Side.BUY:
        amount_in, amount_out = trade.native_amount + trade.refund, trade.token_amount
    else:
        amount_in, amount_out = trade.token_amount, trade.native_amount
    # marginal price vq/vt before and after, compared exactly: |after/before - 1| in bps
    before_cross = reserves.virtual_native * after.virtual_token
    after_cross = after.virtual_native * reserves.virtual_token
    impact_bps = abs(after_cross - before_cross) * BPS // before_cross
    return Quote(
        side=side,
        unit=unit,
        amount_in=amount_in,
        amount_out=amount_out,
        fee=trade.fee,
        fee_bps=params.fee_bps(fee_at),
        fee_at=fee_at,
        refund=trade.refund,
        completes_curve=trade.completes,
        tokens_left_after=after.tokens_left,
        price_before_native=price_native(reserves, token_decimals),
        price_after_native=price_native(after, token_decimals),
        price_impact_bps=impact_bps,
        as_of_block=as_of_block,
    )


def quote_market(
    source: QuoteSource | None,
    side: Side,
    amount: int,
    *,
    unit: Unit | None = None,
    now_s: int | None = None,
    amount_field: str = "amount",
) -> tuple[MarketRow, Quote]:
    """Quote on the indexed curve of a launch (:func:`~tokenforge.store.repositories.
    market_quotes.quote_source`); NotFound for an unknown token or an unindexed curve."""
    if source is None:
        raise NotFound("no such token")
    market = source.market
    if market is None:
        raise NotFound("this token has no indexed market yet (not launched, or the indexer has not reached it)")
    as_of = max(market.updated_block, source.indexed_block or 0)
    result = quote(
        reserves_of(market),
        side,
        amount,
        unit=unit,
        token_decimals=market.decimals,
        as_of_block=as_of,
        now_s=now_s,
        pool=market.pair_address,
        amount_field=amount_field,
    )
    return market, result
