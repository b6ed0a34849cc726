"""A real Hardhat node: chain id, fees a real EIP-1559 transaction is mined with, replacements.

Skips locally without ``node_modules/hardhat``; fails under CI=true.
"""

from __future__ import annotations

import pytest
from eth_account import Account
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.exceptions import TransactionNotFound, Web3RPCError

from tests.support.hardhat import (
    CHAIN_ID,
    DEFAULT_PRIVATE_KEYS,
    drop_transaction,
    mine,
    rpc,
    running_hardhat,
    set_automine,
    set_balance,
)
from tokenforge.chains.evm.fees import FeeOracle, Fees
from tokenforge.chains.evm.rpc_errors import translate
from tokenforge.errors import TokenForgeError

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GWEI = 10**9
ETHER = 10**18
SINK = "0x000000000000000000000000000000000000dEaD"
# keys of the custom accounts (test values, never used anywhere else)
FUNDED_KEY = bytes.fromhex("a1" * 32)
POOR_KEY = bytes.fromhex("b2" * 32)


@pytest.fixture(scope="module")
def node():
    """Hardhat's defaults: automine, its default accounts."""
    with running_hardhat() as running:
        yield running


@pytest.fixture(scope="module")
def interval_node():
    """No automine (a block a minute, so blocks come from ``mine``), custom accounts only."""
    with running_hardhat(accounts=[(FUNDED_KEY, 5 * ETHER), (POOR_KEY, 10**6)], mining_interval_ms=60_000) as running:
        yield running


def web3(url: str) -> AsyncWeb3:
    return AsyncWeb3(AsyncHTTPProvider(url))


def transfer(key: bytes, nonce: int, fees: Fees) -> bytes:
    tx = {"chainId": CHAIN_ID, "nonce": nonce, "to": SINK, "value": 1, "gas": 21_000, **fees.tx_fields()}
    return bytes(Account.from_key(key).sign_transaction(tx).raw_transaction)


async def rejection(w3: AsyncWeb3, raw: bytes) -> TokenForgeError:
    """The node's JSON-RPC refusal of ``raw``, as web3 raises it, translated."""
    with pytest.raises(Web3RPCError) as caught:
        await w3.eth.send_raw_transaction(raw)
    return translate(caught.value, "broadcast")


async def test_chain_id(node):
    assert await web3(node.url).eth.chain_id == CHAIN_ID
    assert node.url == f"http://127.0.0.1:{node.port}"


async def test_oracle_fees_mine_a_real_eip1559_transaction(node):
    w3 = web3(node.url)
    fees = await FeeOracle(w3, max_fee_per_gas_cap_wei=100 * GWEI).current()
    assert not fees.legacy and 0 < fees.max_priority_fee_per_gas_wei <= fees.max_fee_per_gas_wei <= 100 * GWEI

    key = DEFAULT_PRIVATE_KEYS[0]
    nonce = await w3.eth.get_transaction_count(Account.from_key(key).address)
    tx_hash = await w3.eth.send_raw_transaction(transfer(key, nonce, fees))
    receipt = await w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
    assert receipt["status"] == 1
    assert receipt["type"] == 2
    assert receipt["effectiveGasPrice"] <= fees.max_fee_per_gas_wei


