"""EVM launches on the embedded chain, read back independently with plain web3.py.

The reader uses ``embedded.web3()`` (a synchronous web3.py client) and the ABI of a
standard ERC-20 written out below (plus the curve's ``buy``), not TokenForge's artifacts or
helpers. A launch mints the whole supply to the token's bonding curve; the creator starts
with no tokens.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
import uuid

import pytest
from eth_abi import encode as abi_encode
from eth_account import Account
from web3 import Web3
from web3.exceptions import TransactionNotFound
from web3.logs import DISCARD

from tests.support.evm_chain import mine_all, pending_count, wait_for_block
from tokenforge.chains.evm import codec
from tokenforge.chains.evm.deployer import EvmDeployer
from tokenforge.chains.evm.open import open_embedded_evm_deployer
from tokenforge.chains.ports import ChainDeployer, LaunchReceipt, LaunchRequest, SignedLaunch
from tokenforge.domain.chains import EVM_MAX_SUPPLY_BASE_UNITS
from tokenforge.errors import PermanentError, TransientError, ValidationFailed

CHAIN_ID = 31337
#: token clone + curve clone + the supply minted to the curve (~190 k measured)
MAX_LAUNCH_GAS = 200_000
#: the longest name and symbol add ~140 bytes of clone code (200 gas each) and calldata
MAX_EXTREME_LAUNCH_GAS = 225_000
ZERO_ADDRESS = "0x" + "00" * 20

ERC20_ABI = [
    {
        "type": "function",
        "name": "name",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [{"name": "", "type": "string"}],
    },
    {
        "type": "function",
        "name": "symbol",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [{"name": "", "type": "string"}],
    },
    {
        "type": "function",
        "name": "decimals",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [{"name": "", "type": "uint8"}],
    },
    {
        "type": "function",
        "name": "totalSupply",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [{"name": "", "type": "uint256"}],
    },
    {
        "type": "function",
        "name": "balanceOf",
        "stateMutability": "view",
        "inputs": [{"name": "owner", "type": "address"}],
        "outputs": [{"name": "", "type": "uint256"}],
    },
    {
        "type": "function",
        "name": "transfer",
        "stateMutability": "nonpayable",
        "inputs": [{"name": "to", "type": "address"}, {"name": "value", "type": "uint256"}],
        "outputs": [{"name": "", "type": "bool"}],
    },
    {
        "type": "event",
        "name": "Transfer",
        "anonymous": False,
        "inputs": [
            {"name": "from", "type": "address", "indexed": True},
            {"name": "to", "type": "address", "indexed": True},
            {"name": "value", "type": "uint256", "indexed": False},
        ],
    },
]
PREDICT_ABI = [
    {
        "type": "function",
        "name": "predictAddress",
        "stateMutability": "view",
        "inputs": [
            {"name": "salt", "type": "bytes32"},
            {"name": "args", "type": "bytes"},
            {"name": "creator", "type": "address"},
            {"name": "supply", "type": "uint256"},
            {"name": "launchFeeBps", "type": "uint16"},
            {"name": "launchWindow", "type": "uint32"},
            {"name": "windowInBlocks", "type": "bool"},
        ],
        "outputs": [{"name": "", "type": "address"}],
    }
]
BUY_ABI = [
    {
        "type": "function",
        "name": "buy",
        "stateMutability": "payable",
        "inputs": [{"name": "minTokensOut", "type": "uint256"}, {"name": "deadline", "type": "uint256"}],
        "outputs": [{"name": "tokensOut", "type": "uint256"}],
    }
]
TOKEN_CREATED = Web3.keccak(
    text="TokenCreated(address,address,bytes32,address,uint256,uint256,uint256,uint256,uint256,uint256,bool,uint256,uint256)"
)


def request(creator: str, i: int = 0, **overrides) -> LaunchRequest:
    fields = dict(
        job_id=uuid.uuid4().hex,
        chain="ethereum",
        name=f"Forge Token {i} ✓",
        symbol=f"FT{i}",
        decimals=18,
        supply_base_units=1_000_000_000 * 10**18 + i,
        creator=creator,
    )
    fields.update(overrides)
    return LaunchRequest(**fields)


def transfers(token, receipt) -> list:
    """The receipt's ERC-20 Transfer events emitted by ``token`` (other logs are skipped)."""
    events = token.events.Transfer().process_receipt(receipt, errors=DISCARD)
    return [e for e in events if e.address == token.address]


