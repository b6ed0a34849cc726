"""Priority fees: ComputeBudget instructions in the launch, their fee, and failure mapping."""

from __future__ import annotations

import math
import os
import struct
import uuid

import pytest
from solders.compute_budget import ID as COMPUTE_BUDGET
from solders.hash import Hash
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import Transaction
from tests.support.solana_decode import (
    TOKEN_2022,
    ata_of,
    curve_of,
    decode_mint,
    decode_token_account,
)

from tokenforge.chains.ports import LaunchRequest
from tokenforge.chains.solana import instructions as ix
from tokenforge.chains.solana.deployer import SolanaDeployer, _failure
from tokenforge.chains.solana.market import CURVE_PROGRAM_ID
from tokenforge.chains.solana.open import open_embedded_solana_deployer
from tokenforge.chains.solana.transport import TxStatus
from tokenforge.errors import PermanentError

SOL = 1_000_000_000
BASE_FEE_PER_SIGNATURE = 5_000


def _params(**overrides) -> ix.LaunchParams:
    values = {
        "name": "Fee Token",
        "symbol": "FEE",
        "uri": "https://example.com/f.json",
        "decimals": 6,
        "supply_base_units": 10**12,
        "creator": str(Keypair().pubkey()),
    }
    values.update(overrides)
    return ix.LaunchParams.create(**values)


def _max_params() -> ix.LaunchParams:
    return _params(
        name="\U0001f600" * 32,
        symbol="ABCDEFGHIJ",
        uri="https://" + "u" * 192,
        decimals=255,
        supply_base_units=2**64 - 1,
    )


def _req(**overrides) -> LaunchRequest:
    values = {
        "job_id": uuid.uuid4().hex,
        "chain": "solana",
        "name": "Fee Token",
        "symbol": "FEE",
        "decimals": 6,
        "supply_base_units": 10**12,
        "creator": str(Keypair().pubkey()),
        "metadata_uri": "https://example.com/f.json",
    }
    values.update(overrides)
    return LaunchRequest(**values)


def budget_of(tx: Transaction) -> tuple[int | None, int]:
    """(SetComputeUnitLimit, SetComputeUnitPrice) decoded from the transaction; (None, 0) if absent."""
    keys = tx.message.account_keys
    limit, price = None, 0
    for instruction in tx.message.instructions:
        if keys[instruction.program_id_index] != COMPUTE_BUDGET:
            continue
        data = bytes(instruction.data)
        if data[0] == 2:
            (limit,) = struct.unpack_from("<I", data, 1)
        elif data[0] == 3:
            (price,) = struct.unpack_from("<Q", data, 1)
    return limit, price


def expected_fee(tx: Transaction) -> int:
    limit, price = budget_of(tx)
    signatures = tx.message.header.num_required_signatures
    return BASE_FEE_PER_SIGNATURE * signatures + (math.ceil(price * limit / 1_000_000) if price else 0)


# ----------------------------------------------------------------------- instructions
def test_no_price_no_budget_instructions():
    payer, mint = Keypair(), Keypair()
    tx = ix.build_launch_transaction(payer, mint, _params(), Hash.new_unique(), 5_000_000)
    assert len(tx.message.instructions) == 7
    assert budget_of(tx) == (None, 0)


def test_price_prepends_limit_and_price():
    payer, mint = Keypair(), Keypair()
    params = _params()
    tx = ix.build_launch_transaction(
        payer, mint, params, Hash.new_unique(), 5_000_000, compute_unit_price_micro_lamports=25_000
    )
    keys = tx.message.account_keys
    programs = [keys[i.program_id_index] for i in tx.message.instructions]
    assert programs[:2] == [COMPUTE_BUDGET, COMPUTE_BUDGET] and programs[2] == ix.SYSTEM_PROGRAM_ID
    assert len(programs) == 9
    assert budget_of(tx) == (ix.launch_compute_unit_limit(params, mint.pubkey()), 25_000)
    assert tx.message.header.num_required_signatures == 2
    tx.verify()


def test_explicit_limit_and_limit_without_price():
    payer, mint = Keypair(), Keypair()
    tx = ix.build_launch_transaction(
        payer,
        mint,
        _params(),
        Hash.new_unique(),
        5_000_000,
        compute_unit_limit=90_000,
        compute_unit_price_micro_lamports=7,
    )
    assert budget_of(tx) == (90_000, 7)
    tx = ix.build_launch_transaction(payer, mint, _params(), Hash.new_unique(), 5_000_000, compute_unit_limit=90_000)
    assert budget_of(tx) == (90_000, 0) and len(tx.message.instructions) == 8


