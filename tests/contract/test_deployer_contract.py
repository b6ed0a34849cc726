"""The chain deployer contract (``chains/ports.py``), run on every adapter and on the fake.

Chains: the fake the pipeline tests use, the embedded EVM chain, EVM on a ``tokenforge
devnet`` process, a Hardhat node, embedded Solana and Solana on the devnet. Adapters are
opened from settings as the application opens them; what a case needs around the port
(mine a block, make a launch unable to land, read creations from the chain) is in
``deployer_harness.py``. The devnet and Hardhat processes are started once per module;
Hardhat skips locally without Node and fails under CI=true.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.contract.deployer_harness import ChainUnderTest, FakeChain, SettingsChain
from tests.support.commitment_proxy import CommitmentProxy
from tests.support.devnet import running_devnet
from tests.support.hardhat import running_hardhat
from tokenforge.chains.ports import ChainDeployer, LaunchReceipt, SignedLaunch
from tokenforge.errors import ErrorCode, PermanentError, TransientError

EVM_CHAINS = ["fake", "embedded-evm", "devnet-evm", "hardhat"]
SOLANA_CHAINS = ["embedded-solana", "devnet-solana"]
NODE_PROCESSES = {"devnet-evm", "hardhat", "devnet-solana"}  # chains served by another process


def chains(names: list[str]) -> list:
    return [pytest.param(n, id=n, marks=[pytest.mark.integration] if n in NODE_PROCESSES else []) for n in names]


MAX_BLOCKS = 20  # a case gives up on a launch that is not final after this many blocks or slots


@pytest.fixture(scope="module")
def devnet(tmp_path_factory):
    # 10 ms slots: a Solana blockhash expires 1.5 s after it is handed out
    with running_devnet(tmp_path_factory.mktemp("devnet"), slot_ms=10, chains="ethereum,solana") as node:
        yield node


@pytest.fixture(scope="module")
def hardhat():
    with running_hardhat() as node:
        yield node


def _chain_under_test(name: str, request, data_dir) -> ChainUnderTest:
    if name == "fake":
        return FakeChain()
    if name == "embedded-evm":
        return SettingsChain(name, "evm", "ethereum", data_dir)
    if name == "devnet-evm":
        url = request.getfixturevalue("devnet").evm_url("ethereum")
        return SettingsChain(name, "evm", "ethereum", data_dir, url=url)
    if name == "hardhat":
        return SettingsChain(name, "evm", "ethereum", data_dir, url=request.getfixturevalue("hardhat").url)
    if name == "embedded-solana":
        return SettingsChain(name, "solana", "solana", data_dir)
    if name == "devnet-solana":
        return SettingsChain(name, "solana", "solana", data_dir, url=request.getfixturevalue("devnet").solana_url)
    raise AssertionError(name)


@pytest.fixture(params=chains(EVM_CHAINS + SOLANA_CHAINS))
async def chain(request, tmp_path):
    under_test = _chain_under_test(request.param, request, tmp_path / "data")
    try:
        yield under_test
    finally:
        await under_test.close()


async def settle(chain: ChainUnderTest, deployer: ChainDeployer, signed: SignedLaunch) -> LaunchReceipt:
    """``confirm`` until it answers a receipt, one block (slot) between checks."""
    for _ in range(MAX_BLOCKS):
        receipt = await deployer.confirm(signed)
        if receipt is not None:
            return receipt
        await chain.advance(deployer)
    pytest.fail(f"{signed.tx_id} not final after {MAX_BLOCKS} blocks on {chain.name}")


async def landed(chain: ChainUnderTest, deployer: ChainDeployer, token_address: str) -> list[str]:
    """The token's creating transactions, once there is one (blocks mined meanwhile)."""
    for _ in range(MAX_BLOCKS):
        found = await chain.creations(deployer, token_address)
        if found:
            return found
        await chain.advance(deployer)
    pytest.fail(f"{token_address} not created after {MAX_BLOCKS} blocks on {chain.name}")


