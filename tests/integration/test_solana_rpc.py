"""Launches over JSON-RPC against a ``tokenforge devnet`` subprocess.

The deployer talks to the node through solana-py's ``AsyncClient`` (RpcSolanaTransport); an
independent reader (a second ``AsyncClient`` and ``tests/support/solana_decode.py``, no
TokenForge code) checks what landed. Faults (a swallowed send, HTTP 503) come from
``tests/support/fault_proxy.py`` between the deployer and the node.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
import uuid
from dataclasses import replace

import pytest
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import Transaction

from tests.support.devnet import running_devnet
from tests.support.fault_proxy import FaultProxy
from tests.support.solana_decode import (
    TOKEN_2022,
    assert_launched_mint,
    ata_of,
    curve_of,
    decode_mint,
    decode_token_account,
)
from tokenforge.chains.ports import LaunchReceipt, LaunchRequest, SignedLaunch
from tokenforge.chains.rpc.pool import EndpointConfig, RpcPool
from tokenforge.chains.solana.deployer import SolanaDeployer
from tokenforge.chains.solana.market import CURVE_PROGRAM_ID, read_curve
from tokenforge.chains.solana.open import open_rpc_solana_deployer
from tokenforge.chains.solana.pooled_provider import pooled_async_client
from tokenforge.errors import PermanentError, TransientError

pytestmark = pytest.mark.integration

SOL = 1_000_000_000
PAYER_FUNDS_LAMPORTS = 50 * SOL
CONFIRM_POLL_S = 0.05
CONFIRM_TIMEOUT_S = 60.0


# ----------------------------------------------------------------------- helpers
def _req(i: int = 0, **overrides) -> LaunchRequest:
    values = {
        "job_id": uuid.uuid4().hex,
        "chain": "solana",
        "name": f"Rpc Token {i}",
        "symbol": f"RPC{i}",
        "decimals": 6,
        "supply_base_units": (1_000_000 + i) * 10**6,
        "creator": str(Keypair().pubkey()),
        "metadata_uri": f"https://cdn.example.com/rpc/{i}.json",
    }
    values.update(overrides)
    return LaunchRequest(**values)


async def _open(url: str, **options) -> SolanaDeployer:
    return await open_rpc_solana_deployer(
        "solana",
        AsyncClient(url, timeout=10),
        os.urandom(32),
        os.urandom(32),
        airdrop_below_lamports=PAYER_FUNDS_LAMPORTS,
        curve_program=CURVE_PROGRAM_ID,  # the devnet loads TokenForge's curve program there
        **options,
    )


async def _confirmed(d: SolanaDeployer, signed: SignedLaunch) -> LaunchReceipt:
    """Polls confirm like the worker does, until the receipt (or an error)."""
    deadline = time.monotonic() + CONFIRM_TIMEOUT_S
    while (receipt := await d.confirm(signed)) is None:
        assert time.monotonic() < deadline, f"{signed.tx_id} not confirmed in {CONFIRM_TIMEOUT_S} s"
        await asyncio.sleep(CONFIRM_POLL_S)
    return receipt


async def _launch(d: SolanaDeployer, req: LaunchRequest) -> tuple[SignedLaunch, LaunchReceipt]:
    assert await d.find_existing(req) is None
    signed = await d.sign(req)
    await d.broadcast(signed)
    return signed, await _confirmed(d, signed)


async def _verify_launch(reader: AsyncClient, d: SolanaDeployer, req: LaunchRequest, receipt: LaunchReceipt) -> None:
    """Decodes the mint and the creator's token account from raw account bytes."""
    mint = Pubkey.from_string(receipt.token_address)
    assert mint == d.mint_address(req.job_id)
    account = (await reader.get_account_info(mint, commitment=Confirmed, encoding="base64")).value
    assert account is not None and account.owner == TOKEN_2022
    rent = (await reader.get_minimum_balance_for_rent_exemption(len(account.data))).value
    assert account.lamports >= rent
    assert_launched_mint(decode_mint(bytes(account.data)), req, mint, d.payer)
    creator, curve = Pubkey.from_string(req.creator), curve_of(mint)  # the curve holds the supply
    vault = (await reader.get_account_info(ata_of(curve, mint), commitment=Confirmed, encoding="base64")).value
    assert vault is not None and vault.owner == TOKEN_2022
    assert decode_token_account(bytes(vault.data)) == (mint, curve, req.supply_base_units, 1)
    state = (await reader.get_account_info(curve, commitment=Confirmed, encoding="base64")).value
    assert state is not None and read_curve(bytes(state.data)).creator == creator


