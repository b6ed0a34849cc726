"""The EVM deployer over JSON-RPC against real nodes: key pools, shared nonces,
stuck-transaction replacement, dropped transactions, nonce gaps and drift, balance alerts.

Every test runs on a Hardhat node and on ``tokenforge devnet`` (no Node.js needed), driven
through the same development methods (``hardhat_setBalance``, ``evm_setAutomine``,
``evm_mine``, ``hardhat_dropTransaction``). Hardhat mines each transaction as it arrives;
the devnet mines shortly after, so launches here mine a block before they confirm.
Everything written is read back with a plain web3.py client and a hand-written ERC-20 ABI.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

import pytest
from eth_account import Account
from web3 import AsyncHTTPProvider, AsyncWeb3, Web3

from tests.support.devnet import running_devnet
from tests.support.erc20 import ERC20_ABI
from tests.support.hardhat import CHAIN_ID, drop_transaction, mine, running_hardhat, set_automine, set_balance
from tokenforge.chains.evm.codec import decode_signed_tx
from tokenforge.chains.evm.deployer import EvmDeployer
from tokenforge.chains.evm.fees import FeeOracle
from tokenforge.chains.evm.keeper import NonceKeeper
from tokenforge.chains.evm.open import open_rpc_evm_deployer
from tokenforge.chains.ports import LaunchRequest, SignedLaunch
from tokenforge.errors import ErrorCode, PermanentError, TransientError
from tokenforge.store.db import make_engine, make_sessionmaker
from tokenforge.store.migrate import upgrade_to_head
from tokenforge.store.nonce_cursors import SqlNonceSource

GWEI = 10**9
FUND_WEI = 10**21


def keys(n: int) -> list[bytes]:
    return [os.urandom(32) for _ in range(n)]


@pytest.fixture
def deployer_keys():
    return keys(3)


@dataclass
class Node:
    kind: str  # "hardhat" or "devnet"
    url: str


@pytest.fixture(scope="module")
def devnet(tmp_path_factory):
    with running_devnet(tmp_path_factory.mktemp("devnet"), chains="ethereum", in_memory=True) as devnet:
        yield devnet


@pytest.fixture(params=["hardhat", "devnet"])
def node(request, deployer_keys):
    """A node whose only funded accounts (for this test) are the deployer keys."""
    if request.param == "hardhat":
        with running_hardhat(accounts=[(k, FUND_WEI) for k in deployer_keys]) as hardhat:
            yield Node("hardhat", hardhat.url)
        return
    url = request.getfixturevalue("devnet").evm_url("ethereum")  # one devnet per module; fresh keys per test
    for key in deployer_keys:
        set_balance(url, Account.from_key(key).address, FUND_WEI)
    try:
        yield Node("devnet", url)
    finally:
        set_automine(url, True)


@pytest.fixture
async def sessions(tmp_path):
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'tf.db'}")
    await upgrade_to_head(engine)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def open_deployer(node, deployer_keys, sessions, **options) -> EvmDeployer:
    w3 = AsyncWeb3(AsyncHTTPProvider(node.url))
    options.setdefault("fees", FeeOracle(w3, max_fee_per_gas_cap_wei=100 * GWEI, cache_s=0))
    return await open_rpc_evm_deployer(
        "ethereum",
        w3,
        chain_id=CHAIN_ID,
        deployer_keys=deployer_keys,
        nonces=lambda pending: SqlNonceSource(sessions, "ethereum", pending),
        **options,
    )


def request(creator: str, i: int = 0) -> LaunchRequest:
    return LaunchRequest(
        job_id=uuid.uuid4().hex,
        chain="ethereum",
        name=f"Hard Hat {i}",
        symbol=f"HH{i}",
        decimals=18,
        supply_base_units=(1000 + i) * 10**18,
        creator=creator,
    )


async def launch(deployer: EvmDeployer, req: LaunchRequest, node: Node):
    signed = await deployer.sign(req)
    await deployer.broadcast(signed)
    mine(node.url)  # the launch is in a block now on either node
    receipt = await deployer.confirm(signed)
    return signed, receipt


def read_token(url: str, address: str) -> dict:
    token = Web3(Web3.HTTPProvider(url)).eth.contract(address=address, abi=ERC20_ABI)
    return {f: getattr(token.functions, f)().call() for f in ("name", "symbol", "decimals", "totalSupply")}


async def test_wrong_chain_id_is_refused_before_anything_is_signed(node, deployer_keys, sessions):
    w3 = AsyncWeb3(AsyncHTTPProvider(node.url))
    with pytest.raises(PermanentError) as err:
        await open_rpc_evm_deployer("ethereum", w3, chain_id=1, deployer_keys=deployer_keys)
    assert err.value.code == "chain_id_mismatch"
    assert await w3.eth.get_transaction_count(Account.from_key(deployer_keys[0]).address) == 0


async def test_launches_spread_over_the_key_pool_and_read_back(node, deployer_keys, sessions):
    deployer = await open_deployer(node, deployer_keys, sessions)
    creator = Account.create().address
    signers = []
    for i in range(6):
        req = request(creator, i)
        signed, receipt = await launch(deployer, req, node)
        assert receipt is not None and receipt.token_address == signed.token_address
        signers.append(signed.signer)
        token = read_token(node.url, receipt.token_address)
        assert token == {"name": req.name, "symbol": req.symbol, "decimals": 18, "totalSupply": req.supply_base_units}
    assert sorted(set(signers)) == sorted(Account.from_key(k).address for k in deployer_keys)
    await deployer.close()


async def test_two_workers_sharing_keys_never_reuse_a_nonce(node, deployer_keys, sessions):
    """Two deployers (as in two worker processes) over one database hand out distinct nonces."""
    a = await open_deployer(node, deployer_keys[:1], sessions)
    b = await open_deployer(node, deployer_keys[:1], sessions)
    creator = Account.create().address
    signed = []
    for i in range(6):
        d = (a, b)[i % 2]
        s = await d.sign(request(creator, i))
        await d.broadcast(s)
        signed.append(s)
    assert len({s.nonce for s in signed}) == 6
    mine(node.url)
    for s in signed:
        assert (await a.confirm(s)) is not None
    await a.close()
    await b.close()


async def test_stuck_transaction_is_replaced_with_same_nonce_and_the_mined_one_counts(node, deployer_keys, sessions):
    deployer = await open_deployer(node, deployer_keys[:1], sessions, fee_bump_percent=12)
    creator = Account.create().address
    set_automine(node.url, False)
    req = request(creator)
    original = await deployer.sign(req)
    await deployer.broadcast(original)
    assert await deployer.confirm(original) is None
    replacement = await deployer.replace(original)
    assert replacement is not None
    assert replacement.nonce == original.nonce and replacement.tx_id != original.tx_id
    assert replacement.replaced_tx_ids == (original.tx_id,)
    w3 = Web3(Web3.HTTPProvider(node.url))
    old_tx = w3.eth.get_transaction(original.tx_id)
    await deployer.broadcast(replacement)
    new_tx = w3.eth.get_transaction(replacement.tx_id)
    assert new_tx["maxFeePerGas"] >= old_tx["maxFeePerGas"] * 112 // 100
    assert new_tx["maxPriorityFeePerGas"] >= old_tx["maxPriorityFeePerGas"] * 112 // 100
    mine(node.url)
    receipt = await deployer.confirm(replacement)
    assert receipt is not None and receipt.tx_id == replacement.tx_id
    assert read_token(node.url, receipt.token_address)["name"] == req.name
    await deployer.close()


async def test_original_mined_after_a_replacement_was_recorded_still_counts(node, deployer_keys, sessions):
    """The replacement was recorded but the old tx is the one mined: confirm finds it."""
    deployer = await open_deployer(node, deployer_keys[:1], sessions)
    set_automine(node.url, False)
    original = await deployer.sign(request(Account.create().address))
    await deployer.broadcast(original)
    replacement = await deployer.replace(original)  # recorded, never broadcast (crash)
    mine(node.url)
    receipt = await deployer.confirm(replacement)
    assert receipt is not None and receipt.tx_id == original.tx_id
    await deployer.close()


async def _replace_until_refused(deployer: EvmDeployer, signed: SignedLaunch, replacements: list[SignedLaunch]) -> None:
    """Replaces the launch again and again, appending each replacement, until ``replace`` raises."""
    for _ in range(20):
        signed = await deployer.replace(signed)
        assert signed is not None, "the launch was mined, but automine is off"
        replacements.append(signed)
    pytest.fail("replacement never reached the cap")


async def test_replacement_stops_at_the_fee_cap(node, deployer_keys, sessions):
    w3 = AsyncWeb3(AsyncHTTPProvider(node.url))
    base = (await w3.eth.get_block("pending"))["baseFeePerGas"]
    cap = 3 * base + 2 * GWEI
    deployer = await open_deployer(
        node, deployer_keys[:1], sessions, fees=FeeOracle(w3, max_fee_per_gas_cap_wei=cap, cache_s=0)
    )
    set_automine(node.url, False)
    signed = await deployer.sign(request(Account.create().address))
    replacements: list[SignedLaunch] = []
    with pytest.raises(TransientError, match=f"more than the cap of {cap} wei per gas") as refused:
        await _replace_until_refused(deployer, signed, replacements)
    assert refused.value.code is ErrorCode.FEE_ABOVE_CAP
    assert replacements, "at least one replacement fitted under the cap"
    assert decode_signed_tx(replacements[-1].raw_tx).max_fee_per_gas_wei <= cap
    await deployer.close()


async def test_transaction_dropped_from_mempool_is_resent_with_the_same_nonce(node, deployer_keys, sessions):
    deployer = await open_deployer(node, deployer_keys[:1], sessions)
    deployer.KNOWN_RECHECK_S = 0  # ask the node about the tx on every check
    set_automine(node.url, False)
    signed = await deployer.sign(request(Account.create().address))
    await deployer.broadcast(signed)
    assert drop_transaction(node.url, signed.tx_id) is True
    w3 = Web3(Web3.HTTPProvider(node.url))
    assert await deployer.confirm(signed) is None  # noticed the drop and re-sent the same bytes
    assert w3.eth.get_transaction(signed.tx_id)["nonce"] == signed.nonce
    mine(node.url)
    receipt = await deployer.confirm(signed)
    assert receipt is not None and receipt.tx_id == signed.tx_id
    await deployer.close()


async def test_gap_left_by_an_unrecorded_nonce_is_filled_and_later_launches_land(node, deployer_keys, sessions):
    deployer = await open_deployer(node, deployer_keys[:1], sessions)
    signer = deployer.keys.addresses[0]
    set_automine(node.url, False)
    # a worker allocated nonce 1 (0 is the factory) and died before recording it
    lost = await deployer.nonces.allocate(signer)
    signed = await deployer.sign(request(Account.create().address))
    assert signed.nonce == lost + 1
    await deployer.broadcast(signed)
    # a launch holding nonce lost+1 is "recorded": pretend the job table says so
    held = {signed.nonce}
    deployer.nonces.held = lambda s, n: _async(held)  # type: ignore[method-assign]
    keeper = NonceKeeper(deployer, gap_after_s=0)
    mine(node.url)
    assert await deployer.confirm(signed) is None  # stuck behind the gap
    report = await keeper.sweep()
    assert report.filled == [(signer, lost)]
    mine(node.url)
    receipt = await deployer.confirm(signed)
    assert receipt is not None
    w3 = Web3(Web3.HTTPProvider(node.url))
    assert w3.eth.get_transaction_count(signer) == signed.nonce + 1
    await deployer.close()


async def test_unsent_nonces_nobody_holds_are_given_back_without_gas(node, deployer_keys, sessions):
    deployer = await open_deployer(node, deployer_keys[:1], sessions)
    signer = deployer.keys.addresses[0]
    first = await deployer.nonces.allocate(signer)
    await deployer.nonces.allocate(signer)
    keeper = NonceKeeper(deployer, gap_after_s=0)
    report = await keeper.sweep()
    assert report.rewound == [(signer, first)] and report.filled == []
    assert await deployer.nonces.cursor(signer) == first


async def test_drift_from_outside_use_of_the_key_moves_the_cursor_forward(node, deployer_keys, sessions):
    deployer = await open_deployer(node, deployer_keys[:1], sessions)
    signer = deployer.keys.addresses[0]
    _, receipt = await launch(deployer, request(Account.create().address), node)
    assert receipt is not None
    # the operator used the key in a wallet: two transactions TokenForge never saw
    w3 = Web3(Web3.HTTPProvider(node.url))
    account = Account.from_key(deployer_keys[0])
    for _ in range(2):
        tx = {
            "to": account.address,
            "value": 0,
            "gas": 21000,
            "chainId": CHAIN_ID,
            "nonce": w3.eth.get_transaction_count(signer, "pending"),
            "maxFeePerGas": 50 * GWEI,
            "maxPriorityFeePerGas": GWEI,
        }
        w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
    report = await NonceKeeper(deployer, gap_after_s=0).sweep()
    assert report.advanced == [(signer, w3.eth.get_transaction_count(signer, "pending"))]
    _, receipt = await launch(deployer, request(Account.create().address, 1), node)
    assert receipt is not None
    await deployer.close()


async def test_nonce_taken_by_another_transaction_reports_dropped(node, deployer_keys, sessions):
    deployer = await open_deployer(node, deployer_keys[:1], sessions)
    set_automine(node.url, False)
    signed = await deployer.sign(request(Account.create().address))
    # never broadcast; someone else uses the same nonce with the same key
    account = Account.from_key(deployer_keys[0])
    w3 = Web3(Web3.HTTPProvider(node.url))
    tx = {
        "to": account.address,
        "value": 0,
        "gas": 21000,
        "chainId": CHAIN_ID,
        "nonce": signed.nonce,
        "maxFeePerGas": 50 * GWEI,
        "maxPriorityFeePerGas": GWEI,
    }
    w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
    mine(node.url)
    with pytest.raises(TransientError) as err:
        await deployer.broadcast(signed)
    assert err.value.code == "tx_dropped"
    await deployer.close()


async def test_key_below_minimum_balance_stops_taking_launches_until_funded(node, deployer_keys, sessions):
    deployer = await open_deployer(node, deployer_keys[:2], sessions, min_balance_wei=10**18)
    poor, rich = deployer.keys.addresses
    set_balance(node.url, poor, 10**15)
    keeper = NonceKeeper(deployer, gap_after_s=60)
    await keeper.sweep()
    health = {k["address"]: k for k in deployer.health()["keys"]}
    assert health[poor]["enabled"] is False and "fund" in health[poor]["alert"]
    for i in range(3):
        signed = await deployer.sign(request(Account.create().address, i))
        assert signed.signer == rich
        await deployer.abandon(signed)
    set_balance(node.url, rich, 10**15)
    await keeper.sweep()
    with pytest.raises(TransientError) as err:
        await deployer.sign(request(Account.create().address))
    assert err.value.code == "no_funded_key"
    set_balance(node.url, poor, 10**19)
    await keeper.sweep()
    assert (await deployer.sign(request(Account.create().address))).signer == poor
    await deployer.close()


async def _async(value):
    return value


async def test_legacy_fee_chain_launches_with_gas_price_transactions(node, deployer_keys, sessions):
    w3 = AsyncWeb3(AsyncHTTPProvider(node.url))
    deployer = await open_deployer(
        node,
        deployer_keys[:1],
        sessions,
        fees=FeeOracle(w3, legacy=True, max_fee_per_gas_cap_wei=100 * GWEI, cache_s=0),
    )
    signed, receipt = await launch(deployer, request(Account.create().address), node)
    assert receipt is not None
    tx = Web3(Web3.HTTPProvider(node.url)).eth.get_transaction(signed.tx_id)
    assert tx["type"] == 0 and tx["gasPrice"] > 0 and "maxFeePerGas" not in tx
    await deployer.close()


async def test_launch_counts_only_after_the_configured_confirmations(node, deployer_keys, sessions):
    deployer = await open_deployer(node, deployer_keys[:1], sessions, confirmations=3)
    set_automine(node.url, False)
    signed = await deployer.sign(request(Account.create().address))
    await deployer.broadcast(signed)
    mine(node.url)  # included: 1 confirmation
    assert await deployer.confirm(signed) is None
    mine(node.url)
    deployer.node.forget_head()  # no cached head between the checks of this test
    assert await deployer.confirm(signed) is None
    mine(node.url)
    deployer.node.forget_head()
    receipt = await deployer.confirm(signed)
    assert receipt is not None and receipt.tx_id == signed.tx_id
    await deployer.close()


async def test_second_transaction_for_a_launched_token_reverts_but_the_launch_counts(node, deployer_keys, sessions):
    """A re-signed launch whose first transaction created the token meanwhile: the second
    reverts on chain (CREATE2 cannot create twice); the job gets the first one's receipt."""
    deployer = await open_deployer(node, deployer_keys[:1], sessions)
    req = request(Account.create().address)
    first, receipt = await launch(deployer, req, node)
    assert receipt is not None
    second = await deployer.sign(req)
    await deployer.broadcast(second)
    mine(node.url)
    w3 = Web3(Web3.HTTPProvider(node.url))
    assert w3.eth.get_transaction_receipt(second.tx_id)["status"] == 0
    settled = await deployer.confirm(second)
    assert settled is not None and settled.tx_id == first.tx_id and settled.token_address == first.token_address
    await deployer.close()


async def test_a_mined_launch_waiting_for_depth_is_not_replaced(node, deployer_keys, sessions):
    deployer = await open_deployer(node, deployer_keys[:1], sessions, confirmations=5)
    set_automine(node.url, False)
    signed = await deployer.sign(request(Account.create().address))
    await deployer.broadcast(signed)
    mine(node.url)
    assert await deployer.confirm(signed) is None
    assert await deployer.replace(signed) is None
    await deployer.close()
