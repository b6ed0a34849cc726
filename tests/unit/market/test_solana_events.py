"""The Solana curve program's events decoded into market records: what the program logged
for a launch, trades and a graduation matches its accounts, and lines any other program
could write are not taken for events."""

from __future__ import annotations

import base64

from solders.keypair import Keypair
from solders.pubkey import Pubkey

from tests.support.solana_curve import CurveChain, pool_address
from tests.support.solana_curve import Launched as Handle
from tokenforge.chains.solana import market
from tokenforge.market.events import Graduated, Launched, Position, Traded
from tokenforge.market.solana_events import decode

PROGRAM = market.CURVE_PROGRAM_ID


def at(i: int) -> Position:
    return Position(7, "0xblock", 1_700_000_000, "sig", i)


def records(result) -> list:
    return decode(result.logs(), PROGRAM, at, market.curve_address)


def test_launch_trades_and_graduation_decode_to_what_the_accounts_hold() -> None:
    chain = CurveChain()
    creator = chain.wallet(10**9)
    mint, ixs = chain.mint_setup(10**18, 9)
    ixs.append(
        chain.create_curve_ix(chain.admin.pubkey(), creator.pubkey(), mint.pubkey(), launch_fee_bps=5000, window=60)
    )
    (launched,) = records(chain.ok(chain.send(ixs, chain.admin, mint)))
    curve = market.curve_address(mint.pubkey())
    assert isinstance(launched, Launched)
    assert (launched.token, launched.curve, launched.creator) == (str(mint.pubkey()), str(curve), str(creator.pubkey()))
    assert (launched.supply, launched.virtual_native0, launched.migration_fee) == (10**18, 30 * 10**9, 15 * 10**6)
    assert (launched.platform_fee_bps, launched.creator_fee_bps) == (95, 30)
    assert (launched.launch_fee_bps, launched.launch_window, launched.window_in_blocks) == (5000, 60, False)
    assert launched.at == at(0)

    token = Handle(mint.pubkey(), curve, market.curve_vault(mint.pubkey()), creator, 10**18, 9)
    trader = chain.wallet(10**13)
    (bought,) = records(chain.ok(chain.buy(token, trader, 2 * 10**9)))
    state = chain.curve(token)
    assert isinstance(bought, Traded) and bought.is_buy and bought.trader == str(trader.pubkey())
    assert bought.curve == str(curve) and bought.token_amount == state.tokens_sold
    assert bought.virtual_native == state.virtual_native0 + state.native_raised
    assert bought.virtual_token == 10**18 * 1073 // 1000 - state.tokens_sold
    (sold,) = records(chain.ok(chain.sell(token, trader, bought.token_amount // 4)))
    assert isinstance(sold, Traded) and not sold.is_buy and sold.token_amount == bought.token_amount // 4

    last = records(chain.ok(chain.buy(token, trader, 500 * 10**9)))  # sells out: a trade (+ TFd1, skipped)
    assert [type(r) for r in last] == [Traded]
    (graduated,) = records(chain.ok(chain.send(chain.graduate_ixs(token, chain.admin.pubkey()), chain.admin)))
    pool = chain.pool(token)
    assert isinstance(graduated, Graduated) and graduated.pool == str(pool_address(mint.pubkey()))
    assert (graduated.native_liquidity, graduated.token_liquidity, graduated.liquidity_burnt) == (
        pool.native_reserve,
        pool.token_reserve,
        pool.lp_burnt,
    )
    assert graduated.migration_fee == 15 * 10**6


def data_line(*fields: bytes) -> str:
    return "Program data: " + " ".join(base64.b64encode(f).decode() for f in fields)


def test_only_records_the_curve_program_itself_wrote_count() -> None:
    mint, trader, other = Keypair().pubkey(), Keypair().pubkey(), str(Pubkey.new_unique())
    trade = data_line(b"TFt1", bytes(mint), bytes(trader), bytes([1]) + (5).to_bytes(8, "little") * 5)
    ours = str(PROGRAM)
    logs = [
        f"Program {other} invoke [1]",
        trade,  # another program's lookalike
        "Program log: Program " + ours + " invoke [2]",  # a message cannot open our context
        trade,
        f"Program {ours} invoke [2]",
        trade,  # ours, called by the other program: counts
        "Program data: not base64 !",
        data_line(b"TFt1", b"short"),  # the wrong layout
        data_line(b"TFx9", b"?"),  # a layout this version does not know
        f"Program {ours} success",
        trade,  # the other program again
        f"Program {other} success",
    ]
    decoded = decode(logs, PROGRAM, at, market.curve_address)
    assert len(decoded) == 1 and isinstance(decoded[0], Traded) and decoded[0].native_amount == 5