async def settle_or_reverted(chain, deployer, signed) -> LaunchReceipt | None:
    try:
        return await settle(chain, deployer, signed)
    except PermanentError as err:
        if err.code != ErrorCode.REVERTED:
            raise  # any other permanent failure fails the test as itself
        return None


# ---------------------------------------------------------------- idempotent broadcast


async def test_broadcasting_the_same_bytes_again_is_harmless_before_and_after_confirmation(chain):
    deployer = await chain.open()
    signed = await deployer.sign(chain.request())
    await deployer.broadcast(signed)
    await deployer.broadcast(signed)
    receipt = await settle(chain, deployer, signed)
    await deployer.broadcast(signed)
    assert (receipt.token_address, receipt.tx_id) == (signed.token_address, signed.tx_id)
    assert await deployer.confirm(signed) == receipt
    assert await chain.creations(deployer, signed.token_address) == [signed.tx_id]


# ---------------------------------------------------------------- unknown and dropped transactions


async def test_a_launch_the_chain_has_not_seen_is_pending_while_it_can_still_land(chain):
    deployer = await chain.open()
    signed = await deployer.sign(chain.request())
    assert await deployer.confirm(signed) is None, "never broadcast, but it can still land"
    await deployer.broadcast(signed)
    receipt = await settle(chain, deployer, signed)
    assert receipt.tx_id == signed.tx_id
    assert await chain.creations(deployer, signed.token_address) == [signed.tx_id]


async def test_a_launch_that_can_never_land_is_reported_dropped_and_signing_again_lands_once(chain):
    deployer = await chain.open()
    req = chain.request()
    lost = await deployer.sign(req)
    await chain.make_unlandable(deployer, lost)
    with pytest.raises(TransientError) as dropped:
        await deployer.confirm(lost)
    assert dropped.value.code == ErrorCode.TX_DROPPED
    try:
        await deployer.broadcast(lost)  # the node may take it (and drop it) or refuse it
    except TransientError as err:
        if err.code != ErrorCode.TX_DROPPED:
            raise
    with pytest.raises(TransientError) as still:
        await deployer.confirm(lost)
    assert still.value.code == ErrorCode.TX_DROPPED

    # what the worker does next: nothing on chain, so it signs again
    assert await deployer.find_existing(req) is None
    again = await deployer.sign(req)
    assert again.token_address == lost.token_address and again.tx_id != lost.tx_id
    await deployer.broadcast(again)
    receipt = await settle(chain, deployer, again)
    assert receipt.tx_id == again.tx_id
    assert await chain.creations(deployer, again.token_address) == [again.tx_id]


# ---------------------------------------------------------------- crash and restart


async def test_after_a_crash_before_broadcast_find_existing_finds_nothing(chain):
    deployer = await chain.open()
    req = chain.request()
    signed = await deployer.sign(req)
    deployer = await chain.restart(deployer)
    assert await deployer.find_existing(req) is None
    await deployer.broadcast(signed)  # the successor sends the recorded bytes
    assert (await settle(chain, deployer, signed)).tx_id == signed.tx_id


async def test_after_a_crash_after_broadcast_a_new_instance_finds_the_token(chain):
    deployer = await chain.open()
    req = chain.request()
    signed = await deployer.sign(req)
    await deployer.broadcast(signed)
    assert await landed(chain, deployer, signed.token_address) == [signed.tx_id]
    deployer = await chain.restart(deployer)
    found = await deployer.find_existing(req)
    assert found is not None
    assert (found.token_address, found.tx_id) == (signed.token_address, signed.tx_id)
    assert found.block_number > 0
    confirmed = await settle(chain, deployer, signed)
    assert (confirmed.tx_id, confirmed.block_number) == (found.tx_id, found.block_number)


# ---------------------------------------------------------------- a second creation