async def launch(deployer: EvmDeployer, req: LaunchRequest) -> tuple[SignedLaunch, LaunchReceipt]:
    signed = await deployer.sign(req)
    await deployer.broadcast(signed)
    return signed, await confirmed(deployer, signed)


async def confirmed(deployer: EvmDeployer, signed: SignedLaunch) -> LaunchReceipt:
    embedded = deployer.embedded
    while True:
        seen = embedded.head_number  # read before confirm: a block mined after it wakes us
        receipt = await deployer.confirm(signed)
        if receipt is not None:
            return receipt
        await wait_for_block(embedded, seen + 1, timeout_s=60)


async def wait_receipt(deployer: EvmDeployer, w3: Web3, tx_hash) -> dict:
    while True:
        seen = deployer.embedded.head_number
        try:
            return w3.eth.get_transaction_receipt(tx_hash)
        except TransactionNotFound:
            await wait_for_block(deployer.embedded, seen + 1, timeout_s=60)


@pytest.fixture
async def deployer():
    d = await open_embedded_evm_deployer("ethereum", CHAIN_ID, None, os.urandom(32))
    yield d
    await d.close()


@pytest.fixture
def creator():
    return Account.create()


async def test_deployer_implements_the_port(deployer):
    assert isinstance(deployer, ChainDeployer)
    w3 = deployer.embedded.web3()
    assert w3.eth.chain_id == CHAIN_ID
    assert w3.eth.get_code(deployer.factory.address)
    assert "key" not in repr(deployer).lower()


async def test_concurrent_launches_are_real_erc20s(deployer, creator):
    reqs = [request(creator.address, i, decimals=[18, 6, 0, 9][i % 4]) for i in range(12)]
    results = await asyncio.gather(*(launch(deployer, r) for r in reqs))

    nonces = sorted(signed.nonce for signed, _ in results)
    assert nonces == list(range(nonces[0], nonces[0] + len(reqs)))  # pipelined from one key
    w3 = deployer.embedded.web3()
    predictor = w3.eth.contract(address=deployer.factory.address, abi=PREDICT_ABI)
    for req, (signed, receipt) in zip(reqs, results, strict=True):
        assert receipt.token_address == signed.token_address
        assert 0 < receipt.gas_used <= MAX_LAUNCH_GAS, receipt.gas_used
        assert receipt.fee_paid_base_units > 0
        chain_receipt = w3.eth.get_transaction_receipt(receipt.tx_id)
        assert chain_receipt["status"] == 1 and chain_receipt["gasUsed"] == receipt.gas_used
        created = [log for log in chain_receipt["logs"] if log["topics"][0] == TOKEN_CREATED]
        assert len(created) == 1
        assert Web3.to_checksum_address(created[0]["topics"][1][-20:]) == signed.token_address
        assert Web3.to_checksum_address(created[0]["topics"][2][-20:]) == creator.address
        assert bytes(created[0]["topics"][3]) == Web3.keccak(bytes.fromhex(req.job_id))

        args = codec.encode_token_args(req.name, req.symbol, req.decimals)
        assert (
            predictor.functions.predictAddress(
                Web3.keccak(bytes.fromhex(req.job_id)), args, req.creator, req.supply_base_units, 0, 0, False
            ).call()
            == signed.token_address
        )
        assert w3.eth.get_code(signed.token_address) == codec.clone_runtime_code(deployer.factory.implementation, args)

        token = w3.eth.contract(address=signed.token_address, abi=ERC20_ABI)
        assert token.functions.name().call() == req.name
        assert token.functions.symbol().call() == req.symbol
        assert token.functions.decimals().call() == req.decimals
        curve = codec.curve_address(signed.token_address)
        assert created[0]["data"][12:32] == bytes.fromhex(curve[2:])  # TokenCreated's first data word
        assert w3.eth.get_code(curve)
        assert token.functions.totalSupply().call() == req.supply_base_units
        assert token.functions.balanceOf(curve).call() == req.supply_base_units
        assert token.functions.balanceOf(creator.address).call() == 0
        mint = transfers(token, chain_receipt)
        assert [(e.args["from"], e.args["to"], e.args["value"]) for e in mint] == [
            (ZERO_ADDRESS, curve, req.supply_base_units)
        ]