async def test_oracle_refuses_fees_above_the_cap(node):
    base_fee_wei = (await web3(node.url).eth.fee_history(1, "latest", [50.0]))["baseFeePerGas"][-1]
    with pytest.raises(TokenForgeError) as caught:
        await FeeOracle(web3(node.url), max_fee_per_gas_cap_wei=base_fee_wei // 2).current()
    assert caught.value.code == "fee_above_cap" and caught.value.is_transient()


async def test_set_balance_and_manual_mining_helpers(node):
    w3 = web3(node.url)
    fresh = Account.from_key(bytes.fromhex("c3" * 32))
    set_balance(node.url, fresh.address, 3 * ETHER)
    assert await w3.eth.get_balance(fresh.address) == 3 * ETHER

    fees = await FeeOracle(w3, max_fee_per_gas_cap_wei=100 * GWEI).current()
    set_automine(node.url, False)
    try:
        tx_hash = await w3.eth.send_raw_transaction(transfer(fresh.key, 0, fees))
        assert (await w3.eth.get_transaction(tx_hash))["blockNumber"] is None
        mine(node.url)
        assert (await w3.eth.get_transaction_receipt(tx_hash))["status"] == 1
    finally:
        set_automine(node.url, True)


async def test_custom_accounts_are_funded_and_replace_the_defaults(interval_node):
    w3 = web3(interval_node.url)
    funded, poor = Account.from_key(FUNDED_KEY).address, Account.from_key(POOR_KEY).address
    assert await w3.eth.get_balance(funded) == 5 * ETHER
    assert await w3.eth.get_balance(poor) == 10**6
    assert set(rpc(interval_node.url, "eth_accounts")) == {funded.lower(), poor.lower()}


async def test_pending_transaction_is_dropped_then_replaced_with_bumped_fees(interval_node):
    w3 = web3(interval_node.url)
    oracle = FeeOracle(w3, max_fee_per_gas_cap_wei=100 * GWEI)
    sender = Account.from_key(FUNDED_KEY).address
    nonce = await w3.eth.get_transaction_count(sender, "pending")
    fees = await oracle.current()

    original = transfer(FUNDED_KEY, nonce, fees)
    tx_hash = await w3.eth.send_raw_transaction(original)
    assert (await w3.eth.get_transaction(tx_hash))["blockNumber"] is None  # pending: automine is off

    assert drop_transaction(interval_node.url, tx_hash) is True
    with pytest.raises(TransactionNotFound):
        await w3.eth.get_transaction(tx_hash)
    assert drop_transaction(interval_node.url, tx_hash) is False

    assert await w3.eth.send_raw_transaction(original) == tx_hash  # the nonce is free again
    five_percent = Fees(fees.max_fee_per_gas_wei * 105 // 100, fees.max_priority_fee_per_gas_wei * 105 // 100)
    err = await rejection(w3, transfer(FUNDED_KEY, nonce, five_percent))
    assert err.code == "underpriced" and err.is_transient()
    assert "Replacement transaction underpriced" in err.message

    bumped = oracle.bump(fees, percent=10, floor=await oracle.current())
    assert bumped is not None
    replacement = await w3.eth.send_raw_transaction(transfer(FUNDED_KEY, nonce, bumped))
    mine(interval_node.url)
    receipt = await w3.eth.get_transaction_receipt(replacement)
    assert receipt["status"] == 1 and receipt["effectiveGasPrice"] <= bumped.max_fee_per_gas_wei
    with pytest.raises(TransactionNotFound):
        await w3.eth.get_transaction(tx_hash)


async def test_node_rejections_the_classifier_knows(interval_node):
    w3 = web3(interval_node.url)
    fees = await FeeOracle(w3, max_fee_per_gas_cap_wei=100 * GWEI).current()
    sender = Account.from_key(FUNDED_KEY).address
    nonce = await w3.eth.get_transaction_count(sender, "pending")

    pending = transfer(FUNDED_KEY, nonce, fees)
    await w3.eth.send_raw_transaction(pending)
    assert (await rejection(w3, pending)).code == "already_known"  # "Known transaction: 0x…"
    mine(interval_node.url)
    assert (await rejection(w3, transfer(FUNDED_KEY, nonce, fees))).code == "nonce_too_low"


async def test_insufficient_funds_is_permanent(interval_node):
    w3 = web3(interval_node.url)
    fees = await FeeOracle(w3, max_fee_per_gas_cap_wei=100 * GWEI).current()
    err = await rejection(w3, transfer(POOR_KEY, 0, fees))
    assert err.code == "insufficient_funds" and not err.is_transient()