@pytest.mark.parametrize(
    ("limit", "price", "refused"),
    [
        (0, 1, "compute_unit_limit"),
        (1_400_001, 1, "compute_unit_limit"),
        (True, 1, "compute_unit_limit"),
        (None, -1, "compute_unit_price_micro_lamports"),
        (None, 2**64, "compute_unit_price_micro_lamports"),
        (None, 1.5, "compute_unit_price_micro_lamports"),
    ],
)
def test_out_of_range_budget(limit, price, refused):
    with pytest.raises(ValueError, match=f"^{refused} must be an integer from"):
        ix.compute_budget_instructions(limit, price, default_limit=1)


def test_max_inputs_with_priority_fee_fit_in_one_packet():
    payer, mint = Keypair(), Keypair()
    tx = ix.build_launch_transaction(
        payer,
        mint,
        _max_params(),
        Hash.new_unique(),
        2**63,
        compute_unit_limit=ix.MAX_COMPUTE_UNIT_LIMIT,
        compute_unit_price_micro_lamports=2**64 - 1,
    )
    assert len(bytes(tx)) <= ix.MAX_TX_BYTES


def test_instruction_program():
    payer, mint = Keypair(), Keypair()
    raw = bytes(
        ix.build_launch_transaction(payer, mint, _params(), Hash.new_unique(), 1, compute_unit_price_micro_lamports=1)
    )
    assert [ix.instruction_program(raw, i) for i in (0, 2, 6, 8)] == [
        COMPUTE_BUDGET,
        ix.SYSTEM_PROGRAM_ID,
        ix.ASSOCIATED_TOKEN_PROGRAM_ID,
        ix.TOKEN_2022_PROGRAM_ID,
    ]
    assert ix.instruction_program(raw, 9) is None
    assert ix.instruction_program(raw, -1) is None
    assert ix.instruction_program(b"junk", 0) is None


def test_default_limit_covers_measured_units():
    """The launch's compute units, measured on LiteSVM, stay within the per-launch default limit.

    Consumed = 26,038 .. 27,996 + 1,500 per ATA bump attempt (deterministic per launch).
    """
    svm = LiteSVM()
    payer = Keypair()
    svm.airdrop(payer.pubkey(), 1_000 * SOL)
    headroom = []
    for i in range(60):
        params = _max_params() if i % 2 else _params(name="A", symbol="A", uri="", decimals=0, supply_base_units=1)
        mint = Keypair()
        lamports = svm.minimum_balance_for_rent_exemption(
            ix.mint_account_final_len(params.name, params.symbol, params.uri)
        )
        tx = ix.build_launch_transaction(
            payer, mint, params, svm.latest_blockhash(), lamports, compute_unit_price_micro_lamports=1
        )
        limit, _ = budget_of(tx)
        result = svm.send_transaction(tx)
        consumed = result.compute_units_consumed()
        _, bump = Pubkey.find_program_address(
            [bytes(params.creator), bytes(TOKEN_2022), bytes(mint.pubkey())], ix.ASSOCIATED_TOKEN_PROGRAM_ID
        )
        assert 26_000 <= consumed - 1_500 * (255 - bump) <= 28_000
        assert consumed <= limit
        headroom.append(limit - consumed)
        svm.expire_blockhash()
    assert max(headroom) <= 7_000  # the price is paid on the limit: keep it close