async def test_a_second_launch_for_a_confirmed_job_cannot_create_a_second_token(chain):
    deployer = await chain.open()
    req = chain.request()
    first = await deployer.sign(req)
    await deployer.broadcast(first)
    assert (await settle(chain, deployer, first)).tx_id == first.tx_id
    await chain.advance(deployer)  # Solana: a new slot, so a new blockhash and a distinct transaction
    second = await deployer.sign(req)  # e.g. a worker that did not look with find_existing
    assert second.token_address == first.token_address and second.tx_id != first.tx_id
    await deployer.broadcast(second)
    outcome = await settle_or_reverted(chain, deployer, second)
    if outcome is not None:
        assert (outcome.token_address, outcome.tx_id) == (first.token_address, first.tx_id)
    assert await chain.creations(deployer, first.token_address) == [first.tx_id]


async def test_two_launches_of_one_job_in_flight_create_one_token(chain):
    deployer = await chain.open()
    req = chain.request()
    first = await deployer.sign(req)
    await chain.advance(deployer)
    second = await deployer.sign(req)
    assert second.token_address == first.token_address and second.tx_id != first.tx_id
    await deployer.broadcast(first)
    await deployer.broadcast(second)
    outcomes = [await settle_or_reverted(chain, deployer, s) for s in (second, first)]
    created = await chain.creations(deployer, first.token_address)
    assert len(created) == 1 and created[0] in (first.tx_id, second.tx_id)
    receipts = [r for r in outcomes if r is not None]
    assert receipts, "at least the creating launch confirms"
    assert {(r.token_address, r.tx_id) for r in receipts} == {(first.token_address, created[0])}


# ---------------------------------------------------------------- finality


@pytest.mark.parametrize("chain", chains(EVM_CHAINS), indirect=True)
async def test_confirm_waits_until_the_launch_is_the_configured_depth(chain):
    depth = 3
    deployer = await chain.open(confirmations=depth)
    signed = await deployer.sign(chain.request())
    await deployer.broadcast(signed)
    for _ in range(MAX_BLOCKS):
        block = await chain.block_of(deployer, signed.tx_id)
        if block is not None:
            break
        assert await deployer.confirm(signed) is None
        await chain.advance(deployer)
    assert block is not None
    while (await chain.head(deployer)) - block + 1 < depth:
        assert await deployer.confirm(signed) is None, "included, not deep enough yet"
        await chain.advance(deployer)
    # A deployer may cache the head for a moment: wait for the answer without mining more.
    deadline = time.monotonic() + 2.0
    while (receipt := await deployer.confirm(signed)) is None:
        assert time.monotonic() < deadline, f"not final at depth {depth}"
        await asyncio.sleep(0.05)
    assert (receipt.tx_id, receipt.block_number) == (signed.tx_id, block)
    assert (await chain.head(deployer)) - block + 1 == depth


@pytest.mark.parametrize("chain", chains(["devnet-solana"]), indirect=True)
async def test_confirm_waits_until_the_launch_reaches_the_configured_commitment(chain):
    async with CommitmentProxy(chain.url) as proxy:
        behind = chain.via(proxy.url)
        try:
            finalized = await behind.open(commitment="finalized")
            confirmed = await behind.open(commitment="confirmed")
            signed = await finalized.sign(chain.request())
            proxy.report_at_most("processed")
            await finalized.broadcast(signed)
            assert await finalized.confirm(signed) is None
            assert await confirmed.confirm(signed) is None
            proxy.report_at_most("confirmed")
            assert await finalized.confirm(signed) is None, "confirmed is not finalized"
            assert (await confirmed.confirm(signed)).tx_id == signed.tx_id
            proxy.report_at_most(None)  # the devnet finalizes at once
            assert (await finalized.confirm(signed)).tx_id == signed.tx_id
        finally:
            await behind.close()


async def test_embedded_solana_launches_are_final_once_included(tmp_path):
    chain = SettingsChain("embedded-solana", "solana", "solana", tmp_path / "data")
    try:
        deployer = await chain.open(commitment="finalized")
        signed = await deployer.sign(chain.request())
        assert await deployer.confirm(signed) is None
        await deployer.broadcast(signed)
        assert (await deployer.confirm(signed)).tx_id == signed.tx_id
    finally:
        await chain.close()
