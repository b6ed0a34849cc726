"""The Solana curve program (programs/curve) on LiteSVM: the same math as the domain (and so
as the EVM contract), the curve's invariants under random trading, and an attacker's
attempts — each refused with the program's named error and nothing moved."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from tests.support.solana_curve import PROGRAM_ID, CurveChain, Launched, Terms, curve_address, pool_address
from tokenforge.chains.solana.instructions import SYSTEM_PROGRAM_ID, TOKEN_2022_PROGRAM_ID, associated_token_address
from tokenforge.domain import curve as dc

SUPPLY = 10**18  # 1,000,000,000 tokens of 9 decimals
CU_TARGET = 20_000


def domain_curve(chain: CurveChain, launched: Launched) -> dc.CurveReserves:
    return chain.curve(launched).reserves()


def now(chain: CurveChain) -> int:
    return chain.svm.get_clock().unix_timestamp


@pytest.fixture
def chain() -> CurveChain:
    return CurveChain()


# ---------------------------------------------------------------------------- the math


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(
        st.tuples(st.booleans(), st.integers(1, 40 * 10**9), st.integers(1, 10_000)), min_size=1, max_size=12
    ),
    launch_fee=st.sampled_from([(0, 0), (5000, 600)]),
)
def test_every_trade_moves_what_the_domain_math_says(steps, launch_fee) -> None:
    chain = CurveChain()
    fee_bps, window = launch_fee
    launched = chain.launch(SUPPLY, launch_fee_bps=fee_bps, window=window)
    trader = chain.wallet(10**14)
    chain.ensure_token_account(launched, trader.pubkey())
    fees_paid = 0
    recipient_before = chain.lamports(chain.terms.fee_recipient)
    k_before = 0
    for is_buy, native_in, sell_bps in steps:
        chain.warp_seconds(37)
        expected_curve = domain_curve(chain, launched)
        held = chain.balance_of(launched, trader.pubkey())
        lamports_before = chain.lamports(trader.pubkey())
        if is_buy:
            refusal = None
            try:
                expected = dc.buy(expected_curve, native_in, now(chain))
            except dc.CurveError as exc:
                refusal = exc.reason
            if refusal is not None:  # the domain refuses (sold out): so does the program
                assert chain.error(chain.buy(launched, trader, native_in)) == refusal
                continue
            result = chain.ok(chain.buy(launched, trader, native_in))
            assert chain.balance_of(launched, trader.pubkey()) == held + expected.token_amount
            assert lamports_before - chain.lamports(trader.pubkey()) == expected.native_amount + 5000  # + tx fee
        else:
            amount = held * sell_bps // 10_000
            if amount == 0:
                continue
            expected = dc.sell(expected_curve, amount, now(chain))
            result = chain.ok(chain.sell(launched, trader, amount))
            assert chain.balance_of(launched, trader.pubkey()) == held - amount
            assert chain.lamports(trader.pubkey()) - lamports_before == expected.native_amount - 5000
        assert result.compute_units_consumed() <= CU_TARGET
        after = chain.curve(launched)
        assert (after.native_raised, after.tokens_sold) == (expected.after.native_raised, expected.after.tokens_sold)
        fees_paid += expected.fee
        # fees sum exactly: the platform's went out, the creator's stay on the curve
        assert after.creator_fees + chain.lamports(chain.terms.fee_recipient) - recipient_before == fees_paid
        # k never decreases
        k = (after.virtual_native0 + after.native_raised) * (after.supply * 1073 // 1000 - after.tokens_sold)
        assert k >= k_before
        k_before = k
        # the curve's lamports cover rent, the creator's fees and selling every outstanding token
        rent = chain.svm.minimum_balance_for_rent_exemption(208)
        reserve = chain.lamports(launched.curve) - rent - after.creator_fees
        assert reserve >= after.native_raised
        if after.tokens_sold:
            everything = dc.sell(domain_curve(chain, launched), after.tokens_sold, now(chain))
            assert everything.native_amount + everything.fee <= reserve


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(native_in=st.integers(10**6, 50 * 10**9), warp=st.integers(0, 700))
def test_buying_then_selling_never_profits(native_in, warp) -> None:
    chain = CurveChain()
    launched = chain.launch(SUPPLY, launch_fee_bps=3000, window=600)
    trader = chain.wallet(10**14)
    before = chain.lamports(trader.pubkey())
    chain.warp_seconds(warp)
    chain.ok(chain.buy(launched, trader, native_in))
    chain.ok(chain.sell(launched, trader, chain.balance_of(launched, trader.pubkey())))
    assert chain.lamports(trader.pubkey()) < before


def test_the_launch_fee_decays_to_the_base_fee(chain) -> None:
    launched = chain.launch(SUPPLY, launch_fee_bps=5000, window=100)
    assert chain.curve(launched).launch_fee_bps == 5000
    fees = []
    for _ in range(3):
        trader = chain.wallet()
        before = chain.curve(launched).creator_fees
        chain.ok(chain.buy(launched, trader, 10**9))
        fees.append(chain.curve(launched).creator_fees - before)
        chain.warp_seconds(60)
    # 30/125 of the fee is the creator's: 5000 bps at launch, 2500-ish at 60 s, the base (125) after
    assert fees[0] > fees[1] > fees[2]
    assert fees[2] == 10**9 * 125 // 10_000 * 30 // 125


def test_the_last_buy_completes_the_curve_charges_only_what_is_left_and_trading_stops(chain) -> None:
    launched = chain.launch(SUPPLY)
    whale = chain.wallet(10**13)
    expected = dc.buy(domain_curve(chain, launched), 500 * 10**9, now(chain))
    before = chain.lamports(whale.pubkey())
    result = chain.ok(chain.buy(launched, whale, 500 * 10**9))
    assert expected.completes and expected.refund > 0
    assert before - chain.lamports(whale.pubkey()) == expected.native_amount + 5000  # not the whole 500 SOL
    after = chain.curve(launched)
    assert after.state == 1 and after.tokens_sold == SUPPLY * 7931 // 10_000
    assert any("Program data: VEZkMQ" in line for line in result.logs())  # "TFd1": sold out
    assert chain.error(chain.buy(launched, chain.wallet(), 10**9)) == "CurveComplete"
    assert chain.error(chain.sell(launched, whale, 10**9)) == "CurveComplete"


def test_the_creator_claims_the_fees_once_and_nobody_else_can(chain) -> None:
    launched = chain.launch(SUPPLY)
    chain.ok(chain.buy(launched, chain.wallet(), 10 * 10**9))
    accrued = chain.curve(launched).creator_fees
    assert accrued == 10 * 10**9 * 125 // 10_000 * 30 // 125
    thief = chain.wallet()
    assert chain.error(chain.send([chain.claim_ix(launched, thief.pubkey())], thief)) == "NotCreator"
    creator = launched.creator
    before = chain.lamports(creator.pubkey())
    chain.ok(chain.send([chain.claim_ix(launched, creator.pubkey())], creator))
    assert chain.lamports(creator.pubkey()) - before == accrued - 5000
    assert chain.curve(launched).creator_fees == 0
    assert chain.error(chain.send([chain.claim_ix(launched, creator.pubkey())], creator)) == "NothingToClaim"


# ---------------------------------------------------------------------------- an attacker


def test_slippage_deadline_and_zero_amounts_are_refused(chain) -> None:
    launched = chain.launch(SUPPLY)
    trader = chain.wallet()
    quote = dc.buy(domain_curve(chain, launched), 10**9, now(chain))
    assert chain.error(chain.buy(launched, trader, 10**9, min_out=quote.token_amount + 1)) == "Slippage"
    chain.warp_seconds(1000)
    assert chain.error(chain.buy(launched, trader, 10**9, deadline=now(chain) - 1)) == "Expired"
    assert chain.error(chain.buy(launched, trader, 0)) == "ZeroAmount"
    chain.ok(chain.buy(launched, trader, 10**9, min_out=quote.token_amount, deadline=now(chain) + 30))
    held = chain.balance_of(launched, trader.pubkey())
    assert chain.error(chain.sell(launched, trader, 0)) == "ZeroAmount"
    assert chain.error(chain.sell(launched, trader, held, min_out=10**12)) == "Slippage"
    assert chain.error(chain.sell(launched, trader, held, deadline=now(chain) - 1)) == "Expired"
    assert chain.balance_of(launched, trader.pubkey()) == held


def test_selling_more_than_held_or_than_the_curve_sold_is_refused(chain) -> None:
    launched = chain.launch(SUPPLY)
    a, b = chain.wallet(), chain.wallet()
    chain.ok(chain.buy(launched, a, 10**9))
    chain.ok(chain.buy(launched, b, 10**9))
    held = chain.balance_of(launched, a.pubkey())
    # more than a holds: the token program refuses the transfer into the vault
    assert chain.error(chain.sell(launched, a, held + 1)) == "token:InsufficientFunds"
    # more than the curve ever sold
    assert chain.error(chain.sell(launched, a, 10**17)) == "InsufficientReserve"
    assert chain.balance_of(launched, a.pubkey()) == held


def test_a_trade_naming_anything_but_the_curves_own_accounts_is_refused(chain) -> None:
    launched = chain.launch(SUPPLY)
    other = chain.launch(SUPPLY)
    trader = chain.wallet()
    chain.ensure_token_account(launched, trader.pubkey())
    chain.ensure_token_account(other, trader.pubkey())
    fake_program = Pubkey.new_unique()

    def with_account(index: int, key: Pubkey, *, writable: bool = True) -> list[AccountMeta]:
        metas = [*chain.trade_accounts(launched, trader.pubkey()), AccountMeta(SYSTEM_PROGRAM_ID, False, False)]
        metas[index] = AccountMeta(key, metas[index].is_signer, writable)
        return metas

    cases = {
        "another curve's vault": with_account(2, other.vault),
        "another mint": with_account(4, other.mint, writable=False),
        "another fee recipient": with_account(5, trader.pubkey()),
        "a fake token program": with_account(6, fake_program, writable=False),
        "a fake system program": with_account(7, fake_program, writable=False),
        "the vault as the destination": with_account(3, launched.vault),
        "a curve account that is not ours": with_account(1, chain.terms.fee_recipient),
    }
    for what, metas in cases.items():
        result = chain.send([chain.buy_ix(launched, trader.pubkey(), 10**9, accounts=metas)], trader)
        assert chain.error(result) == "WrongAccount", what
    assert chain.curve(launched).tokens_sold == 0


def test_a_copy_of_a_curve_account_owned_by_another_program_is_not_a_curve(chain) -> None:
    launched = chain.launch(SUPPLY)
    trader = chain.wallet()
    chain.ensure_token_account(launched, trader.pubkey())
    forged = Pubkey.new_unique()
    real = chain.svm.get_account(launched.curve)
    from solders.account import Account

    chain.svm.set_account(forged, Account(real.lamports, bytes(real.data), Pubkey.new_unique(), False, 0))
    metas = [*chain.trade_accounts(launched, trader.pubkey()), AccountMeta(SYSTEM_PROGRAM_ID, False, False)]
    metas[1] = AccountMeta(forged, False, True)
    result = chain.send([chain.buy_ix(launched, trader.pubkey(), 10**9, accounts=metas)], trader)
    assert chain.error(result) == "WrongAccount"


def test_a_trader_who_does_not_sign_is_refused(chain) -> None:
    launched = chain.launch(SUPPLY)
    victim, attacker = chain.wallet(), chain.wallet()
    chain.ok(chain.buy(launched, victim, 10**9))
    held = chain.balance_of(launched, victim.pubkey())
    metas = chain.trade_accounts(launched, victim.pubkey())
    metas[0] = AccountMeta(victim.pubkey(), False, True)  # the victim as trader, not signing
    sell = chain.sell_ix(launched, victim.pubkey(), held, accounts=metas)
    assert chain.error(chain.send([sell], attacker)) == "NotSigner"
    buy_metas = [*metas, AccountMeta(SYSTEM_PROGRAM_ID, False, False)]
    buy = chain.buy_ix(launched, victim.pubkey(), 10**9, accounts=buy_metas)
    assert chain.error(chain.send([buy], attacker)) == "NotSigner"
    assert chain.balance_of(launched, victim.pubkey()) == held


def test_a_curve_is_created_once_per_mint_and_only_over_the_whole_supply(chain) -> None:
    launched = chain.launch(SUPPLY)
    again = chain.create_curve_ix(chain.admin.pubkey(), chain.admin.pubkey(), launched.mint)
    assert chain.error(chain.send([again], chain.admin)) == "AlreadyInitialized"

    # the mint authority kept: more tokens could be minted later
    mint, ixs = chain.mint_setup(SUPPLY, 9, revoke=False)
    ixs.append(chain.create_curve_ix(chain.admin.pubkey(), chain.admin.pubkey(), mint.pubkey()))
    assert chain.error(chain.send(ixs, chain.admin, mint)) == "BadMint"

    # the supply somewhere else than the curve's vault
    elsewhere = chain.wallet().pubkey()
    mint, ixs = chain.mint_setup(SUPPLY, 9, owner_of_supply=elsewhere)
    vault = associated_token_address(elsewhere, mint.pubkey())
    ixs.append(chain.create_curve_ix(chain.admin.pubkey(), chain.admin.pubkey(), mint.pubkey(), vault=vault))
    assert chain.error(chain.send(ixs, chain.admin, mint)) == "WrongAccount"

    # a curve account at any address but the mint's PDA
    mint, ixs = chain.mint_setup(SUPPLY, 9)
    impostor = Keypair()
    ixs.append(
        chain.create_curve_ix(
            chain.admin.pubkey(),
            chain.admin.pubkey(),
            mint.pubkey(),
            curve=impostor.pubkey(),
            vault=associated_token_address(curve_address(mint.pubkey()), mint.pubkey()),
        )
    )
    assert chain.error(chain.send(ixs, chain.admin, mint)) == "WrongAccount"


def test_lamports_sent_to_the_curve_address_first_do_not_block_the_launch(chain) -> None:
    mint, ixs = chain.mint_setup(SUPPLY, 9)
    chain.svm.airdrop(curve_address(mint.pubkey()), 1)  # griefing: the address has lamports
    ixs.append(chain.create_curve_ix(chain.admin.pubkey(), chain.admin.pubkey(), mint.pubkey()))
    chain.ok(chain.send(ixs, chain.admin, mint))
    launched = Launched(
        mint.pubkey(),
        curve_address(mint.pubkey()),
        associated_token_address(curve_address(mint.pubkey()), mint.pubkey()),
        chain.admin,
        SUPPLY,
        9,
    )
    chain.ok(chain.buy(launched, chain.wallet(), 10**9))


def test_launch_fees_outside_the_platform_bounds_are_refused(chain) -> None:
    for fee, window in [(5000, 0), (0, 60), (100, 60), (9901, 60), (5000, 3601)]:
        mint, ixs = chain.mint_setup(SUPPLY, 9)
        ixs.append(
            chain.create_curve_ix(
                chain.admin.pubkey(), chain.admin.pubkey(), mint.pubkey(), launch_fee_bps=fee, window=window
            )
        )
        assert chain.error(chain.send(ixs, chain.admin, mint)) == "BadTerms", (fee, window)


def test_the_config_is_set_once_by_its_admin_and_only_within_bounds() -> None:
    chain = CurveChain()
    intruder = chain.wallet()
    terms = Terms(intruder.pubkey(), platform_fee_bps=500)
    assert chain.error(chain.send([chain.init_config_ix(intruder.pubkey(), terms)], intruder)) == "AlreadyInitialized"
    set_by_intruder = chain.set_config_ix(intruder.pubkey(), intruder.pubkey(), terms)
    assert chain.error(chain.send([set_by_intruder], intruder)) == "WrongAccount"
    too_high = Terms(chain.fee_recipient, platform_fee_bps=501)
    assert (
        chain.error(
            chain.send([chain.set_config_ix(chain.admin.pubkey(), chain.admin.pubkey(), too_high)], chain.admin)
        )
        == "BadTerms"
    )
    # the admin changes the terms: new curves get them, existing ones keep theirs
    launched = chain.launch(SUPPLY)
    new_terms = Terms(chain.fee_recipient, platform_fee_bps=50, creator_fee_bps=50)
    chain.ok(chain.send([chain.set_config_ix(chain.admin.pubkey(), chain.admin.pubkey(), new_terms)], chain.admin))
    chain.terms = new_terms
    assert chain.curve(launched).platform_fee_bps == 95
    assert chain.curve(chain.launch(SUPPLY)).platform_fee_bps == 50

    fresh = CurveChain(init=False)
    wrong_address = Pubkey.new_unique()
    ix = fresh.init_config_ix(fresh.admin.pubkey(), fresh.terms, config=wrong_address)
    assert fresh.error(fresh.send([ix], fresh.admin)) == "WrongAccount"
    bad = Terms(fresh.fee_recipient, creator_fee_bps=501)
    assert fresh.error(fresh.send([fresh.init_config_ix(fresh.admin.pubkey(), bad)], fresh.admin)) == "BadTerms"


def test_malformed_instructions_are_refused_not_misread(chain) -> None:
    launched = chain.launch(SUPPLY)
    trader = chain.wallet()
    metas = [*chain.trade_accounts(launched, trader.pubkey()), AccountMeta(SYSTEM_PROGRAM_ID, False, False)]
    for data in [b"", b"\x09", b"\x03" + struct.pack("<QQ", 10**9, 0), b"\x03" + bytes(30)]:
        result = chain.send([Instruction(PROGRAM_ID, data, metas)], trader)
        assert chain.error(result) == "BadInput", data
    assert chain.error(chain.send([Instruction(PROGRAM_ID, b"\x03" + bytes(24), metas[:3])], trader)) == "BadInput"
    assert TOKEN_2022_PROGRAM_ID != PROGRAM_ID


# ---------------------------------------------------------------------------- graduation and the pool


def sold_out(chain: CurveChain) -> tuple[Launched, Keypair]:
    launched = chain.launch(SUPPLY)
    whale = chain.wallet(10**13)
    chain.ok(chain.buy(launched, whale, 500 * 10**9))
    return launched, whale


def test_graduation_moves_the_reserve_to_a_pool_once_and_burns_the_lp(chain) -> None:
    launched = chain.launch(SUPPLY)
    trader = chain.wallet(10**13)
    chain.ok(chain.buy(launched, trader, 10**9))
    assert chain.error(chain.send(chain.graduate_ixs(launched, chain.admin.pubkey()), chain.admin)) == "NotComplete"
    chain.ok(chain.buy(launched, trader, 500 * 10**9))
    curve = chain.curve(launched)
    recipient_before = chain.lamports(chain.terms.fee_recipient)
    creator_fees = curve.creator_fees
    anyone = chain.wallet()
    result = chain.ok(chain.send(chain.graduate_ixs(launched, anyone.pubkey()), anyone))
    pool = chain.pool(launched)
    native, tokens, migration = dc.graduation(curve.reserves())
    assert (pool.native_reserve, pool.token_reserve) == (native, tokens)
    assert chain.token_balance(pool.vault) == tokens and chain.token_balance(launched.vault) == 0
    rent = chain.svm.minimum_balance_for_rent_exemption
    assert chain.lamports(pool_address(launched.mint)) == rent(136) + native
    assert chain.lamports(chain.terms.fee_recipient) - recipient_before == migration
    # the LP tokens were minted and burnt: nobody can ever take the liquidity out
    assert pool.lp_burnt > 0 and chain.mint_supply(pool.lp_mint) == 0
    # the curve keeps rent and the creator's unclaimed fees, which stay claimable
    assert chain.lamports(launched.curve) == rent(208) + creator_fees
    assert chain.curve(launched).state == 2
    assert any("Program data: VEZnMQ" in line for line in result.logs())  # "TFg1"
    assert result.compute_units_consumed() <= 100_000
    chain.ok(chain.send([chain.claim_ix(launched, launched.creator.pubkey())], launched.creator))
    again = chain.send(chain.graduate_ixs(launched, anyone.pubkey()), anyone)
    assert chain.error(again) == "AlreadyGraduated"
    assert chain.error(chain.buy(launched, trader, 10**9)) == "CurveComplete"


def test_graduation_into_accounts_that_are_not_the_pools_is_refused(chain) -> None:
    launched, _ = sold_out(chain)
    other, _ = sold_out(chain)
    stranger = chain.wallet().pubkey()
    cases = {
        "another pool address": {"pool": pool_address(other.mint)},
        "another lp mint": {"lp_mint": Keypair().pubkey()},
        "another lp account": {"lp_account": Keypair().pubkey()},
        "a pool vault the pool does not own": {"pool_vault": associated_token_address(stranger, launched.mint)},
        "another fee recipient": {"fee_recipient": stranger},
        "another curve's vault": {"curve_vault": other.vault},
    }
    for what, replace in cases.items():
        ixs = chain.graduate_ixs(launched, chain.admin.pubkey(), **replace)
        if "pool_vault" in replace:
            ixs.insert(0, create_ata(chain, stranger, launched.mint))
        assert chain.error(chain.send(ixs, chain.admin)) == "WrongAccount", what
    assert chain.curve(launched).state == 1


def create_ata(chain: CurveChain, owner: Pubkey, mint: Pubkey) -> Instruction:
    from tokenforge.chains.solana.instructions import create_associated_token_account_idempotent

    return create_associated_token_account_idempotent(chain.admin.pubkey(), owner, mint)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(st.tuples(st.booleans(), st.integers(1, 10_000)), min_size=1, max_size=10))
def test_pool_swaps_follow_the_constant_product_and_k_never_decreases(steps) -> None:
    from tests.support.solana_curve import swap_out

    chain = CurveChain()
    launched, whale = sold_out(chain)
    chain.ok(chain.send(chain.graduate_ixs(launched, chain.admin.pubkey()), chain.admin))
    k = chain.pool(launched).native_reserve * chain.pool(launched).token_reserve
    for is_buy, bps in steps:
        pool = chain.pool(launched)
        held = chain.balance_of(launched, whale.pubkey())
        amount = (10**10 * bps // 10_000 + 1) if is_buy else held * bps // 10_000
        if amount == 0:
            continue
        expected = (
            swap_out(amount, pool.native_reserve, pool.token_reserve)
            if is_buy
            else swap_out(amount, pool.token_reserve, pool.native_reserve)
        )
        if expected == 0:
            assert chain.error(chain.send([chain.swap_ix(launched, whale.pubkey(), is_buy, amount)], whale)) == (
                "ZeroAmount"
            )
            continue
        lamports = chain.lamports(whale.pubkey())
        assert (
            chain.error(
                chain.send([chain.swap_ix(launched, whale.pubkey(), is_buy, amount, min_out=expected + 1)], whale)
            )
            == "Slippage"
        )
        result = chain.ok(
            chain.send([chain.swap_ix(launched, whale.pubkey(), is_buy, amount, min_out=expected)], whale)
        )
        assert result.compute_units_consumed() <= CU_TARGET
        after = chain.pool(launched)
        if is_buy:
            assert chain.balance_of(launched, whale.pubkey()) == held + expected
            assert (after.native_reserve, after.token_reserve) == (
                pool.native_reserve + amount,
                pool.token_reserve - expected,
            )
        else:
            assert chain.lamports(whale.pubkey()) - lamports == expected - 10_000  # two transactions' fees
            assert (after.native_reserve, after.token_reserve) == (
                pool.native_reserve - expected,
                pool.token_reserve + amount,
            )
        assert after.native_reserve * after.token_reserve >= k
        k = after.native_reserve * after.token_reserve
        assert (
            chain.lamports(pool_address(launched.mint))
            == chain.svm.minimum_balance_for_rent_exemption(136) + after.native_reserve
        )
        assert chain.token_balance(after.vault) == after.token_reserve


def test_a_pool_swap_on_a_token_that_has_not_graduated_is_refused(chain) -> None:
    launched = chain.launch(SUPPLY)
    trader = chain.wallet()
    chain.ensure_token_account(launched, trader.pubkey())
    assert chain.error(chain.send([chain.swap_ix(launched, trader.pubkey(), True, 10**9)], trader)) == "WrongAccount"