# ----------------------------------------------------------------------- on the embedded chain
@pytest.mark.parametrize(("price", "limit"), [(50_000, None), (1_234_567, 60_000), (1, 1_400_000)])
async def test_launch_with_priority_fee_lands_and_pays_it(price, limit):
    d = await open_embedded_solana_deployer(
        "solana",
        None,
        os.urandom(32),
        os.urandom(32),
        compute_unit_price_micro_lamports=price,
        compute_unit_limit=limit,
    )
    try:
        req = _req()
        signed = await d.sign(req)
        tx = Transaction.from_bytes(signed.raw_tx)
        tx_limit, tx_price = budget_of(tx)
        assert tx_price == price and tx_limit == (
            limit
            or ix.launch_compute_unit_limit(
                ix.LaunchParams.create(
                    name=req.name,
                    symbol=req.symbol,
                    uri=req.metadata_uri,
                    decimals=req.decimals,
                    supply_base_units=req.supply_base_units,
                    creator=req.creator,
                ),
                d.mint_address(req.job_id),
                ix.CurveLaunch(CURVE_PROGRAM_ID),
            )
        )
        balance_before = d.embedded.get_balance(d.payer)
        await d.broadcast(signed)
        receipt = await d.confirm(signed)
        fee = 2 * BASE_FEE_PER_SIGNATURE + math.ceil(price * tx_limit / 1_000_000)
        assert receipt.fee_paid_base_units == expected_fee(tx) == fee > 2 * BASE_FEE_PER_SIGNATURE
        mint = d.mint_address(req.job_id)
        account = d.embedded.get_account(mint)
        rent = account.lamports
        curve = curve_of(mint)  # the launch's curve holds the supply; the payer paid its rent
        ata = d.embedded.get_account(ata_of(curve, mint))
        paid = fee + rent + ata.lamports + d.embedded.get_account(curve).lamports
        assert balance_before - d.embedded.get_balance(d.payer) == paid
        m = decode_mint(account.data)
        assert (m.supply, m.decimals, m.mint_authority, m.freeze_authority) == (req.supply_base_units, 6, None, None)
        assert (m.name, m.symbol, m.uri) == (req.name, req.symbol, req.metadata_uri)
        assert decode_token_account(ata.data) == (mint, curve, req.supply_base_units, 1)
        assert await d.find_existing(req) == receipt.__class__(
            receipt.token_address, receipt.tx_id, receipt.block_number, None, fee, {"found_existing": True}
        )
    finally:
        await d.close()


@pytest.mark.parametrize("price", [0, 10_000], ids=["no-fee", "priority-fee"])
async def test_payer_short_of_rent_is_insufficient_funds_either_way(price):
    d = await open_embedded_solana_deployer("solana", None, os.urandom(32), os.urandom(32))
    try:
        payer = Keypair()
        d.embedded.airdrop(payer.pubkey(), SOL // 1000)  # pays the fee, not the mint's rent
        poor = SolanaDeployer("solana", d.transport, payer, os.urandom(32), compute_unit_price_micro_lamports=price)
        signed = await poor.sign(_req())
        await poor.broadcast(signed)
        with pytest.raises(PermanentError) as info:
            await poor.confirm(signed)
        assert info.value.code == "insufficient_funds"
        status = await d.transport.get_transaction_status(Signature.from_string(signed.tx_id))
        assert status.instruction_index == (2 if price else 0)  # CreateAccount, after the budget ones
    finally:
        await d.close()


def test_failure_mapping_reads_the_program_not_the_position():
    payer, mint = Keypair(), Keypair()
    with_fee = bytes(
        ix.build_launch_transaction(payer, mint, _params(), Hash.new_unique(), 1, compute_unit_price_micro_lamports=5)
    )
    plain = bytes(ix.build_launch_transaction(payer, mint, _params(), Hash.new_unique(), 1))

    def code(raw: bytes, index: int, custom: int | None = 1) -> str:
        return _failure(TxStatus(Signature.new_unique(), 1, 5_000, "err", index, custom), raw, None).code

    assert [code(plain, i) for i in (0, 4)] == ["insufficient_funds"] * 2
    assert [code(with_fee, i) for i in (2, 6)] == ["insufficient_funds"] * 2
    # Custom(1) from Token-2022 (index 4 with the budget instructions) is not the payer's balance
    assert [code(with_fee, i) for i in (0, 4, 8)] == ["tx_failed"] * 3
    assert code(with_fee, 2, custom=0) == "tx_failed"  # AccountAlreadyInUse
    assert code(with_fee, 2, custom=None) == "tx_failed"


@pytest.mark.parametrize(
    "kwargs", [{"compute_unit_price_micro_lamports": -1}, {"compute_unit_limit": 0}, {"compute_unit_limit": 1_400_001}]
)
async def test_invalid_budget_options_are_permanent(kwargs):
    d = await open_embedded_solana_deployer("solana", None, os.urandom(32), os.urandom(32))
    try:
        with pytest.raises(PermanentError) as info:
            SolanaDeployer("solana", d.transport, Keypair(), os.urandom(32), **kwargs)
        assert info.value.code == "invalid_compute_budget"
    finally:
        await d.close()
