"""Candle math: buckets nest, folding in pieces equals folding at once, OHLC and volumes
are what the trades say; the price helpers."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenforge.errors import ValidationFailed
from tokenforge.market import candles as cdl

ticks_st = st.lists(
    st.builds(
        cdl.Tick,
        time_s=st.integers(1_700_000_000, 1_700_000_000 + 3 * 86400),
        price_native=st.floats(1e-12, 1e3, allow_nan=False),
        native_amount=st.integers(0, 10**24),
        token_amount=st.integers(0, 10**30),
    ),
    max_size=40,
).map(lambda ts: sorted(ts, key=lambda t: t.time_s))  # chain order: block times never go back


def test_intervals_and_unknown_interval_names_the_field():
    assert [cdl.interval_seconds(i) for i in ("1s", "1m", "5m", "15m", "1h", "4h", "1d")] == [
        1,
        60,
        300,
        900,
        3600,
        14400,
        86400,
    ]
    with pytest.raises(ValidationFailed) as caught:
        cdl.interval_seconds("2m")
    assert caught.value.field == "interval"


@given(st.integers(0, 2**40))
def test_every_bucket_lies_inside_the_bucket_of_each_longer_interval(t):
    lengths = list(cdl.INTERVALS.values())
    for short, long in itertools.pairwise(lengths):
        b = cdl.bucket_of(t, short)
        assert b <= t < b + short
        assert cdl.bucket_of(t, long) <= b and b + short <= cdl.bucket_of(t, long) + long


@settings(max_examples=200)
@given(ticks_st, st.integers(0, 40))
def test_folding_in_two_batches_and_merging_equals_folding_at_once(ticks, cut):
    whole = cdl.fold(ticks)
    first, second = cdl.fold(ticks[:cut]), cdl.fold(ticks[cut:])
    merged = dict(first)
    for key, candle in second.items():
        merged[key] = merged[key].then(candle) if key in merged else candle
    assert merged == whole


@settings(max_examples=200)
@given(ticks_st)
def test_candles_say_what_the_trades_say(ticks):
    candles = cdl.fold(ticks)
    for interval, seconds in cdl.INTERVALS.items():
        mine = {b: c for (iv, b), c in candles.items() if iv == interval}
        assert sum(c.trades for c in mine.values()) == len(ticks)
        assert sum(c.volume_native for c in mine.values()) == sum(t.native_amount for t in ticks)
        for bucket, c in mine.items():
            inside = [t for t in ticks if cdl.bucket_of(t.time_s, seconds) == bucket]
            assert c.open == inside[0].price_native  # the first trade's price, not the last close
            assert c.close == inside[-1].price_native
            assert c.high == max(t.price_native for t in inside)
            assert c.low == min(t.price_native for t in inside)
            assert c.low <= min(c.open, c.close) <= max(c.open, c.close) <= c.high
            assert c.volume_token == sum(t.token_amount for t in inside)


def test_price_and_market_cap_of_a_fresh_default_curve():
    supply = 10**9 * 10**18
    price = cdl.price_native(15 * 10**17, supply * 1073 // 1000, 18)
    assert price == pytest.approx(1.5 / 1.073e9)
    assert cdl.market_cap_native(price, supply, 18) == pytest.approx(1.5 / 1.073)
    # Solana-style decimals: 9 for the native coin, 6 for the token
    assert cdl.price_native(30 * 10**9, 1_073_000_000 * 10**6, 6, 9) == pytest.approx(30 / 1.073e9)
    assert cdl.price_native(10**18, 0, 18) == 0.0