async def send(deployer: EvmDeployer, account, fn, value_wei: int = 0) -> dict:
    """Signs ``fn`` with ``account``, sends it and awaits its receipt."""
    w3 = deployer.embedded.web3()
    tx = fn.build_transaction(
        {
            "from": account.address,
            "value": value_wei,
            "nonce": w3.eth.get_transaction_count(account.address, "pending"),
            "chainId": CHAIN_ID,
            "gas": 200_000,
            "maxFeePerGas": 10**11,
            "maxPriorityFeePerGas": 10**9,
        }
    )
    tx_hash = w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
    return await wait_receipt(deployer, w3, tx_hash)


async def test_a_buyer_can_transfer(deployer, creator):
    req = request(creator.address)
    signed, _ = await launch(deployer, req)
    embedded = deployer.embedded
    buyer = Account.create()
    await embedded.run(embedded.fund, buyer.address, 10**18)
    w3 = embedded.web3()
    token = w3.eth.contract(address=signed.token_address, abi=ERC20_ABI)
    curve = w3.eth.contract(address=codec.curve_address(signed.token_address), abi=BUY_ABI)
    bought = await send(deployer, buyer, curve.functions.buy(1, 2**40), 10**16)
    assert bought["status"] == 1
    [purchase] = transfers(token, bought)
    assert (purchase.args["from"], purchase.args["to"]) == (curve.address, buyer.address)
    held = purchase.args["value"]
    assert held > 12345 and token.functions.balanceOf(buyer.address).call() == held

    recipient = Account.create().address
    receipt = await send(deployer, buyer, token.functions.transfer(recipient, 12345))
    assert receipt["status"] == 1
    events = transfers(token, receipt)
    assert [(e.args["from"], e.args["to"], e.args["value"]) for e in events] == [(buyer.address, recipient, 12345)]
    assert token.functions.balanceOf(recipient).call() == 12345
    assert token.functions.balanceOf(buyer.address).call() == held - 12345
    assert token.functions.balanceOf(curve.address).call() == req.supply_base_units - held
    assert token.functions.totalSupply().call() == req.supply_base_units


async def test_a_job_never_creates_a_second_token(deployer, creator):
    req = request(creator.address)
    assert await deployer.find_existing(req) is None
    first, receipt = await launch(deployer, req)

    existing = await deployer.find_existing(req)
    assert existing is not None
    assert (existing.token_address, existing.tx_id, existing.block_number) == (
        receipt.token_address,
        receipt.tx_id,
        receipt.block_number,
    )

    await deployer.broadcast(first)  # re-broadcasting the same tx is a no-op
    assert await deployer.confirm(first) == receipt

    # a worker that ignored find_existing and signed again: the chain refuses the second clone
    # (the transaction reverts) and the launch is the one that created the token
    again = await deployer.sign(req)
    assert again.token_address == first.token_address and again.tx_id != first.tx_id
    await deployer.broadcast(again)
    settled = await confirmed(deployer, again)
    assert (settled.tx_id, settled.token_address) == (first.tx_id, first.token_address)
    assert deployer.embedded.web3().eth.get_transaction_receipt(again.tx_id)["status"] == 0

    w3 = deployer.embedded.web3()
    logs = w3.eth.get_logs(
        {
            "fromBlock": 0,
            "toBlock": "latest",
            "address": deployer.factory.address,
            "topics": [TOKEN_CREATED, "0x" + "00" * 12 + first.token_address[2:].lower()],
        }
    )
    assert len(logs) == 1
    token = w3.eth.contract(address=first.token_address, abi=ERC20_ABI)
    assert token.functions.totalSupply().call() == req.supply_base_units


async def test_future_nonce_waits_for_the_gap(deployer, creator):
    s1 = await deployer.sign(request(creator.address, 1))
    s2 = await deployer.sign(request(creator.address, 2))
    assert s2.nonce == s1.nonce + 1
    await deployer.broadcast(s2)
    embedded = deployer.embedded
    assert await embedded.run(mine_all, embedded) == 0  # nothing executable: nonce s1 is missing
    assert await deployer.confirm(s2) is None
    await deployer.broadcast(s1)
    r1, r2 = await confirmed(deployer, s1), await confirmed(deployer, s2)
    assert r1.block_number <= r2.block_number


