"""Launches on the embedded Solana chain, verified by decoding raw accounts independently.

The decoders below follow the published SPL Token / Token-2022 account layouts and TLV
extension format; they share no code with ``tokenforge.chains.solana``.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid

import pytest
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.transaction import Transaction

from tests.support.solana_decode import (
    TOKEN_2022,
    DecodedMint,
    assert_launched_mint,
    ata_of,
    curve_of,
    decode_mint,
    decode_token_account,
)
from tokenforge.chains.ports import LaunchReceipt, LaunchRequest
from tokenforge.chains.solana import market
from tokenforge.chains.solana.deployer import SolanaDeployer
from tokenforge.chains.solana.market import read_curve
from tokenforge.chains.solana.open import open_embedded_solana_deployer
from tokenforge.domain import curve as dc
from tokenforge.domain.chains import SOLANA_MAX_SUPPLY_BASE_UNITS
from tokenforge.errors import PermanentError, TransientError


# ----------------------------------------------------------------------- helpers
def _req(i: int = 0, **overrides) -> LaunchRequest:
    values = dict(
        job_id=uuid.uuid4().hex,
        chain="solana",
        name=f"Token {i}",
        symbol=f"TK{i}",
        decimals=6,
        supply_base_units=(1_000_000_000 + i) * 10**6,
        creator=str(Keypair().pubkey()),
        metadata_uri=f"https://cdn.example.com/tokens/{i}.json",
    )
    values.update(overrides)
    return LaunchRequest(**values)


async def _launch(d: SolanaDeployer, req: LaunchRequest) -> LaunchReceipt:
    signed = await d.sign(req)
    await d.broadcast(signed)
    receipt = await d.confirm(signed)
    assert receipt is not None
    return receipt


def verify_launch(d: SolanaDeployer, req: LaunchRequest, receipt: LaunchReceipt) -> DecodedMint:
    chain = d.embedded
    mint = Pubkey.from_string(receipt.token_address)
    account = chain.get_account(mint)
    assert account is not None and account.owner == TOKEN_2022
    assert account.lamports >= chain.minimum_balance_for_rent_exemption(len(account.data))
    m = decode_mint(account.data)
    assert_launched_mint(m, req, mint, d.payer)
    # the whole supply sits in the token's curve, which names the creator
    creator, curve = Pubkey.from_string(req.creator), curve_of(mint)
    vault = chain.get_account(ata_of(curve, mint))
    assert vault is not None and vault.owner == TOKEN_2022
    assert decode_token_account(vault.data) == (mint, curve, req.supply_base_units, 1)
    state = read_curve(chain.get_account(curve).data)
    assert state is not None and (state.creator, state.supply, state.state) == (creator, req.supply_base_units, 0)
    return m


@pytest.fixture
async def deployer():
    d = await open_embedded_solana_deployer("solana", None, os.urandom(32), os.urandom(32))
    yield d
    await d.close()


# ----------------------------------------------------------------------- tests
async def test_concurrent_launches_decode_independently(deployer):
    reqs = [_req(i) for i in range(24)]
    reqs += [
        _req(
            name="\U0001f680" * 32,
            symbol="ABCDEFGHIJ",
            metadata_uri="https://" + "u" * 192,
            decimals=9,
            supply_base_units=SOLANA_MAX_SUPPLY_BASE_UNITS,
        ),
        _req(name="Zero Decimals", symbol="ZERO", decimals=0, supply_base_units=2, metadata_uri=""),
        _req(name="Same Creator", symbol="SAME", creator=reqs[0].creator),
    ]
    receipts = await asyncio.gather(*(_launch(deployer, r) for r in reqs))
    assert len({r.token_address for r in receipts}) == len(reqs)
    for req, receipt in zip(reqs, receipts, strict=True):
        assert receipt.token_address == str(deployer.mint_address(req.job_id))
        assert receipt.fee_paid_base_units == 10_000 and receipt.gas_used is None
        verify_launch(deployer, req, receipt)


async def test_second_attempt_cannot_create_a_second_mint(deployer):
    req = _req()
    first = await _launch(deployer, req)
    existing = await deployer.find_existing(req)
    assert existing is not None
    assert (existing.token_address, existing.tx_id, existing.block_number) == (
        first.token_address,
        first.tx_id,
        first.block_number,
    )
    # A retry that skipped find_existing: same blockhash window -> same tx, or a new one.
    again = await deployer.sign(req)
    await deployer.broadcast(again)
    assert (await deployer.confirm(again)).token_address == first.token_address
    # A resend with a fresh blockhash executes, fails on the existing mint account, and
    # confirm reports the launch that exists.
    deployer.embedded.expire_blockhash()
    retry = await deployer.sign(req)
    assert retry.tx_id != first.tx_id and retry.token_address == first.token_address
    await deployer.broadcast(retry)
    receipt = await deployer.confirm(retry)
    assert receipt.tx_id == first.tx_id and receipt.extra.get("found_existing")
    verify_launch(deployer, req, first)  # supply not doubled, ATA balance unchanged
    landed = [s for s in deployer.embedded.signatures_for_address(deployer.mint_address(req.job_id)) if s.err is None]
    assert [str(s.signature) for s in landed] == [first.tx_id]


async def test_expired_blockhash_resign_lands_once(deployer):
    req = _req()
    stale = await deployer.sign(req)
    deployer.embedded.expire_blockhash()
    await deployer.broadcast(stale)
    with pytest.raises(TransientError) as info:
        await deployer.confirm(stale)
    assert info.value.code == "tx_dropped" and info.value.is_transient()
    # the worker's recovery path: find_existing, then sign again
    assert await deployer.find_existing(req) is None
    fresh = await deployer.sign(req)
    assert fresh.token_address == stale.token_address and fresh.tx_id != stale.tx_id
    await deployer.broadcast(fresh)
    await deployer.broadcast(fresh)
    receipt = await deployer.confirm(fresh)
    assert receipt.tx_id == fresh.tx_id
    verify_launch(deployer, req, receipt)
    # re-broadcasting the stale transaction still cannot land
    await deployer.broadcast(stale)
    with pytest.raises(TransientError):
        await deployer.confirm(stale)
    statuses = deployer.embedded.signatures_for_address(deployer.mint_address(req.job_id))
    assert [str(s.signature) for s in statuses] == [fresh.tx_id]


async def test_state_survives_restart(tmp_path):
    payer_seed, mint_secret = os.urandom(32), os.urandom(32)
    d = await open_embedded_solana_deployer("solana", tmp_path, payer_seed, mint_secret)
    req = _req(1)
    signed = await d.sign(req)
    await d.broadcast(signed)
    first = await d.confirm(signed)
    pending = await d.sign(_req(2))  # signed, persisted by the worker, never broadcast
    slot_before = d.embedded.slot()
    balance_before = d.embedded.get_balance(d.payer)
    await d.close()

    d2 = await open_embedded_solana_deployer("solana", tmp_path, payer_seed, mint_secret)
    try:
        assert d2.embedded.slot() > slot_before
        assert d2.embedded.get_balance(d2.payer) == balance_before  # no second airdrop needed
        verify_launch(d2, req, first)
        existing = await d2.find_existing(req)
        assert (existing.tx_id, existing.block_number) == (first.tx_id, first.block_number)
        assert await d2.confirm(signed) == first
        await d2.broadcast(signed)  # already processed before the restart: fine
        # the transaction signed before the restart can still be sent (blockhash window holds)
        await d2.broadcast(pending)
        assert (await d2.confirm(pending)).tx_id == pending.tx_id
        new_req = _req(3)
        verify_launch(d2, new_req, await _launch(d2, new_req))
    finally:
        await d2.close()


@pytest.mark.slow
@pytest.mark.parametrize("persistent", [False, True], ids=["memory", "sqlite"])
async def test_throughput(tmp_path, persistent):
    d = await open_embedded_solana_deployer("solana", tmp_path if persistent else None, os.urandom(32), os.urandom(32))
    try:
        n = 500
        reqs = [_req(i) for i in range(n)]
        balance0 = d.embedded.get_balance(d.payer)
        start = time.perf_counter()
        receipts = await asyncio.gather(*(_launch(d, r) for r in reqs))
        elapsed = time.perf_counter() - start
        rate = n / elapsed
        spent = balance0 - d.embedded.get_balance(d.payer)
        fees = sum(r.fee_paid_base_units for r in receipts)
        print(
            f"\n[{'sqlite' if persistent else 'memory'}] {n} launches in {elapsed:.2f}s = {rate:.0f}/s; "
            f"fee {fees // n} lamports/launch; payer spent {spent // n} lamports/launch (fee + rent)"
        )
        assert rate >= 100
        for req, receipt in list(zip(reqs, receipts, strict=True))[::50]:
            verify_launch(d, req, receipt)
    finally:
        await d.close()


async def test_chains_health_shows_the_payer_with_its_balance_and_alert(settings):
    from tests.support.stack import running_stack
    from tokenforge.chains.health import REPORT_FIELDS
    from tokenforge.keys.local import LocalKeyStore

    settings.chains = {"solana": {"network": "embedded", "min_balance_base_units": 10**15}}
    async with running_stack(settings) as (_container, client):
        (item,) = (await client.get("/v1/chains")).json()["items"]
    payer = str(Keypair.from_seed(LocalKeyStore(settings.data_dir).solana_payer_key("solana")).pubkey())
    # topped up to 100,000 SOL at open, below the 1,000,000 SOL minimum configured here
    assert [{k: v for k, v in key.items() if k not in REPORT_FIELDS} for key in item["keys"]] == [
        {
            "address": payer,
            "role": "payer",
            "balance_base_units": str(100_000 * 10**9),
            "enabled": True,
            "alert": "balance below minimum; fund this key",
        }
    ]
    assert item["alerts"] == [f"{payer}: balance below minimum; fund this key"]


async def test_a_launch_the_payer_cannot_pay_raises_its_alert(deployer):
    poor = SolanaDeployer("solana", deployer.transport, Keypair(), os.urandom(32))
    deployer.embedded.airdrop(poor.payer, 10**6)  # the fees, not the mint's rent
    assert (await poor.payer_balance()) == 10**6 and poor.health()["keys"][0]["alert"] is None
    signed = await poor.sign(_req())
    await poor.broadcast(signed)
    with pytest.raises(PermanentError) as info:
        await poor.confirm(signed)
    assert info.value.code == "insufficient_funds"
    (key,) = poor.health()["keys"]
    assert key["address"] == str(poor.payer) and key["alert"] == "balance below minimum; fund this key"
    deployer.embedded.airdrop(poor.payer, 10**10)
    await poor.payer_balance()
    assert poor.health()["keys"][0]["alert"] is None  # funded since


async def test_a_launched_token_trades_on_its_curve_at_once(deployer):
    """The launch created the curve: a wallet buys and sells through the curve program with
    the instructions TokenForge builds (``chains/solana/market.py``), fees go where the
    platform's config says."""
    chain = deployer.embedded
    req = _req(7, supply_base_units=10**18, decimals=9)
    receipt = await _launch(deployer, req)
    mint = Pubkey.from_string(receipt.token_address)
    admin, terms = market.read_config(chain.get_account(market.config_address()).data)
    assert admin == deployer.payer and terms.fee_recipient == deployer.payer
    trader = Keypair()
    chain.airdrop(trader.pubkey(), 20 * 10**9)

    def send(instructions) -> None:
        blockhash, _ = chain.latest_blockhash()
        tx = Transaction([trader], Message.new_with_blockhash(instructions, trader.pubkey(), blockhash), blockhash)
        chain.send_raw_transaction(bytes(tx))
        status = chain.get_transaction_status(tx.signatures[0])
        assert status is not None and status.err is None, status

    params = dc.CurveParams(
        supply=10**18, virtual_native0=terms.virtual_native0, platform_fee_bps=95, creator_fee_bps=30
    )
    expected = dc.buy(dc.CurveReserves(params), 10**9, 0)
    send(market.buy(mint, trader.pubkey(), terms.fee_recipient, 10**9, min_tokens_out=expected.token_amount))
    held = decode_token_account(chain.get_account(ata_of(trader.pubkey(), mint)).data)[2]
    assert held == expected.token_amount
    send([market.sell(mint, trader.pubkey(), terms.fee_recipient, held // 2)])
    state = market.read_curve(chain.get_account(curve_of(mint)).data)
    assert state is not None and state.tokens_sold == held - held // 2
