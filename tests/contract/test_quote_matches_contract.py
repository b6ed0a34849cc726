"""Quotes (``market/quotes.py``) and unsigned trades (``market/trade_tx.py``) against a REAL
curve: ``TokenForgeCurve`` launched through the factory on the embedded EVM chain.

For random launch fees and random sequences of buys and sells, each trade is built with the
API's builder, signed by a test wallet (eth-account) and sent; the contract must do exactly
what the domain math quotes at the block's timestamp: tokens and native moved, the fee, the
fees accrued to creator and platform, the reserves after, the refund and the graduation of
a buy that sells out the curve. The quote at the moment of building is a bound the trade
meets (the launch fee only decays). A slippage bound that the state no longer meets reverts
with ``Slippage``, a deadline in the past with ``Expired``.

Block timestamps of the embedded chain run ahead of the wall clock (every block is at least
one second after its parent), so the next block's time is taken from the chain here, where
the API takes the clock.
"""

from __future__ import annotations

import ast
import asyncio
import uuid
from dataclasses import replace

import pytest
from eth_account import Account
from eth_utils import keccak
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from web3.logs import DISCARD

from tests.support.evm_chain import wait_for_block
from tokenforge.chains.evm import codec
from tokenforge.chains.evm.artifacts import curve_artifact, token_artifact
from tokenforge.chains.evm.open import open_embedded_evm_deployer
from tokenforge.chains.ports import LaunchRequest
from tokenforge.domain import curve as curve_math
from tokenforge.domain.curve import CurveParams, CurveReserves, CurveState
from tokenforge.market.quotes import CurveGraduated, Quote, Side, Unit, quote
from tokenforge.market.trade_tx import build_trade_tx

pytestmark = pytest.mark.slow

CHAIN_ID = 1337
SUPPLY = 10**9 * 10**18
WALLET_FEES = {"maxFeePerGas": 10**11, "maxPriorityFeePerGas": 10**9, "type": 2}


