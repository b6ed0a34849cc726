"""Launches on the embedded Solana chain, verified by decoding raw accounts independently.

The decoders below follow the published SPL Token / Token-2022 account layouts and TLV
extension format; they share no code with ``tokenforge.chains.solana``.
"""

from __future__ import annotations

import asyncio
import os
import struct
import time
import uuid
from dataclasses import dataclass

import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from tokenforge.chains.ports import LaunchReceipt, LaunchRequest
from tokenforge.chains.solana.deployer import SolanaDeployer, open_embedded_solana_deployer
from tokenforge.errors import TransientError

TOKEN_2022 = Pubkey.from_string("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb")
ATA_PROGRAM = Pubkey.from_string("ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL")
EXT_IMMUTABLE_OWNER, EXT_METADATA_POINTER, EXT_TOKEN_METADATA = 7, 18, 19
ACCOUNT_TYPE_MINT, ACCOUNT_TYPE_ACCOUNT = 1, 2


# ----------------------------------------------------------------------- independent decoding
def _coption_pubkey(data: bytes, offset: int) -> Pubkey | None:
    (tag,) = struct.unpack_from("<I", data, offset)
    assert tag in (0, 1)
    return Pubkey.from_bytes(data[offset + 4 : offset + 36]) if tag == 1 else None


def _tlv(data: bytes, expected_account_type: int) -> dict[int, bytes]:
    assert data[165] == expected_account_type
    entries, pos = {}, 166
    while pos + 4 <= len(data):
        ext_type, length = struct.unpack_from("<HH", data, pos)
        if ext_type == 0:  # uninitialized (padding)
            break
        entries[ext_type] = data[pos + 4 : pos + 4 + length]
        pos += 4 + length
    assert pos == len(data), "TLV entries must fill the account exactly"
    return entries


def _string(data: bytes, pos: int) -> tuple[str, int]:
    (n,) = struct.unpack_from("<I", data, pos)
    return data[pos + 4 : pos + 4 + n].decode("utf-8"), pos + 4 + n


@dataclass
class DecodedMint:
    mint_authority: Pubkey | None
    supply: int
    decimals: int
    is_initialized: bool
    freeze_authority: Pubkey | None
    pointer_authority: Pubkey | None
    pointer_address: Pubkey | None
    update_authority: Pubkey | None
    metadata_mint: Pubkey
    name: str
    symbol: str
    uri: str
    additional: int


def decode_mint(data: bytes) -> DecodedMint:
    mint_authority = _coption_pubkey(data, 0)
    supply, decimals, initialized = struct.unpack_from("<QBB", data, 36)
    freeze_authority = _coption_pubkey(data, 46)
    assert data[82:165] == bytes(83)
    ext = _tlv(data, ACCOUNT_TYPE_MINT)
    assert set(ext) == {EXT_METADATA_POINTER, EXT_TOKEN_METADATA}
    pointer = ext[EXT_METADATA_POINTER]
    assert len(pointer) == 64

    def nonzero(raw: bytes) -> Pubkey | None:
        return None if raw == bytes(32) else Pubkey.from_bytes(raw)

    md = ext[EXT_TOKEN_METADATA]
    name, pos = _string(md, 64)
    symbol, pos = _string(md, pos)
    uri, pos = _string(md, pos)
    (additional,) = struct.unpack_from("<I", md, pos)
    assert pos + 4 == len(md)
    return DecodedMint(
        mint_authority, supply, decimals, bool(initialized), freeze_authority,
        nonzero(pointer[:32]), nonzero(pointer[32:]), nonzero(md[:32]), Pubkey.from_bytes(md[32:64]),
        name, symbol, uri, additional,
    )


def decode_token_account(data: bytes) -> tuple[Pubkey, Pubkey, int, int]:
    mint, owner = Pubkey.from_bytes(data[:32]), Pubkey.from_bytes(data[32:64])
    (amount,) = struct.unpack_from("<Q", data, 64)
    state = data[108]
    ext = _tlv(data, ACCOUNT_TYPE_ACCOUNT)
    assert EXT_IMMUTABLE_OWNER in ext
    return mint, owner, amount, state


def ata_of(owner: Pubkey, mint: Pubkey) -> Pubkey:
    return Pubkey.find_program_address([bytes(owner), bytes(TOKEN_2022), bytes(mint)], ATA_PROGRAM)[0]


# ----------------------------------------------------------------------- helpers
def _req(i: int = 0, **overrides) -> LaunchRequest:
    values = dict(
        job_id=uuid.uuid4().hex, chain="solana", name=f"Token {i}", symbol=f"TK{i}", decimals=6,
        supply_base_units=(1_000_000_000 + i) * 10**6, creator=str(Keypair().pubkey()),
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
    assert m.is_initialized
    assert m.supply == req.supply_base_units
    assert m.decimals == req.decimals
    assert m.mint_authority is None, "mint authority must be revoked"
    assert m.freeze_authority is None
    assert m.pointer_address == mint and m.pointer_authority is None
    assert m.metadata_mint == mint and m.update_authority == d.payer
    assert (m.name, m.symbol, m.uri, m.additional) == (req.name, req.symbol, req.metadata_uri, 0)
    creator = Pubkey.from_string(req.creator)
    ata = chain.get_account(ata_of(creator, mint))
    assert ata is not None and ata.owner == TOKEN_2022
    assert decode_token_account(ata.data) == (mint, creator, req.supply_base_units, 1)
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
        _req(name="\U0001F680" * 32, symbol="ABCDEFGHIJ", metadata_uri="https://" + "u" * 192,
             decimals=9, supply_base_units=2**64 - 1),
        _req(name="Zero Decimals", symbol="ZERO", decimals=0, supply_base_units=1, metadata_uri=""),
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
        first.token_address, first.tx_id, first.block_number,
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
        print(f"\n[{'sqlite' if persistent else 'memory'}] {n} launches in {elapsed:.2f}s = {rate:.0f}/s; "
              f"fee {fees // n} lamports/launch; payer spent {spent // n} lamports/launch (fee + rent)")
        assert rate >= 100
        for req, receipt in list(zip(reqs, receipts, strict=True))[::50]:
            verify_launch(d, req, receipt)
    finally:
        await d.close()