async def test_abandoned_nonce_is_reused_and_the_old_tx_reports_dropped(deployer, creator):
    lost = await deployer.sign(request(creator.address, 1))
    await deployer.abandon(lost)  # never persisted, never broadcast
    replacement = await deployer.sign(request(creator.address, 2))
    assert replacement.nonce == lost.nonce
    await deployer.broadcast(replacement)
    await confirmed(deployer, replacement)
    with pytest.raises(TransientError) as info:
        await deployer.confirm(lost)
    assert info.value.code == "tx_dropped"
    with pytest.raises(TransientError) as info:
        await deployer.broadcast(lost)
    assert info.value.code == "tx_dropped"


async def test_unfunded_signer_fails_permanently(deployer, creator):
    poor = EvmDeployer(
        chain="ethereum",
        w3=deployer.embedded.async_web3(),
        chain_id=CHAIN_ID,
        deployer_keys=[os.urandom(32)],
        factory=deployer.factory,
        embedded=None,
    )
    signed = await poor.sign(request(creator.address))
    with pytest.raises(PermanentError) as info:
        await poor.broadcast(signed)
    assert info.value.code == "insufficient_funds"


async def test_wrong_chain_and_bad_input_are_permanent(deployer, creator):
    with pytest.raises(PermanentError):
        await deployer.sign(request(creator.address, chain="solana"))
    with pytest.raises(PermanentError) as info:
        await deployer.sign(request(creator.address, symbol="bad symbol"))
    assert info.value.field == "symbol"


async def test_bad_deployer_key_never_appears_in_errors():
    key = b"\x00" * 31
    with pytest.raises(PermanentError) as info:
        await open_embedded_evm_deployer("ethereum", CHAIN_ID, None, key)
    assert info.value.code == "invalid_key"
    zero = b"\x00" * 32  # not a valid secp256k1 key
    with pytest.raises(PermanentError) as info:
        await open_embedded_evm_deployer("ethereum", CHAIN_ID, None, zero)
    assert zero.hex() not in str(info.value)


async def test_state_survives_a_restart(tmp_path, creator):
    key = os.urandom(32)
    d1 = await open_embedded_evm_deployer("base", 8453, tmp_path, key)
    req = request(creator.address, chain="base")
    signed, receipt = await launch(d1, req)
    factory = d1.factory
    await d1.close()

    d2 = await open_embedded_evm_deployer("base", 8453, tmp_path, key)
    try:
        assert d2.factory == factory  # not deployed twice
        w3 = d2.embedded.web3()
        assert w3.eth.chain_id == 8453
        assert w3.eth.block_number >= receipt.block_number
        token = w3.eth.contract(address=signed.token_address, abi=ERC20_ABI)
        assert token.functions.name().call() == req.name
        assert token.functions.balanceOf(codec.curve_address(signed.token_address)).call() == req.supply_base_units
        assert (await d2.find_existing(req)).tx_id == receipt.tx_id
        assert w3.eth.get_transaction_receipt(receipt.tx_id)["blockNumber"] == receipt.block_number

        req2 = request(creator.address, 2, chain="base")
        signed2, _ = await launch(d2, req2)
        assert signed2.nonce == signed.nonce + 1
        assert w3.eth.contract(address=signed2.token_address, abi=ERC20_ABI).functions.symbol().call() == "FT2"
    finally:
        await d2.close()


async def test_reopening_with_another_chain_id_is_refused(tmp_path):
    key = os.urandom(32)
    d = await open_embedded_evm_deployer("base", 8453, tmp_path, key)
    await d.close()
    with pytest.raises(PermanentError) as info:
        await open_embedded_evm_deployer("base", 1, tmp_path, key)
    assert info.value.code == "chain_id_mismatch"


async def test_event_loop_stays_responsive_while_the_chain_works(deployer, creator):
    signed = [await deployer.sign(request(creator.address, i)) for i in range(60)]
    for later in signed[1:]:  # queued behind a nonce gap: nothing can be mined yet
        await deployer.broadcast(later)
    gaps: list[float] = []
    stop = asyncio.Event()

    async def heartbeat():
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    # late in a long suite a full garbage collection (which stops every thread, not just the
    # loop) can take most of a second; it is not what this test measures
    gc.collect()
    gc.disable()
    try:
        beat = asyncio.create_task(heartbeat())
        started = time.perf_counter()
        await deployer.broadcast(signed[0])  # fills the gap: 60 launches execute in py-evm now
        await confirmed(deployer, signed[-1])
        busy = time.perf_counter() - started
        stop.set()
        await beat
    finally:
        gc.enable()
    # had py-evm run on the loop, one gap would span a whole block (tens of launches)
    assert busy > 0.2
    assert max(gaps) < busy / 3, (max(gaps), busy)
    assert len(gaps) > 10