async def _fee_on_chain(reader: AsyncClient, tx_id: str) -> int:
    tx = (
        await reader.get_transaction(
            Signature.from_string(tx_id), commitment=Confirmed, max_supported_transaction_version=0
        )
    ).value
    assert tx is not None
    return tx.transaction.meta.fee


async def _launches_of(reader: AsyncClient, mint: Pubkey) -> tuple[list[str], list[str]]:
    """(successful, failed) signatures of transactions that touched ``mint``."""
    entries = (await reader.get_signatures_for_address(mint, commitment=Confirmed)).value
    ok = [str(e.signature) for e in entries if e.err is None]
    failed = [str(e.signature) for e in entries if e.err is not None]
    return ok, failed


def _budget(raw_tx: bytes) -> tuple[int, int]:
    """(compute unit limit, price in micro-lamports) read from the ComputeBudget instructions."""
    tx = Transaction.from_bytes(raw_tx)
    keys = tx.message.account_keys
    limit = price = 0
    for instruction in tx.message.instructions:
        if str(keys[instruction.program_id_index]) != "ComputeBudget111111111111111111111111111111":
            continue
        data = bytes(instruction.data)
        if data[0] == 2:
            limit = int.from_bytes(data[1:5], "little")
        elif data[0] == 3:
            price = int.from_bytes(data[1:9], "little")
    return limit, price


# ----------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def devnet(tmp_path_factory):
    with running_devnet(tmp_path_factory.mktemp("devnet"), chains="solana") as node:
        yield node


@pytest.fixture
def fast_devnet(tmp_path):
    # 10 ms slots: a blockhash expires 150 slots = 1.5 s after it is handed out.
    with running_devnet(tmp_path, slot_ms=10, chains="solana") as node:
        yield node


@pytest.fixture
async def reader(devnet):
    client = AsyncClient(devnet.solana_url, timeout=10)
    yield client
    await client.close()


# ----------------------------------------------------------------------- tests
async def test_launch_lands_and_decodes(devnet, reader):
    d = await _open(devnet.solana_url)
    try:
        # funded (less the curve program's config account, when this payer created it)
        assert (await reader.get_balance(d.payer, commitment=Confirmed)).value >= PAYER_FUNDS_LAMPORTS - SOL // 100
        req = _req(1)
        signed, receipt = await _launch(d, req)
        assert receipt.tx_id == signed.tx_id and receipt.token_address == signed.token_address
        assert receipt.fee_paid_base_units == await _fee_on_chain(reader, receipt.tx_id) == 10_000
        assert receipt.block_number > 0 and receipt.gas_used is None
        await _verify_launch(reader, d, req, receipt)

        # broadcast twice is harmless, and confirm keeps answering the same receipt
        await d.broadcast(signed)
        await d.broadcast(signed)
        assert await d.confirm(signed) == receipt

        # a re-run finds the launch instead of creating a second mint
        existing = await d.find_existing(req)
        assert existing is not None and existing.extra.get("found_existing")
        assert (existing.token_address, existing.tx_id, existing.block_number, existing.fee_paid_base_units) == (
            receipt.token_address,
            receipt.tx_id,
            receipt.block_number,
            receipt.fee_paid_base_units,
        )
        assert await _launches_of(reader, Pubkey.from_string(receipt.token_address)) == ([receipt.tx_id], [])
    finally:
        await d.close()


async def test_concurrent_launches(devnet, reader):
    d = await _open(devnet.solana_url)
    try:
        reqs = [_req(i) for i in range(8)]
        results = await asyncio.gather(*(_launch(d, r) for r in reqs))
        assert len({receipt.token_address for _, receipt in results}) == len(reqs)
        for req, (_, receipt) in zip(reqs, results, strict=True):
            await _verify_launch(reader, d, req, receipt)
    finally:
        await d.close()