class Chain:
    """The embedded chain with its factory, driven from a loop of its own (Hypothesis runs
    examples synchronously)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.deployer = self.loop.run_until_complete(
            open_embedded_evm_deployer("ethereum", CHAIN_ID, None, Account.create().key)
        )
        embedded = self.deployer.embedded
        assert embedded is not None
        self.embedded = embedded
        self.w3 = self.embedded.web3()

    def close(self) -> None:
        self.loop.run_until_complete(self.deployer.close())
        self.loop.close()

    def launch(self, fee_bps: int = 0, window: int = 0, in_blocks: bool = False):
        """A new token and its curve; returns (curve, token, CurveParams from ``params()``)."""
        req = LaunchRequest(
            job_id=uuid.uuid4().hex,
            chain="ethereum",
            name="Quote Test",
            symbol="QT",
            decimals=18,
            supply_base_units=SUPPLY,
            creator=Account.create().address,
            launch_fee_bps=fee_bps,
            launch_fee_window=window,
            launch_fee_in_blocks=in_blocks,
        )
        receipt = self.loop.run_until_complete(self._launch(req))
        curve = self.w3.eth.contract(address=receipt.extra["curve"], abi=curve_artifact().abi)
        token = self.w3.eth.contract(address=receipt.token_address, abi=token_artifact().abi)
        return curve, token, params_of(curve)

    async def _launch(self, req: LaunchRequest):
        signed = await self.deployer.sign(req)
        await self.deployer.broadcast(signed)
        while (receipt := await self.deployer.confirm(signed)) is None:
            await wait_for_block(self.embedded, self.embedded.head_number + 1, timeout_s=30)
        return receipt

    def wallet(self):
        account = Account.create()
        self.embedded.fund(account.address, 10**21)
        return account

    def next_block_time(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"]) + 1

    def send(self, account, wallet_tx: dict[str, str]):
        """Signs what the builder returned, as a wallet would (it adds nonce and fees), and
        sends it; returns the receipt."""
        tx = {**wallet_tx, **WALLET_FEES, "nonce": self.w3.eth.get_transaction_count(account.address)}
        raw = account.sign_transaction(tx).raw_transaction
        return self.w3.eth.wait_for_transaction_receipt(self.w3.eth.send_raw_transaction(raw), timeout=30)

    def revert_reason(self, wallet_tx: dict[str, str]) -> str:
        """The curve error the call reverts with now (its name, from the ABI's selectors).
        The embedded node puts the revert bytes in the error message (``execution reverted:
        b'...'``) rather than in ``data``; both are read."""
        call: dict[str, str | int] = {k: wallet_tx[k] for k in ("from", "to", "data")}
        call.update(value=int(wallet_tx["value"], 16), gas=int(wallet_tx["gas"], 16))
        answer = self.w3.provider.make_request("eth_call", [call, "latest"])  # type: ignore[arg-type]
        error = answer.get("error")
        if error is None:
            return "no revert"
        data = error.get("data")
        if data is None and "b'" in error["message"]:
            data = "0x" + ast.literal_eval(error["message"][error["message"].index("b'") :]).hex()
        return ERRORS.get(str(data)[:10], error["message"])


ERRORS = {
    "0x" + keccak(text=f"{e['name']}()")[:4].hex(): e["name"] for e in curve_artifact().abi if e["type"] == "error"
}


def params_of(curve) -> CurveParams:
    p = curve.functions.params().call()
    return codec.curve_params(p)


@pytest.fixture(scope="module")
def chain():
    c = Chain()
    yield c
    c.close()


def build(q: Quote, trader: str, curve, *, slippage_bps: int = 100, deadline: int) -> dict[str, str]:
    tx = build_trade_tx(
        q, chain_id=CHAIN_ID, trader=trader, curve=curve.address, slippage_bps=slippage_bps, deadline=deadline
    )
    return tx.as_wallet_tx()


NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("buy"), st.integers(10**12, 2 * 10**18)),
        st.tuples(st.just("buy_tokens"), st.integers(10**18, 3 * 10**26)),
        st.tuples(st.just("sell"), st.integers(1, 10_000)),  # basis points of the trader's balance
        st.tuples(st.just("buy"), st.integers(3 * 10**18, 6 * 10**18)),  # may sell the curve out
    ),
    min_size=1,
    max_size=8,
)
LAUNCH_FEES = st.one_of(
    st.just((0, 0, False)),
    st.tuples(st.integers(126, 9000), st.integers(1, 60), st.just(False)),
    st.tuples(st.integers(126, 9000), st.integers(1, 30), st.just(True)),
)


# no shrinking: every step is a chain transaction, and a failing sequence is short already
@settings(max_examples=30, deadline=None, phases=NO_SHRINK, suppress_health_check=[HealthCheck.too_slow])
@given(launch_fee=LAUNCH_FEES, ops=OPS, who=st.lists(st.integers(0, 1), min_size=8, max_size=8))
def test_trades_do_exactly_what_the_domain_math_quotes(chain, launch_fee, ops, who):
    curve, token, params = chain.launch(*launch_fee)
    event("launch fee in " + ("blocks" if launch_fee[2] else "seconds" if launch_fee[1] else "none"))
    model = CurveReserves(params)
    traders = [chain.wallet(), chain.wallet()]
    creator_fees = platform_fees = 0
    for (kind, n), t in zip(ops, who, strict=False):
        trader = traders[t]
        head = chain.w3.eth.block_number
        side, unit, amount = Side.BUY, Unit.NATIVE, n
        if kind == "buy_tokens":
            unit = Unit.TOKEN
        elif kind == "sell":
            side, unit = Side.SELL, Unit.TOKEN
            amount = token.functions.balanceOf(trader.address).call() * n // 10_000
            if amount == 0:
                continue
        if model.state is CurveState.GRADUATED:
            with pytest.raises(CurveGraduated):
                quote(model, side, max(amount, 1), unit=unit, as_of_block=head)
            break
        now = chain.next_block_time()
        built = quote(model, side, amount, unit=unit, as_of_block=head, now_s=now)
        wallet_tx = build(built, trader.address, curve, deadline=now + 300)
        native_before = chain.w3.eth.get_balance(trader.address)
        tokens_before = token.functions.balanceOf(trader.address).call()

        receipt = chain.send(trader, wallet_tx)
        assert receipt["status"] == 1, (kind, amount, built)

        block = chain.w3.eth.get_block(receipt["blockNumber"])
        at = receipt["blockNumber"] if params.window_in_blocks else block["timestamp"]
        # what the math says this exact transaction does in the block it landed in
        sent = built.amount_in
        exact = quote(model, side, sent, unit=Unit.NATIVE if side is Side.BUY else Unit.TOKEN, now_s=block["timestamp"],
                      as_of_block=receipt["blockNumber"] - 1)  # fmt: skip
        assert exact.fee_bps == params.fee_bps(at)
        (log,) = curve.events.Trade().process_receipt(receipt, errors=DISCARD)
        e = log["args"]
        gas_cost = receipt["gasUsed"] * receipt["effectiveGasPrice"]
        native_after = chain.w3.eth.get_balance(trader.address)
        tokens_after = token.functions.balanceOf(trader.address).call()
        assert e["isBuy"] is (side is Side.BUY) and e["trader"] == trader.address
        assert e["fee"] == exact.fee
        if side is Side.BUY:
            assert e["tokenAmount"] == exact.amount_out == tokens_after - tokens_before
            assert e["nativeAmount"] == exact.amount_in - exact.refund == native_before - native_after - gas_cost
            assert exact.amount_out >= built.amount_out >= built.min_out(100)  # the fee only decays
            assert exact.amount_out >= amount or unit is Unit.NATIVE or exact.completes_curve
        else:
            assert e["tokenAmount"] == amount == tokens_before - tokens_after
            assert e["nativeAmount"] == exact.amount_out == native_after - native_before + gas_cost
            assert exact.amount_out >= built.amount_out
        trade = (curve_math.buy if side is Side.BUY else curve_math.sell)(model, sent, at)
        model = trade.after
        creator_fees += trade.creator_fee
        platform_fees += trade.platform_fee
        assert (e["virtualNative"], e["virtualToken"]) == (model.virtual_native, model.virtual_token)
        reserves = curve.functions.reserves().call()
        assert reserves == [model.virtual_native, model.virtual_token, model.native_raised, model.tokens_left]
        if exact.completes_curve:  # graduated in the same transaction; the migration fee is the platform's
            assert curve.functions.graduated().call() is True
            assert receipt["gasUsed"] <= int(wallet_tx["gas"], 16)
            platform_fees += curve_math.graduation(model)[2]
            event("sold the curve out")
            model = replace(model, state=CurveState.GRADUATED)
        assert curve.functions.creatorFees().call() == creator_fees
        assert curve.functions.platformFees().call() == platform_fees


def test_a_slippage_bound_the_curve_no_longer_meets_reverts_with_slippage(chain):
    curve, _, params = chain.launch()
    alice, bob = chain.wallet(), chain.wallet()
    now = chain.next_block_time()
    tight = build(quote(CurveReserves(params), Side.BUY, 10**17, now_s=now), alice.address, curve, slippage_bps=0,
                  deadline=now + 300)  # fmt: skip
    # bob's buy lands first: alice's 0.1 ETH now buys fewer tokens than her bound
    first = build(quote(CurveReserves(params), Side.BUY, 10**17, now_s=now), bob.address, curve, deadline=now + 300)
    assert chain.send(bob, first)["status"] == 1
    assert chain.revert_reason(tight) == "Slippage"
    assert chain.send(alice, tight)["status"] == 0
    # with room for bob's trade (it cut alice's tokens by about 11 %) the same buy goes through
    loose = build(quote(CurveReserves(params), Side.BUY, 10**17, now_s=now), alice.address, curve, slippage_bps=1500,
                  deadline=now + 300)  # fmt: skip
    assert chain.send(alice, loose)["status"] == 1


def test_a_trade_mined_after_its_deadline_reverts_with_expired(chain):
    curve, _, params = chain.launch()
    alice = chain.wallet()
    now = chain.next_block_time()
    late = build(quote(CurveReserves(params), Side.BUY, 10**17, now_s=now), alice.address, curve, deadline=now - 2)
    assert chain.revert_reason(late) == "Expired"
    assert chain.send(alice, late)["status"] == 0
