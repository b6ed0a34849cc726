"""Quotes from the curve's indexed state and the unsigned transactions built from them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from eth_abi import decode
from eth_utils import function_signature_to_4byte_selector
from hypothesis import given
from hypothesis import strategies as st

from tokenforge.domain import curve as curve_math
from tokenforge.domain.curve import CurveParams, CurveReserves, CurveState
from tokenforge.errors import NotFound, ValidationFailed
from tokenforge.market.quotes import CurveGraduated, Side, Unit, parse_amount, quote, quote_market, reserves_of
from tokenforge.market.trade_tx import BUY_GAS, COMPLETING_BUY_GAS, SELL_GAS, build_trade_tx
from tokenforge.store.models import MarketRow, TokenRow
from tokenforge.store.repositories.market_quotes import QuoteSource

SUPPLY = 10**9 * 10**18
PARAMS = CurveParams(supply=SUPPLY, virtual_native0=15 * 10**17, platform_fee_bps=95, creator_fee_bps=30)
FRESH = CurveReserves(PARAMS)
TRADER = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
CURVE = "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359"
NOW = 1_800_000_000


def bought(native_wei: int) -> CurveReserves:
    return curve_math.buy(FRESH, native_wei, NOW).after


def test_buy_by_native_is_the_curve_math_with_prices_and_impact():
    q = quote(FRESH, Side.BUY, 10**17, now_s=NOW, as_of_block=7)
    trade = curve_math.buy(FRESH, 10**17, NOW)
    assert (q.amount_in, q.amount_out, q.fee, q.refund) == (10**17, trade.token_amount, trade.fee, 0)
    assert q.fee_bps == 125 and q.fee == 10**17 * 125 // 10_000
    assert q.completes_curve is False and q.as_of_block == 7
    assert q.price_before_native == pytest.approx(1.5 / 1.073e9)
    assert q.price_after_native > q.price_before_native
    after = trade.after
    exact_bps = (after.virtual_native * FRESH.virtual_token / (FRESH.virtual_native * after.virtual_token) - 1) * 1e4
    assert q.price_impact_bps == int(exact_bps)


def test_sell_by_tokens_pays_native_after_the_fee():
    state = bought(10**18)
    q = quote(state, Side.SELL, 10**24, now_s=NOW)
    trade = curve_math.sell(state, 10**24, NOW)
    assert (q.unit, q.amount_in, q.amount_out, q.fee) == (Unit.TOKEN, 10**24, trade.native_amount, trade.fee)
    assert q.price_after_native < q.price_before_native


@given(st.integers(min_value=1, max_value=FRESH.params.tokens_for_sale))
def test_buy_by_token_amount_gets_at_least_those_tokens(tokens):
    q = quote(FRESH, Side.BUY, tokens, unit=Unit.TOKEN, now_s=NOW)
    assert q.amount_out >= tokens
    assert q.amount_in == curve_math.native_for_tokens(FRESH, tokens, NOW)


def test_buy_past_the_sale_is_cut_refunded_and_completes_the_curve():
    q = quote(FRESH, Side.BUY, 10 * 10**18, now_s=NOW)
    assert q.amount_out == PARAMS.tokens_for_sale and q.completes_curve
    assert 0 < q.refund < 10 * 10**18 and q.amount_in == 10 * 10**18
    tx = build_trade_tx(q, chain_id=1337, trader=TRADER, curve=CURVE, slippage_bps=100, deadline=NOW + 60)
    assert tx.gas_limit == COMPLETING_BUY_GAS and tx.value_wei == 10 * 10**18


def test_launch_fee_is_taken_at_the_next_block():
    params = CurveParams(
        supply=SUPPLY,
        virtual_native0=15 * 10**17,
        platform_fee_bps=95,
        creator_fee_bps=30,
        launch_fee_bps=5000,
        launch_window=10,
        launched_at=NOW,
    )
    assert quote(CurveReserves(params), Side.BUY, 10**17, now_s=NOW).fee_bps == 5000
    assert quote(CurveReserves(params), Side.BUY, 10**17, now_s=NOW + 10).fee_bps == 125
    blocks = CurveParams(**{**_fields(params), "window_in_blocks": True, "launched_at": 100})
    assert quote(CurveReserves(blocks), Side.BUY, 10**17, as_of_block=99).fee_bps == 5000  # next block: 100
    assert quote(CurveReserves(blocks), Side.BUY, 10**17, as_of_block=104).fee_bps == 125 + 4875 // 2 + 1


def _fields(params: CurveParams) -> dict:
    return {name: getattr(params, name) for name in CurveParams.__slots__}


def test_graduated_or_sold_out_curve_is_a_conflict_naming_the_pool():
    pool = "0x7B73f1418012CFc5417B7b3053b4fcE64a459A8d"
    with pytest.raises(CurveGraduated) as raised:
        quote(CurveReserves(PARAMS, state=CurveState.GRADUATED), Side.BUY, 10**17, pool=pool)
    assert raised.value.pool == pool and pool in raised.value.message and raised.value.code == "curve_graduated"
    with pytest.raises(CurveGraduated):
        quote(CurveReserves(PARAMS, tokens_sold=PARAMS.tokens_for_sale), Side.SELL, 1)


@pytest.mark.parametrize(
    ("state", "side", "amount", "unit", "field"),
    [
        (FRESH, Side.SELL, 10**18, Unit.NATIVE, "unit"),
        (FRESH, Side.SELL, 1, None, "amount"),  # nothing sold yet
        (FRESH, Side.BUY, 1, None, "amount"),  # buys no token
    ],
)
def test_untradeable_amounts_name_the_field(state, side, amount, unit, field):
    with pytest.raises(ValidationFailed) as raised:
        quote(state, side, amount, unit=unit, now_s=NOW)
    assert raised.value.field == field


@pytest.mark.parametrize("text", ["0", "", "-1", "1.5", "1e18", "0x10", "١٢", str(2**256)])
def test_amount_must_be_a_positive_digit_string(text):
    with pytest.raises(ValidationFailed) as raised:
        parse_amount(text, "query.amount")
    assert raised.value.field == "query.amount"


def test_min_out_subtracts_the_slippage_rounding_down():
    q = quote(FRESH, Side.BUY, 10**17, now_s=NOW)
    assert q.min_out(0) == q.amount_out
    assert q.min_out(100) == q.amount_out * 9900 // 10_000
    with pytest.raises(ValidationFailed):
        q.min_out(5001)


def test_buy_and_sell_transactions_encode_the_curve_calls():
    q = quote(FRESH, Side.BUY, 10**17, now_s=NOW)
    tx = build_trade_tx(q, chain_id=1337, trader=TRADER, curve=CURVE, slippage_bps=250, deadline=NOW + 300)
    data = bytes.fromhex(tx.data[2:])
    assert data[:4] == function_signature_to_4byte_selector("buy(uint256,uint256)")
    assert decode(["uint256", "uint256"], data[4:]) == (q.amount_out * 9750 // 10_000, NOW + 300)
    wallet = tx.as_wallet_tx()
    assert wallet == {
        "from": TRADER,
        "to": CURVE,
        "data": tx.data,
        "value": hex(10**17),
        "gas": hex(BUY_GAS),
        "chainId": hex(1337),
    }
    s = quote(bought(10**18), Side.SELL, 5 * 10**23, now_s=NOW)
    tx = build_trade_tx(s, chain_id=1, trader=TRADER, curve=CURVE, slippage_bps=0, deadline=NOW + 10)
    data = bytes.fromhex(tx.data[2:])
    assert data[:4] == function_signature_to_4byte_selector("sell(uint256,uint256,uint256)")
    assert decode(["uint256", "uint256", "uint256"], data[4:]) == (5 * 10**23, s.amount_out, NOW + 10)
    assert (tx.value_wei, tx.gas_limit) == (0, SELL_GAS)


def market_row(**over) -> MarketRow:
    state = bought(10**18)
    values = dict(
        chain="ethereum",
        token_address="0x00000000000000000000000000000000000000aa",
        token_id="t1",
        curve_address=CURVE,
        creator=TRADER,
        decimals=18,
        supply=str(SUPPLY),
        virtual_native0=str(PARAMS.virtual_native0),
        platform_fee_bps=95,
        creator_fee_bps=30,
        launch_fee_bps=0,
        launch_window=0,
        window_in_blocks=False,
        migration_fee=str(5 * 10**15),
        launched_at=NOW,
        created_block=1,
        created_tx="0x01",
        created_at=datetime.now(UTC),
        native_raised=str(state.native_raised),
        tokens_sold=str(state.tokens_sold),
        price_native=0.0,
        market_cap_native=0.0,
        progress_bps=0,
        ath_price_native=0.0,
        state="trading",
        updated_block=12,
    )
    values.update(over)
    return MarketRow(**values)


def test_reserves_come_from_the_markets_row():
    state = bought(10**18)
    assert reserves_of(market_row()) == CurveReserves(
        CurveParams(
            supply=SUPPLY, virtual_native0=PARAMS.virtual_native0, platform_fee_bps=95, creator_fee_bps=30,
            migration_fee=5 * 10**15, launched_at=NOW,
        ),
        state.native_raised,
        state.tokens_sold,
    )  # fmt: skip


def test_quote_market_reports_the_newest_indexed_block_and_unindexed_curves():
    token = TokenRow(id="t1", chain="ethereum")
    _, q = quote_market(QuoteSource(token, market_row(), 20), Side.BUY, 10**16, now_s=NOW)
    assert q.as_of_block == 20
    with pytest.raises(NotFound):
        quote_market(QuoteSource(token, None, 20), Side.BUY, 10**16)
    with pytest.raises(NotFound):
        quote_market(None, Side.BUY, 10**16)
    with pytest.raises(CurveGraduated) as raised:
        quote_market(QuoteSource(token, market_row(state="graduated", pair_address=CURVE), 20), Side.BUY, 10**16)
    assert raised.value.pool == CURVE