async def test_a_tx_invalidated_after_admission_is_dropped_not_the_block(deployer, creator):
    embedded = deployer.embedded
    w3 = embedded.web3()
    fee = 10**11
    await embedded.run(embedded.fund, creator.address, 21_000 * fee + 10**15)
    sink = Account.create().address
    txs = [
        creator.sign_transaction(
            {
                "type": 2,
                "chainId": CHAIN_ID,
                "nonce": n,
                "to": sink,
                "value": 10**15,
                "gas": 21_000,
                "maxFeePerGas": fee,
                "maxPriorityFeePerGas": 10**9,
            }
        )
        for n in (0, 1)
    ]
    launch_signed = await deployer.sign(request(creator.address))
    # each transfer alone is affordable, so both are admitted; only one can execute. The
    # chain lock (re-entrant; the miner takes it) keeps a block from landing between them.
    with embedded.lock:
        hashes = [w3.eth.send_raw_transaction(tx.raw_transaction) for tx in txs]
    await deployer.broadcast(launch_signed)
    receipt = await confirmed(deployer, launch_signed)  # the block with the launch still lands
    first = await wait_receipt(deployer, w3, hashes[0])
    assert first["status"] == 1 and w3.eth.get_balance(sink) == 10**15
    assert pending_count(embedded) == 0
    with pytest.raises(TransactionNotFound):
        w3.eth.get_transaction_receipt(hashes[1])
    assert receipt.gas_used <= MAX_LAUNCH_GAS


@pytest.mark.slow
async def test_many_pipelined_launches(deployer, creator):
    n = 100
    started = time.perf_counter()
    results = await asyncio.gather(*(launch(deployer, request(creator.address, i)) for i in range(n)))
    elapsed = time.perf_counter() - started
    addresses = {receipt.token_address for _, receipt in results}
    assert len(addresses) == n
    assert max(receipt.gas_used for _, receipt in results) <= MAX_LAUNCH_GAS
    blocks = {receipt.block_number for _, receipt in results}
    assert len(blocks) < n / 2  # launches share blocks
    print(f"{n} launches in {elapsed:.2f}s: {n / elapsed:.1f}/s in {len(blocks)} blocks")


@pytest.mark.parametrize(
    ("name", "symbol", "decimals", "supply"),
    [("🚀" * 32, "ABCDEFGHIJ", 18, EVM_MAX_SUPPLY_BASE_UNITS), ("A", "A", 0, 1)],  # the largest and smallest launch
)
async def test_gas_target_holds_for_extreme_launches(deployer, creator, name, symbol, decimals, supply):
    req = request(creator.address, name=name, symbol=symbol, decimals=decimals, supply_base_units=supply)
    signed, receipt = await launch(deployer, req)
    assert receipt.gas_used <= MAX_EXTREME_LAUNCH_GAS, receipt.gas_used
    token = deployer.embedded.web3().eth.contract(address=signed.token_address, abi=ERC20_ABI)
    assert (token.functions.name().call(), token.functions.symbol().call()) == (name, symbol)
    assert token.functions.balanceOf(codec.curve_address(signed.token_address)).call() == supply


async def test_a_supply_beyond_the_pool_reserves_is_refused_before_signing_and_by_the_factory(deployer, creator):
    with pytest.raises(ValidationFailed) as refused:
        await deployer.sign(request(creator.address, supply_base_units=EVM_MAX_SUPPLY_BASE_UNITS + 1))
    assert refused.value.field == "supply_base_units"
    # the factory refuses it too, for whoever calls it directly
    w3 = deployer.embedded.web3()
    req = request(creator.address)
    salt, args, token = deployer.predict(req)
    data = codec.selector(codec.CREATE_TOKEN_SIGNATURE) + abi_encode(
        ["bytes32", "bytes", "address", "uint256", "uint16", "uint32", "bool"],
        [salt, args, creator.address, EVM_MAX_SUPPLY_BASE_UNITS + 1, 0, 0, False],
    )
    with pytest.raises(Exception, match="revert"):
        w3.eth.call({"to": deployer.factory.address, "data": data})  # the faucet pays a call
    assert not w3.eth.get_code(token)