@pytest.mark.parametrize(("price", "limit"), [(200_000, None), (1_500_000, 50_000)], ids=["default-limit", "own-limit"])
async def test_priority_fee_is_paid_as_computed(devnet, reader, price, limit):
    d = await _open(devnet.solana_url, compute_unit_price_micro_lamports=price, compute_unit_limit=limit)
    try:
        req = _req(2)
        signed, receipt = await _launch(d, req)
        tx_limit, tx_price = _budget(signed.raw_tx)
        assert tx_price == price and (limit is None or tx_limit == limit)
        expected = 5_000 * 2 + math.ceil(price * tx_limit / 1_000_000)
        assert receipt.fee_paid_base_units == await _fee_on_chain(reader, receipt.tx_id) == expected > 10_000
        await _verify_launch(reader, d, req, receipt)
    finally:
        await d.close()


async def test_blockhash_expiry_then_resign_lands_once(fast_devnet, tmp_path):
    reader = AsyncClient(fast_devnet.solana_url, timeout=10)
    with FaultProxy(fast_devnet.solana_url) as proxy:
        d = await _open(proxy.url)
        try:
            req = _req(3)
            assert await d.find_existing(req) is None
            stale = await d.sign(req)
            sent, upstream = proxy.count("sendTransaction"), proxy.count("sendTransaction", upstream=True)
            proxy.swallow({"sendTransaction"}, times=1)  # "accepted", never reaches the node
            await d.broadcast(stale)
            assert proxy.count("sendTransaction") == sent + 1
            assert proxy.count("sendTransaction", upstream=True) == upstream

            with pytest.raises(TransientError, match="expired without landing") as info:
                await _confirmed(d, stale)  # polls until the stale transaction's blockhash expires
            assert info.value.code == "tx_dropped"
            assert (await reader.get_block_height(Confirmed)).value > stale.last_valid_block_height

            # the worker's recovery: nothing exists, so sign again - same mint, new transaction
            assert await d.find_existing(req) is None
            fresh = await d.sign(req)
            assert fresh.token_address == stale.token_address and fresh.tx_id != stale.tx_id
            await d.broadcast(fresh)
            receipt = await _confirmed(d, fresh)
            assert receipt.tx_id == fresh.tx_id
            await _verify_launch(reader, d, req, receipt)

            # the stale one can still never land, also when sent for real now
            await d.broadcast(stale)
            with pytest.raises(TransientError):
                await d.confirm(stale)
            mint = Pubkey.from_string(fresh.token_address)
            assert await _launches_of(reader, mint) == ([fresh.tx_id], [])
            statuses = (
                await reader.get_signature_statuses(
                    [Signature.from_string(stale.tx_id)], search_transaction_history=True
                )
            ).value
            assert statuses == [None]
        finally:
            await d.close()
            await reader.close()


async def test_node_failures_are_translated(devnet):
    with FaultProxy(devnet.solana_url) as proxy:
        d = await _open(proxy.url)
        try:
            signed = await d.sign(_req(4))

            proxy.set_mode("error", status=503, methods={"sendTransaction"}, times=1)
            with pytest.raises(TransientError) as info:
                await d.broadcast(signed)
            assert info.value.code == "rpc_unavailable" and proxy.url not in str(info.value)

            proxy.set_mode("error", status=503)
            with pytest.raises(TransientError):
                await d.confirm(signed)
            with pytest.raises(TransientError):
                await d.sign(_req(5))
            proxy.set_mode("pass")

            with pytest.raises(PermanentError) as info:  # cut short: not a transaction
                await d.broadcast(replace(signed, raw_tx=signed.raw_tx[:-40]))
            assert info.value.code == "invalid_transaction" and not info.value.is_transient()

            # after the faults, the real transaction still lands
            await d.broadcast(signed)
            assert (await _confirmed(d, signed)).tx_id == signed.tx_id
        finally:
            await d.close()


async def test_launch_through_a_pooled_client_with_a_dead_endpoint(devnet, reader):
    pool = RpcPool(
        "solana", [EndpointConfig("http://127.0.0.1:9/solana", weight=100), EndpointConfig(devnet.solana_url)]
    )
    d = await open_rpc_solana_deployer(
        "solana",
        pooled_async_client(pool),
        os.urandom(32),
        os.urandom(32),
        airdrop_below_lamports=PAYER_FUNDS_LAMPORTS,
        curve_program=CURVE_PROGRAM_ID,
    )
    try:
        req = _req(6)
        _, receipt = await _launch(d, req)
        await _verify_launch(reader, d, req, receipt)
    finally:
        await d.close()


async def test_opening_against_a_dead_node_is_transient():
    with pytest.raises(TransientError) as info:
        await _open("http://127.0.0.1:9/solana")
    assert info.value.code == "rpc_unavailable"
