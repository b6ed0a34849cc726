"""Candles and prices, pure: intervals, buckets, folding trades into OHLC, price helpers.

* Intervals are ``1s 1m 5m 15m 1h 4h 1d`` (:data:`INTERVALS`, in seconds). A trade at
  block time ``t`` falls in the bucket ``t - t % seconds`` of each interval (buckets are
  aligned on the unix epoch, so every bucket of an interval lies inside one bucket of
  each longer interval).
* A candle's ``open`` is the price after the first trade in its bucket (not the previous
  bucket's close), ``close`` the price after the last, ``high``/``low`` the extremes, in
  chain order; volumes are sums of the trades' amounts in base units (exact integers).
* ``price_native`` is native coin per WHOLE token, from the curve's virtual reserves:
  ``(virtual_native / 10**native_decimals) / (virtual_token / 10**token_decimals)``
  (native decimals: 18 on EVM, 9 on Solana); floats, for charts and sorting only.

The indexer's writer (:mod:`tokenforge.market.indexer.writer`) upserts what
:func:`fold` returns, merging it into stored candles with :meth:`Candle.then`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tokenforge.errors import ValidationFailed

#: Candle intervals and their length in seconds, shortest first.
INTERVALS: Mapping[str, int] = {
    "1s": 1,
    "1m": 60,
    "5m": 300,
    "15m": 900,
    "1h": 3600,
    "4h": 4 * 3600,
    "1d": 86400,
}


def interval_seconds(interval: str) -> int:
    """The length of ``interval`` in seconds; ValidationFailed(``interval``) for an unknown one."""
    try:
        return INTERVALS[interval]
    except KeyError:
        raise ValidationFailed("interval", f"must be one of {', '.join(INTERVALS)}") from None


def bucket_of(time_s: int, seconds: int) -> int:
    """The start (unix seconds) of the bucket of length ``seconds`` that ``time_s`` is in."""
    return time_s - time_s % seconds


@dataclass(frozen=True, slots=True)
class Tick:
    """One trade as a candle sees it: block time, price after it, and its amounts."""

    time_s: int
    price_native: float
    native_amount: int
    token_amount: int


@dataclass(frozen=True, slots=True)
class Candle:
    open: float
    high: float
    low: float
    close: float
    volume_native: int
    volume_token: int
    trades: int

    @classmethod
    def of(cls, tick: Tick) -> Candle:
        p = tick.price_native
        return cls(p, p, p, p, tick.native_amount, tick.token_amount, 1)

    def then(self, later: Candle) -> Candle:
        """This candle followed by ``later`` (the trades of the same bucket after ours)."""
        return Candle(
            open=self.open,
            high=max(self.high, later.high),
            low=min(self.low, later.low),
            close=later.close,
            volume_native=self.volume_native + later.volume_native,
            volume_token=self.volume_token + later.volume_token,
            trades=self.trades + later.trades,
        )


def fold(ticks: Iterable[Tick], intervals: Iterable[str] = INTERVALS) -> dict[tuple[str, int], Candle]:
    """The candles of ``ticks`` (one token's trades in chain order) per ``(interval, bucket)``."""
    lengths = [(name, interval_seconds(name)) for name in intervals]
    out: dict[tuple[str, int], Candle] = {}
    for tick in ticks:
        one = Candle.of(tick)
        for name, seconds in lengths:
            key = (name, bucket_of(tick.time_s, seconds))
            known = out.get(key)
            out[key] = one if known is None else known.then(one)
    return out


def price_native(virtual_native: int, virtual_token: int, token_decimals: int, native_decimals: int = 18) -> float:
    """The curve's marginal price in native coin per whole token (0.0 with no tokens left)."""
    if virtual_token <= 0:
        return 0.0
    return (virtual_native / 10**native_decimals) / (virtual_token / 10**token_decimals)


def market_cap_native(price: float, supply: int, token_decimals: int) -> float:
    """``price`` (native per whole token) times the supply in whole tokens."""
    return price * (supply / 10**token_decimals)
