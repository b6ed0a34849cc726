"""The bonding curve contracts as deployed, against ``tokenforge.domain.curve``.

Runs the committed bytecode (factory, token, curve, Uniswap V2 as published) on the
embedded EVM chain (py-evm), one transaction per block (:mod:`tests.support.market_chain`).

* A Hypothesis state machine launches a market (with or without a launch fee decaying in
  seconds or blocks), then buys, sells, round-trips, claims and completes it in random
  order. After every step: the chain equals the domain model exactly (every trade's
  amounts, fee and reserves; fee accruals; refunds), ``Vq * Vt`` never decreases, and the
  curve's native balance covers what it owes its sellers and fee holders.
* Plain tests: slippage, deadlines, zero amounts, selling more than was sold, graduation
  exactly once, the pool's reserves and burnt LP, the closed pool before graduation,
  fee claims, the factory's bounds, and re-entry from a malicious receiver
  (``solidity/ReentrantTrader.sol``, compiled here by the pinned npm ``solc``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from web3 import Web3
from web3.logs import DISCARD

from tests.conftest import require_tool
from tests.support.market_chain import WHOLE, Market, MarketChain, MarketDriver, open_embedded_market
from tokenforge.domain import curve as domain

ROOT = Path(__file__).resolve().parents[2]
ZERO_ADDRESS = "0x" + "00" * 20


@pytest.fixture(scope="module")
def chain() -> Iterator[MarketChain]:
    market_chain = open_embedded_market(traders=4)
    try:
        yield market_chain
    finally:
        market_chain.close()


def gas_cost_wei(receipt) -> int:
    return int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])


def now_of(driver: MarketDriver, market: Market, receipt) -> int:
    """The clock the curve's launch fee runs on, at ``receipt``'s block."""
    if market.params.window_in_blocks:
        return int(receipt["blockNumber"])
    return driver.block_time(receipt)


def fees_accrued(driver: MarketDriver, market: Market) -> tuple[int, int]:
    c = driver.curve(market).functions
    return c.creatorFees().call(), c.platformFees().call()


# ---------------------------------------------------------------------------- the state machine


class CurveMachine(RuleBasedStateMachine):
    """One market per example; the domain model is the oracle for every transaction."""

    chain: MarketChain

    def __init__(self) -> None:
        super().__init__()
        self.d = self.chain.driver
        self.traders: list[LocalAccount] = self.chain.traders
        self.market: Market
        self.model: domain.CurveReserves
        self.fees = (0, 0)  # (creator, platform) accrued as the model counts them
        self.k = 0
        self.graduated = False

    @initialize(
        fee=st.one_of(
            st.just((0, 0, False)),
            st.tuples(st.integers(126, 9000), st.integers(1, 60), st.just(False)),
            st.tuples(st.integers(126, 9000), st.integers(1, 30), st.just(True)),
        )
    )
    def launch(self, fee: tuple[int, int, bool]) -> None:
        launch_fee_bps, window, in_blocks = fee
        creator = self.chain.new_wallet()
        self.market = self.d.launch(
            creator, launch_fee_bps=launch_fee_bps, launch_window=window, window_in_blocks=in_blocks
        )
        self.creator = creator
        self.model = domain.CurveReserves(self.market.params)
        self.k = self.model.virtual_native * self.model.virtual_token

    # -- trades ------------------------------------------------------------------------------

    def _buy(self, trader: LocalAccount, native_in_wei: int) -> domain.Trade | None:
        before = self.d.native_balance(trader.address)
        receipt = self.d.buy(trader, self.market, native_in_wei)
        now = now_of(self.d, self.market, receipt)
        try:
            expected = domain.buy(self.model, native_in_wei, now)
        except domain.CurveError:
            assert receipt["status"] == 0
            return None
        assert receipt["status"] == 1
        [event] = self.d.trades(self.market, receipt)
        self._check_trade(event.args, expected, trader)
        # the refund of a buy cut to what was left comes back; nothing else does
        assert before - self.d.native_balance(trader.address) == expected.native_amount + gas_cost_wei(receipt)
        if expected.completes:
            self._check_graduation(receipt, expected)
        return expected

    def _sell(self, trader: LocalAccount, tokens_in: int) -> domain.Trade | None:
        before = self.d.native_balance(trader.address)
        receipt = self.d.sell(trader, self.market, tokens_in)
        now = now_of(self.d, self.market, receipt)
        try:
            expected = domain.sell(self.model, tokens_in, now)
        except domain.CurveError:
            assert receipt["status"] == 0
            return None
        assert receipt["status"] == 1
        [event] = self.d.trades(self.market, receipt)
        self._check_trade(event.args, expected, trader)
        assert self.d.native_balance(trader.address) - before == expected.native_amount - gas_cost_wei(receipt)
        return expected

    def _check_trade(self, args, expected: domain.Trade, trader: LocalAccount) -> None:
        after = expected.after
        assert (args["trader"], args["isBuy"]) == (trader.address, expected.is_buy)
        assert (args["nativeAmount"], args["tokenAmount"], args["fee"]) == (
            expected.native_amount,
            expected.token_amount,
            expected.fee,
        )
        assert (args["virtualNative"], args["virtualToken"]) == (after.virtual_native, after.virtual_token)
        # the trade's fee is exactly what the creator and the platform accrued from it
        creator_before, platform_before = self.fees
        creator_now, platform_now = fees_accrued(self.d, self.market)
        assert expected.creator_fee + expected.platform_fee == expected.fee
        migration_fee = domain.graduation(after)[2] if expected.completes else 0  # the platform's too
        assert (creator_now - creator_before, platform_now - platform_before) == (
            expected.creator_fee,
            expected.platform_fee + migration_fee,
        )
        self.fees = (creator_now, platform_now)
        self.model = after

    def _check_graduation(self, receipt, expected: domain.Trade) -> None:
        self.graduated = True
        native_liquidity, token_liquidity, migration_fee = domain.graduation(expected.after)
        curve = self.d.curve(self.market)
        [grad] = [
            e
            for e in curve.events.Graduated().process_receipt(receipt, errors=DISCARD)
            if e.address == self.market.curve
        ]
        assert (grad.args["nativeLiquidity"], grad.args["tokenLiquidity"], grad.args["migrationFee"]) == (
            native_liquidity,
            token_liquidity,
            migration_fee,
        )
        pool = self.d.token(self.market).functions.pool().call()
        assert grad.args["pair"] == pool
        pair = self.d.pair(pool)
        reserves = pair.functions.getReserves().call()
        token_is_0 = pair.functions.token0().call() == self.market.token
        assert (reserves[0], reserves[1]) == (
            (token_liquidity, native_liquidity) if token_is_0 else (native_liquidity, token_liquidity)
        )
        # every LP token is burnt (the pair's minimum liquidity included)
        total = pair.functions.totalSupply().call()
        assert total > 0 and pair.functions.balanceOf(ZERO_ADDRESS).call() == total
        assert grad.args["liquidityBurnt"] == total - 1000
        assert self.d.balance(self.market, self.market.curve) == 0
        assert fees_accrued(self.d, self.market) == self.fees
        assert curve.functions.graduated().call()

    @precondition(lambda self: not self.graduated)
    @rule(
        who=st.integers(0, 3),
        native_in_wei=st.one_of(st.integers(1, 10**12), st.integers(10**12, 2 * WHOLE)),
    )
    def buy(self, who: int, native_in_wei: int) -> None:
        self._buy(self.traders[who], native_in_wei)

    @precondition(lambda self: not self.graduated)
    @rule(who=st.integers(0, 3), share=st.fractions(0, 1))
    def sell(self, who: int, share) -> None:
        trader = self.traders[who]
        held = self.d.balance(self.market, trader.address)
        tokens_in = int(held * share)
        if tokens_in == 0:
            assert self.d.revert_name(trader.address, self.d.curve(self.market).functions.sell(0, 0, 2**40)) == (
                "ZeroAmount"
            )
            return
        self._sell(trader, tokens_in)

    @precondition(lambda self: not self.graduated)
    @rule(who=st.integers(0, 3), native_in_wei=st.integers(10**9, WHOLE))
    def buy_then_sell_never_profits(self, who: int, native_in_wei: int) -> None:
        trader = self.traders[who]
        bought = self._buy(trader, native_in_wei)
        if bought is None or bought.completes:
            return
        sold = self._sell(trader, bought.token_amount)
        assert sold is not None and sold.native_amount <= bought.native_amount

    @precondition(lambda self: not self.graduated)
    @rule(who=st.integers(0, 3))
    def complete(self, who: int) -> None:
        """A buy larger than what is left: cut to it, refunded the rest, graduates. 200 ETH
        covers the raise (~4.25 ETH) even under the highest launch fee (99 %)."""
        assert self._buy(self.traders[who], 200 * WHOLE) is not None
        assert self.graduated

    @rule()
    def claim_creator_fees(self) -> None:
        before = self.d.native_balance(self.creator.address)
        receipt = self.d.call(self.creator, self.d.curve(self.market).functions.claimCreatorFees())
        assert receipt["status"] == 1
        paid = self.d.native_balance(self.creator.address) - before + gas_cost_wei(receipt)
        assert paid == self.fees[0]
        self.fees = (0, self.fees[1])

    @rule(who=st.integers(0, 3))
    def claim_platform_fees(self, who: int) -> None:
        recipient = self.chain.terms.fee_recipient
        before = self.d.native_balance(recipient)
        receipt = self.d.call(self.traders[who], self.d.curve(self.market).functions.claimPlatformFees())
        assert receipt["status"] == 1
        assert self.d.native_balance(recipient) - before == self.fees[1]  # anyone may call; it pays the recipient
        self.fees = (self.fees[0], 0)

    # -- invariants --------------------------------------------------------------------------

    @invariant()
    def chain_equals_model(self) -> None:
        state = self.d.state(self.market)
        assert (state.native_raised, state.tokens_sold) == (self.model.native_raised, self.model.tokens_sold)
        assert fees_accrued(self.d, self.market) == self.fees

    @invariant()
    def k_never_decreases(self) -> None:
        k = self.model.virtual_native * self.model.virtual_token
        assert k >= self.k
        self.k = k

    @invariant()
    def the_curve_can_pay_what_it_owes(self) -> None:
        balance = self.d.native_balance(self.market.curve)
        creator_fees, platform_fees = self.fees
        if self.graduated:  # what is left is exactly the unclaimed fees
            assert balance == creator_fees + platform_fees
            return
        assert balance >= self.model.native_raised + creator_fees + platform_fees
        if self.model.tokens_sold:
            vq, vt, n = self.model.virtual_native, self.model.virtual_token, self.model.tokens_sold
            assert n * vq // (vt + n) <= self.model.native_raised  # selling every outstanding token


@pytest.mark.slow
def test_the_curve_equals_the_domain_model_and_keeps_its_invariants(chain):
    CurveMachine.chain = chain
    run_state_machine_as_test(
        CurveMachine,
        settings=settings(
            max_examples=15,
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            phases=[Phase.explicit, Phase.reuse, Phase.generate],  # a shrink of chain runs takes minutes
        ),
    )


# ---------------------------------------------------------------------------- refusals


@pytest.fixture
def market(chain) -> Market:
    return chain.driver.launch(chain.new_wallet())


def test_slippage_deadline_and_zero_amounts_are_refused(chain, market):
    d, trader = chain.driver, chain.traders[0]
    curve = d.curve(market).functions
    expected = domain.buy(d.state(market), WHOLE // 10, 0).token_amount
    assert d.revert_name(trader.address, curve.buy(expected, 2**40), WHOLE // 10) is None
    assert d.revert_name(trader.address, curve.buy(expected + 1, 2**40), WHOLE // 10) == "Slippage"
    assert d.revert_name(trader.address, curve.buy(0, 1), WHOLE // 10) == "Expired"
    assert d.revert_name(trader.address, curve.buy(0, 2**40), 0) == "ZeroAmount"
    assert d.revert_name(trader.address, curve.buy(0, 2**40), 1) == "ZeroAmount"  # 1 wei buys nothing
    # a refused buy mined anyway changes nothing
    receipt = d.buy(trader, market, WHOLE // 10, min_tokens_out=expected + 1)
    assert receipt["status"] == 0 and d.state(market).tokens_sold == 0

    assert d.buy(trader, market, WHOLE // 10)["status"] == 1
    held = d.balance(market, trader.address)
    gross = domain.sell(d.state(market), held, 0)
    assert d.revert_name(trader.address, curve.sell(held, gross.native_amount, 2**40)) is None
    assert d.revert_name(trader.address, curve.sell(held, gross.native_amount + 1, 2**40)) == "Slippage"
    assert d.revert_name(trader.address, curve.sell(held, 0, 1)) == "Expired"
    assert d.revert_name(trader.address, curve.sell(0, 0, 2**40)) == "ZeroAmount"
    assert d.revert_name(trader.address, curve.sell(held + 1, 0, 2**40)) == "InsufficientReserve"
    assert d.revert_name(trader.address, curve.graduate()) == "NotComplete"


def test_nobody_can_seed_the_pool_before_graduation(chain, market):
    d, trader = chain.driver, chain.traders[1]
    assert d.buy(trader, market, WHOLE // 10)["status"] == 1
    token = d.token(market).functions
    pool = token.pool().call()
    assert d.revert_name(trader.address, token.transfer(pool, 1)) == "PoolNotOpen"
    assert d.transfer(trader, market, pool, 1)["status"] == 0
    assert d.balance(market, pool) == 0
    assert d.revert_name(trader.address, token.transfer(chain.traders[2].address, 1)) is None  # others are fine

    assert d.buy(trader, market, 10 * WHOLE)["status"] == 1  # completes and graduates
    assert d.transfer(trader, market, pool, 1)["status"] == 1  # the pool is open now


def test_graduation_happens_exactly_once(chain, market):
    d, trader = chain.driver, chain.traders[2]
    curve = d.curve(market)
    receipt = d.buy(trader, market, 10 * WHOLE)
    assert receipt["status"] == 1
    assert len(curve.events.Graduated().process_receipt(receipt, errors=DISCARD)) == 1
    assert d.reserves(market)[3] == 0
    assert d.revert_name(trader.address, curve.functions.graduate()) == "CurveComplete"
    assert d.call(trader, curve.functions.graduate())["status"] == 0
    assert d.revert_name(trader.address, curve.functions.buy(0, 2**40), WHOLE) == "CurveComplete"
    assert d.revert_name(trader.address, curve.functions.sell(1, 0, 2**40)) == "CurveComplete"
    pair = d.pair(d.token(market).functions.pool().call())
    assert pair.functions.totalSupply().call() == pair.functions.balanceOf(ZERO_ADDRESS).call()


def test_only_the_creator_claims_creator_fees_and_platform_fees_go_to_the_recipient(chain):
    d = chain.driver
    creator, trader = chain.new_wallet(), chain.traders[3]
    market = d.launch(creator)
    assert d.buy(trader, market, WHOLE)["status"] == 1
    creator_fees, platform_fees = fees_accrued(d, market)
    assert creator_fees > 0 and platform_fees > 0
    curve = d.curve(market).functions
    assert d.revert_name(trader.address, curve.claimCreatorFees()) == "NotCreator"
    assert d.call(trader, curve.claimCreatorFees())["status"] == 0

    recipient = chain.terms.fee_recipient
    assert d.factory.functions.feeRecipient().call() == recipient
    before = d.native_balance(recipient)
    receipt = d.call(trader, curve.claimPlatformFees())
    events = d.curve(market).events.FeesClaimed().process_receipt(receipt, errors=DISCARD)
    assert [(e.args["recipient"], e.args["amount"], e.args["creator"]) for e in events] == [
        (recipient, platform_fees, False)
    ]
    assert d.native_balance(recipient) - before == platform_fees

    before = d.native_balance(creator.address)
    receipt = d.call(creator, curve.claimCreatorFees())
    assert d.native_balance(creator.address) - before + gas_cost_wei(receipt) == creator_fees
    assert fees_accrued(d, market) == (0, 0)


# ---------------------------------------------------------------------------- launch fee


@pytest.mark.parametrize("in_blocks", [False, True])
def test_the_launch_fee_decays_as_the_domain_says(chain, in_blocks):
    d, trader = chain.driver, chain.traders[0]
    window = 5
    market = d.launch(chain.new_wallet(), launch_fee_bps=9000, launch_window=window, window_in_blocks=in_blocks)
    seen = []
    for _ in range(window + 2):
        model = d.state(market)
        receipt = d.buy(trader, market, WHOLE // 100)
        now = now_of(d, market, receipt)
        [event] = d.trades(market, receipt)
        assert event.args["fee"] == domain.buy(model, WHOLE // 100, now).fee
        seen.append(market.params.fee_bps(now))
    assert seen[0] > seen[-1] == market.params.base_fee_bps
    assert seen == sorted(seen, reverse=True)
    assert d.curve(market).functions.currentFeeBps().call() == market.params.base_fee_bps


# ---------------------------------------------------------------------------- the factory


def config_tuple(terms: domain.PlatformTerms, **changes) -> tuple:
    values = {
        "fee_recipient": terms.fee_recipient,
        "platform_fee_bps": terms.platform_fee_bps,
        "creator_fee_bps": terms.creator_fee_bps,
        "max_launch_fee_bps": terms.max_launch_fee_bps,
        "max_launch_window_s": terms.max_launch_window_s,
        "max_launch_window_blocks": terms.max_launch_window_blocks,
        "virtual_native0": terms.virtual_native0,
        "migration_fee": terms.migration_fee,
        **changes,
    }
    return tuple(values.values())


@pytest.mark.parametrize(
    "change",
    [
        {"fee_recipient": ZERO_ADDRESS},
        {"platform_fee_bps": domain.MAX_PLATFORM_FEE_BPS + 1},
        {"creator_fee_bps": domain.MAX_CREATOR_FEE_BPS + 1},
        {"max_launch_fee_bps": domain.MAX_LAUNCH_FEE_BPS + 1},
        {"max_launch_window_s": domain.MAX_LAUNCH_WINDOW_S + 1},
        {"max_launch_window_blocks": domain.MAX_LAUNCH_WINDOW_BLOCKS + 1},
        {"virtual_native0": 0},
        {"migration_fee": 15 * 10**17 + 1},
    ],
)
def test_the_factory_refuses_terms_out_of_bounds(chain, change):
    factory = chain.driver.factory.functions
    owner = chain.owner.address
    assert chain.driver.revert_name(owner, factory.setConfig(config_tuple(chain.terms, **change))) == "InvalidConfig"
    assert chain.driver.revert_name(owner, factory.setConfig(config_tuple(chain.terms))) is None


def test_only_the_owner_changes_the_factory(chain):
    factory = chain.driver.factory.functions
    stranger = chain.traders[0].address
    assert chain.driver.revert_name(stranger, factory.setConfig(config_tuple(chain.terms))) == "NotOwner"
    assert chain.driver.revert_name(stranger, factory.transferOwnership(stranger)) == "NotOwner"
    assert chain.driver.revert_name(chain.owner.address, factory.transferOwnership(ZERO_ADDRESS)) == "InvalidConfig"


@pytest.mark.parametrize(
    ("fee_bps", "window", "in_blocks"),
    [
        (9001, 10, False),  # above the factory's maximum (default terms: 9000)
        (125, 10, False),  # not above the base fee (95 + 30)
        (5000, 61, False),  # window above 60 s
        (5000, 31, True),  # window above 30 blocks
        (5000, 0, False),  # a fee without a window
        (0, 10, False),  # a window without a fee
    ],
)
def test_the_factory_refuses_launch_fees_out_of_bounds(chain, fee_bps, window, in_blocks):
    from tokenforge.chains.evm import codec

    args = codec.encode_token_args("Bounds", "BND", 18)
    fn = chain.driver.factory.functions.createToken(
        keccak(text=f"{fee_bps}{window}{in_blocks}"), args, chain.owner.address, 10**27, fee_bps, window, in_blocks
    )
    assert chain.driver.revert_name(chain.owner.address, fn) == "InvalidLaunchFee"
    assert chain.terms.check_launch_fee(fee_bps, window, in_blocks) is not None  # the domain agrees


def test_the_factory_refuses_a_supply_beyond_the_pool_reserves(chain):
    from tokenforge.chains.evm import codec

    args = codec.encode_token_args("Huge", "HUGE", 18)
    factory = chain.driver.factory.functions
    assert factory.MAX_SUPPLY().call() == domain.MAX_SUPPLY_BASE_UNITS
    over = factory.createToken(b"\x01" * 32, args, chain.owner.address, domain.MAX_SUPPLY_BASE_UNITS + 1, 0, 0, False)
    assert chain.driver.revert_name(chain.owner.address, over) == "InvalidArgs"
    at = factory.createToken(b"\x01" * 32, args, chain.owner.address, domain.MAX_SUPPLY_BASE_UNITS, 0, 0, False)
    assert chain.driver.revert_name(chain.owner.address, at) is None


# ---------------------------------------------------------------------------- re-entry

SOLC_SCRIPT = """
const fs = require("fs");
const solc = require("solc");
const source = fs.readFileSync(process.argv[1], "utf8");
const input = {
  language: "Solidity",
  sources: { "ReentrantTrader.sol": { content: source } },
  settings: { evmVersion: "cancun", optimizer: { enabled: true, runs: 200 },
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } } },
};
const out = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (out.errors || []).filter((e) => e.severity === "error");
if (errors.length) { process.stderr.write(JSON.stringify(errors)); process.exit(1); }
const c = out.contracts["ReentrantTrader.sol"].ReentrantTrader;
process.stdout.write(JSON.stringify({ abi: c.abi, bytecode: c.evm.bytecode.object }));
"""


@pytest.fixture(scope="module")
def reentrant_trader() -> dict:
    """ReentrantTrader's ABI and creation code, compiled by the pinned npm solc."""
    node = shutil.which("node")
    require_tool("node", node, "install Node.js 20")
    require_tool("npm solc", ROOT / "node_modules" / "solc" / "package.json", "run `npm ci`")
    assert node is not None
    result = subprocess.run(
        [node, "-e", SOLC_SCRIPT, str(ROOT / "tests" / "contract" / "solidity" / "ReentrantTrader.sol")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    compiled = json.loads(result.stdout)
    return {"abi": compiled["abi"], "bytecode": bytes.fromhex(compiled["bytecode"])}


REENTRY_ERROR = keccak(text="ReentrancyGuardReentrantCall()")[:4]


def reentry_of(attacker) -> tuple[int, bool, bytes]:
    f = attacker.functions
    return f.attempts().call(), f.reentrySucceeded().call(), bytes(f.reentryError().call())


@pytest.mark.parametrize(("mode", "name"), [(1, "buy"), (2, "sell")])
def test_a_receiver_reentering_a_trade_is_refused(chain, reentrant_trader, market, mode, name):
    d, owner = chain.driver, chain.owner
    attacker = d.deploy(owner, reentrant_trader["abi"], reentrant_trader["bytecode"], market.curve)
    assert d.call(owner, attacker.functions.buy(), WHOLE // 10)["status"] == 1
    held = d.balance(market, attacker.address)
    assert held > 0
    assert d.call(owner, attacker.functions.setMode(mode))["status"] == 1
    before = d.state(market)
    receipt = d.call(owner, attacker.functions.sell(held // 2))  # the curve pays the attacker: receive() re-enters
    assert receipt["status"] == 1
    assert reentry_of(attacker) == (1, False, REENTRY_ERROR), name
    [trade] = d.trades(market, receipt)  # only the outer sale happened
    assert trade.args["isBuy"] is False and d.state(market).tokens_sold == before.tokens_sold - held // 2


def test_a_creator_reentering_its_fee_claim_is_refused(chain, reentrant_trader):
    d, owner = chain.driver, chain.owner
    # the attacker's address is known before it exists: it is owner's next CREATE
    from tokenforge.chains.evm import codec

    attacker_address = codec.create_address(owner.address, d.w3.eth.get_transaction_count(owner.address) + 1)
    market = d.launch(attacker_address, sender=owner)
    attacker = d.deploy(owner, reentrant_trader["abi"], reentrant_trader["bytecode"], market.curve)
    assert attacker.address == attacker_address
    assert d.buy(chain.traders[0], market, WHOLE)["status"] == 1
    creator_fees, _ = fees_accrued(d, market)
    assert d.call(owner, attacker.functions.setMode(3))["status"] == 1
    assert d.call(owner, attacker.functions.claimCreatorFees())["status"] == 1
    assert reentry_of(attacker) == (1, False, REENTRY_ERROR)
    assert d.native_balance(attacker.address) == creator_fees  # paid once
    assert fees_accrued(d, market)[0] == 0


def test_a_fee_recipient_reentering_the_platform_claim_is_refused(chain, reentrant_trader, market):
    d, owner = chain.driver, chain.owner
    attacker = d.deploy(owner, reentrant_trader["abi"], reentrant_trader["bytecode"], market.curve)
    assert d.buy(chain.traders[1], market, WHOLE)["status"] == 1
    _, platform_fees = fees_accrued(d, market)
    factory = d.factory.functions
    assert d.call(owner, factory.setConfig(config_tuple(chain.terms, fee_recipient=attacker.address)))["status"] == 1
    try:
        assert d.call(owner, attacker.functions.setMode(4))["status"] == 1
        assert d.call(owner, attacker.functions.claimPlatformFees())["status"] == 1
        assert reentry_of(attacker) == (1, False, REENTRY_ERROR)
        assert d.native_balance(attacker.address) == platform_fees
    finally:
        assert d.call(owner, factory.setConfig(config_tuple(chain.terms)))["status"] == 1
    assert d.factory.functions.feeRecipient().call() == Web3.to_checksum_address(chain.terms.fee_recipient)
