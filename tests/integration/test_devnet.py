"""``tokenforge devnet`` as a real subprocess, driven by independent clients.

EVM: web3.py's ``AsyncWeb3(AsyncHTTPProvider)`` with keys from eth-account and contracts
assembled by hand below. Solana: solana-py's ``AsyncClient`` with transactions built by
solders. Raw JSON-RPC (httpx) where a shape or an error code is the point. No TokenForge
code is used to build or read anything.
"""

from __future__ import annotations

import asyncio
import base64
import math
import subprocess
import sys
import time

import httpx
import pytest
from eth_account import Account
from solana.rpc.async_api import AsyncClient
from solana.rpc.core import RPCException
from solana.rpc.models import TxOpts
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.rpc.errors import SendTransactionPreflightFailureMessage
from solders.rpc.responses import IsBlockhashValidResp
from solders.signature import Signature
from solders.system_program import ID as SYSTEM_PROGRAM
from solders.system_program import TransferParams, transfer
from solders.transaction import Transaction
from solders.transaction_status import (
    TransactionConfirmationStatus,
    TransactionErrorFieldless,
)
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.exceptions import TransactionNotFound, Web3RPCError

from tests.support.devnet import Devnet, fund_evm, running_devnet, stop

pytestmark = pytest.mark.integration

CHAIN_ID = 31337
GWEI = 10**9
ETH = 10**18
SOL = 1_000_000_000
SIGNATURE_FEE_LAMPORTS = 5000
POLL_S = 0.02
DEADLINE_S = 30.0

# Hand-assembled contracts. Init code: copy the runtime that follows it and return it.
LOG_TOPIC = bytes.fromhex("11" * 32)
LOG_RUNTIME = bytes.fromhex("7f" + LOG_TOPIC.hex() + "6000" + "6000" + "a1" + "00")  # LOG1(0, 0, topic); STOP
REVERT_RUNTIME = bytes.fromhex(
    "63deadbeef" + "60e0" + "1b" + "6000" + "52" + "6004" + "6000" + "fd"
)  # revert 0xdeadbeef


def init_code(runtime: bytes) -> bytes:
    size = len(runtime)
    # PUSH1 size, DUP1, PUSH1 11, PUSH1 0, CODECOPY, PUSH1 0, RETURN (11 bytes)
    return bytes([0x60, size, 0x80, 0x60, 11, 0x60, 0, 0x39, 0x60, 0, 0xF3]) + runtime


@pytest.fixture(scope="module")
def devnet(tmp_path_factory) -> Devnet:
    with running_devnet(tmp_path_factory.mktemp("devnet")) as node:
        yield node


@pytest.fixture
async def w3(devnet):
    client = AsyncWeb3(AsyncHTTPProvider(devnet.evm_url("ethereum")))
    yield client
    await client.provider.disconnect()


@pytest.fixture
async def sol(devnet):
    async with AsyncClient(devnet.solana_url, timeout=10) as client:
        yield client


def b58encode(data: bytes) -> str:
    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    n, out = int.from_bytes(data, "big"), ""
    while n:
        n, r = divmod(n, 58)
        out = alphabet[r] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


async def rpc(url: str, method: str, params: list | None = None) -> dict:
    """One raw JSON-RPC call; returns the whole reply."""
    return await post(url, {"jsonrpc": "2.0", "id": 7, "method": method, "params": params or []})


async def post(url: str, body: object = None, *, content: bytes | None = None) -> object:
    async with httpx.AsyncClient(timeout=30) as client:
        reply = await client.post(url, json=body) if content is None else await client.post(url, content=content)
    return reply.json()


# ----------------------------------------------------------------------- EVM helpers
async def send_eip1559(
    w3: AsyncWeb3,
    account,
    *,
    nonce: int | None = None,
    to: str | None = None,
    value: int = 0,
    data: bytes = b"",
    gas: int = 21_000,
    max_fee: int | None = None,
    tip: int = GWEI,
) -> bytes:
    if nonce is None:
        nonce = await w3.eth.get_transaction_count(account.address, "pending")
    if max_fee is None:
        max_fee = 2 * (await w3.eth.get_block("pending"))["baseFeePerGas"] + tip
    tx = {
        "type": 2,
        "chainId": CHAIN_ID,
        "nonce": nonce,
        "value": value,
        "gas": gas,
        "data": data,
        "maxFeePerGas": max_fee,
        "maxPriorityFeePerGas": tip,
    }
    if to is not None:
        tx["to"] = to
    return await w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)


async def funded(devnet: Devnet, chain: str = "ethereum", wei: int = ETH):
    account = Account.create()
    await asyncio.to_thread(fund_evm, devnet.evm_url(chain), account.address, wei)
    return account


def node_error(exc: Web3RPCError) -> dict:
    return exc.rpc_response["error"]


# ----------------------------------------------------------------------- EVM
async def test_cli_announces_each_chain_url(devnet):
    lines = devnet.stdout().splitlines()
    for chain in ("ethereum", "bsc", "base", "solana"):
        assert any(line.split() == [chain, f"{devnet.base_url}/{chain}"] for line in lines), lines
    async with httpx.AsyncClient(base_url=devnet.base_url, timeout=30) as client:
        assert (await client.get("/health")).text == "ok"
        assert (await client.post("/polygon", json={})).status_code == 404


async def test_evm_identity_and_json_rpc_envelope(devnet):
    for chain in ("ethereum", "bsc", "base"):
        url = devnet.evm_url(chain)
        assert (await rpc(url, "eth_chainId"))["result"] == hex(CHAIN_ID)
        assert (await rpc(url, "net_version"))["result"] == str(CHAIN_ID)
    url = devnet.evm_url()
    assert (await rpc(url, "web3_clientVersion"))["result"].startswith("TokenForgeDevnet/")
    assert (await rpc(url, "eth_nope"))["error"] == {
        "code": -32601,
        "message": "the method eth_nope does not exist/is not available",
    }
    batch = await post(
        url,
        [
            {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"},
            {"jsonrpc": "2.0", "id": "two", "method": "eth_blockNumber"},
            {"jsonrpc": "2.0", "id": 3, "method": "nope_nope"},
        ],
    )
    assert [r["id"] for r in batch] == [1, "two", 3]
    assert batch[0]["result"] == hex(CHAIN_ID) and batch[1]["result"].startswith("0x")
    assert batch[2]["error"]["code"] == -32601
    assert (await post(url, content=b"{not json"))["error"]["code"] == -32700


async def test_evm_chains_are_separate(devnet):
    address = Account.create().address
    await asyncio.to_thread(fund_evm, devnet.evm_url("bsc"), address, 5 * GWEI)
    assert (await rpc(devnet.evm_url("bsc"), "eth_getBalance", [address, "latest"]))["result"] == hex(5 * GWEI)
    assert (await rpc(devnet.evm_url("ethereum"), "eth_getBalance", [address, "latest"]))["result"] == "0x0"


async def test_evm_transfer_receipt_block_and_fee_history(devnet, w3):
    assert await w3.eth.chain_id == CHAIN_ID
    sender = await funded(devnet)
    assert await w3.eth.get_balance(sender.address) == ETH
    recipient = Account.create().address
    tx_hash = await send_eip1559(w3, sender, to=recipient, value=12345)
    receipt = await w3.eth.wait_for_transaction_receipt(tx_hash, timeout=DEADLINE_S, poll_latency=POLL_S)
    assert receipt["status"] == 1 and receipt["gasUsed"] == 21_000
    assert receipt["from"] == sender.address and receipt["to"] == recipient
    assert await w3.eth.get_balance(recipient) == 12345
    fee_wei = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert await w3.eth.get_balance(sender.address) == ETH - 12345 - fee_wei
    assert await w3.eth.get_transaction_count(sender.address) == 1
    tx = await w3.eth.get_transaction(tx_hash)
    assert (tx["blockNumber"], tx["nonce"], tx["value"]) == (receipt["blockNumber"], 0, 12345)
    block = await w3.eth.get_block(receipt["blockNumber"], full_transactions=True)
    assert tx_hash in [t["hash"] for t in block["transactions"]]
    assert (await w3.eth.get_block("latest"))["number"] >= receipt["blockNumber"]

    raw = (await rpc(devnet.evm_url(), "eth_getTransactionReceipt", ["0x" + tx_hash.hex()]))["result"]
    assert raw["status"] == "0x1" and raw["type"] == "0x2" and len(raw["logsBloom"]) == 2 + 512
    assert raw["blockNumber"] == hex(receipt["blockNumber"]) and raw["logs"] == []

    newest = await w3.eth.block_number
    history = await w3.eth.fee_history(3, "latest", [10, 50, 90])
    count = min(3, newest + 1)
    assert history["oldestBlock"] == newest - count + 1
    assert len(history["baseFeePerGas"]) == count + 1  # the last one is the next block's
    assert history["baseFeePerGas"][-1] == (await w3.eth.get_block("pending"))["baseFeePerGas"]
    assert len(history["gasUsedRatio"]) == count and all(0 <= r <= 1 for r in history["gasUsedRatio"])
    assert len(history["reward"]) == count and all(len(r) == 3 for r in history["reward"])
    mined = await w3.eth.fee_history(1, receipt["blockNumber"], [50])
    assert mined["gasUsedRatio"][0] > 0 and mined["reward"][0][0] > 0  # our transfer paid a tip
    shape = (await rpc(devnet.evm_url(), "eth_feeHistory", ["0x2", "latest", []]))["result"]
    assert set(shape) >= {"oldestBlock", "baseFeePerGas", "gasUsedRatio"}
    assert all(fee.startswith("0x") for fee in shape["baseFeePerGas"])
    assert await w3.eth.max_priority_fee > 0 and await w3.eth.gas_price > 0


async def test_evm_replacement_drop_and_node_refusals(devnet, w3):
    sender = await funded(devnet)
    max_fee, tip = 50 * GWEI, 2 * GWEI
    # nonce 1 while nonce 0 is missing: the transaction waits in the pool (a nonce gap)
    first = await send_eip1559(w3, sender, nonce=1, to=sender.address, value=1, max_fee=max_fee, tip=tip)
    assert (await w3.eth.get_transaction(first))["blockNumber"] is None
    assert await w3.eth.get_transaction_count(sender.address, "pending") == 0

    with pytest.raises(Web3RPCError) as same:
        await send_eip1559(w3, sender, nonce=1, to=sender.address, value=1, max_fee=max_fee, tip=tip)
    assert node_error(same.value) == {"code": -32000, "message": "already known"}
    for bump in (1.0, 1.05):
        with pytest.raises(Web3RPCError) as low:
            await send_eip1559(
                w3, sender, nonce=1, to=sender.address, value=2, max_fee=int(max_fee * bump), tip=int(tip * bump)
            )
        assert node_error(low.value) == {"code": -32000, "message": "replacement transaction underpriced"}

    second = await send_eip1559(
        w3, sender, nonce=1, to=sender.address, value=3, max_fee=math.ceil(max_fee * 1.1), tip=math.ceil(tip * 1.1)
    )
    with pytest.raises(TransactionNotFound):
        await w3.eth.get_transaction(first)  # replaced
    assert (await w3.eth.get_transaction(second))["value"] == 3

    dropped = await w3.provider.make_request("hardhat_dropTransaction", ["0x" + second.hex()])
    assert dropped["result"] is True
    with pytest.raises(TransactionNotFound):
        await w3.eth.get_transaction(second)
    again = await w3.provider.make_request("hardhat_dropTransaction", ["0x" + second.hex()])
    assert again["result"] is False

    zero = await send_eip1559(w3, sender, nonce=0, to=sender.address, value=0)
    await w3.eth.wait_for_transaction_receipt(zero, timeout=DEADLINE_S, poll_latency=POLL_S)
    assert await w3.eth.get_transaction_count(sender.address, "pending") == 1  # nothing left at nonce 1
    mined = await w3.provider.make_request("hardhat_dropTransaction", ["0x" + zero.hex()])
    assert mined["error"]["code"] == -32602 and "already mined" in mined["error"]["message"]
    with pytest.raises(Web3RPCError) as reused:
        await send_eip1559(w3, sender, nonce=0, to=sender.address, value=0)
    assert node_error(reused.value)["message"].startswith("nonce too low")
    poor = Account.create()
    with pytest.raises(Web3RPCError) as broke:
        await send_eip1559(w3, poor, nonce=0, to=sender.address, value=1)
    assert node_error(broke.value)["message"].startswith("insufficient funds for gas * price + value")


async def test_evm_mine_and_set_balance(devnet, w3):
    before = await w3.eth.block_number
    assert (await w3.provider.make_request("evm_mine", []))["result"] == "0x0"
    assert await w3.eth.block_number == before + 1
    address = Account.create().address
    assert (await w3.provider.make_request("anvil_setBalance", [address, hex(7)]))["result"] is None
    assert await w3.eth.get_balance(address) == 7
    await asyncio.to_thread(fund_evm, devnet.evm_url(), address, 3)  # setBalance can lower a balance too
    assert await w3.eth.get_balance(address) == 3


async def test_evm_contract_code_logs_and_reverts(devnet, w3):
    deployer = await funded(devnet)
    create = await send_eip1559(w3, deployer, data=init_code(LOG_RUNTIME), gas=200_000)
    created = await w3.eth.wait_for_transaction_receipt(create, timeout=DEADLINE_S, poll_latency=POLL_S)
    emitter = created["contractAddress"]
    assert await w3.eth.get_code(emitter) == LOG_RUNTIME
    estimate = await w3.eth.estimate_gas({"from": deployer.address, "to": emitter})
    assert 21_000 < estimate < 100_000
    call = await send_eip1559(w3, deployer, to=emitter, gas=estimate)
    receipt = await w3.eth.wait_for_transaction_receipt(call, timeout=DEADLINE_S, poll_latency=POLL_S)
    (log,) = receipt["logs"]
    assert log["address"] == emitter and log["topics"] == [LOG_TOPIC] and log["removed"] is False
    logs = await w3.eth.get_logs(
        {
            "fromBlock": created["blockNumber"],
            "toBlock": "latest",
            "address": emitter,
            "topics": ["0x" + LOG_TOPIC.hex()],
        }
    )
    assert [(entry["transactionHash"], entry["blockNumber"], entry["logIndex"]) for entry in logs] == [
        (call, receipt["blockNumber"], log["logIndex"])
    ]
    assert (
        await w3.eth.get_logs(
            {"fromBlock": receipt["blockNumber"], "toBlock": receipt["blockNumber"], "topics": ["0x" + "22" * 32]}
        )
        == []
    )
    assert (await w3.eth.get_block(receipt["blockNumber"]))["logsBloom"] != b"\0" * 256

    create = await send_eip1559(w3, deployer, data=init_code(REVERT_RUNTIME), gas=200_000)
    reverter = (await w3.eth.wait_for_transaction_receipt(create, timeout=DEADLINE_S, poll_latency=POLL_S))[
        "contractAddress"
    ]
    reply = await rpc(devnet.evm_url(), "eth_call", [{"to": reverter, "data": "0x"}, "latest"])
    assert reply["error"] == {"code": 3, "message": "execution reverted", "data": "0xdeadbeef"}


# ----------------------------------------------------------------------- Solana helpers
def transfer_tx(payer: Keypair, to: Pubkey, lamports: int, blockhash: Hash) -> Transaction:
    ix = transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=to, lamports=lamports))
    return Transaction([payer], Message([ix], payer.pubkey()), blockhash)


async def wait_finalized(client: AsyncClient, signature: Signature):
    deadline = time.monotonic() + DEADLINE_S
    while True:
        (status,) = (await client.get_signature_statuses([signature], search_transaction_history=True)).value
        if status is not None and status.confirmation_status is not None:
            return status
        assert time.monotonic() < deadline, f"{signature} not confirmed"
        await asyncio.sleep(POLL_S)


async def blockhash_valid(url: str, blockhash: Hash) -> bool:
    """``isBlockhashValid`` (solana-py has no helper for it), parsed with solders' response type."""
    async with httpx.AsyncClient(timeout=30) as client:
        reply = await client.post(
            url,
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "isBlockhashValid",
                "params": [str(blockhash), {"commitment": "confirmed"}],
            },
        )
    return IsBlockhashValidResp.from_json(reply.text).value


async def airdropped(client: AsyncClient, lamports: int = 10 * SOL) -> Keypair:
    payer = Keypair()
    signature = (await client.request_airdrop(payer.pubkey(), lamports)).value
    await wait_finalized(client, signature)
    return payer


# ----------------------------------------------------------------------- Solana
async def test_solana_identity(devnet, sol):
    assert await sol.is_connected()
    assert (await sol.get_version()).value.solana_core
    genesis = (await sol.get_genesis_hash()).value
    assert genesis == (await sol.get_genesis_hash()).value
    slot = (await sol.get_slot()).value
    height = (await sol.get_block_height()).value
    assert height >= slot  # the devnet skips no slots; height was read after slot
    latest = (await sol.get_latest_blockhash()).value
    assert latest.last_valid_block_height >= height + 150
    assert (await blockhash_valid(devnet.solana_url, latest.blockhash)) is True
    assert (await sol.get_minimum_balance_for_rent_exemption(0)).value > 0
    assert (await rpc(devnet.solana_url, "getNope"))["error"] == {"code": -32601, "message": "Method not found"}


async def test_solana_transfer_lifecycle(devnet, sol):
    payer = await airdropped(sol)
    assert (await sol.get_balance(payer.pubkey())).value == 10 * SOL
    recipient = Keypair().pubkey()
    assert (await sol.get_account_info(recipient)).value is None

    blockhash = (await sol.get_latest_blockhash()).value.blockhash
    tx = transfer_tx(payer, recipient, 2 * SOL, blockhash)
    signature = (await sol.send_raw_transaction(bytes(tx))).value
    assert signature == tx.signatures[0]
    status = await wait_finalized(sol, signature)
    assert status.err is None and status.confirmations is None
    assert status.confirmation_status == TransactionConfirmationStatus.Finalized

    fetched = (await sol.get_transaction(signature, max_supported_transaction_version=0)).value
    assert fetched.slot == status.slot and fetched.block_time is not None
    meta = fetched.transaction.meta
    assert meta.fee == SIGNATURE_FEE_LAMPORTS and meta.err is None
    assert fetched.transaction.transaction.signatures == [signature]
    assert meta.pre_balances[:2] == [10 * SOL, 0]
    assert meta.post_balances[:2] == [8 * SOL - SIGNATURE_FEE_LAMPORTS, 2 * SOL]
    encoded = (await sol.get_transaction(signature, encoding="base64")).value
    assert bytes(encoded.transaction.transaction) == bytes(tx)

    account = (await sol.get_account_info(recipient)).value
    assert (account.lamports, account.owner, account.data, account.executable) == (2 * SOL, SYSTEM_PROGRAM, b"", False)
    assert (await sol.get_balance(payer.pubkey())).value == 8 * SOL - SIGNATURE_FEE_LAMPORTS

    second = transfer_tx(payer, recipient, 1, (await sol.get_latest_blockhash()).value.blockhash)
    second_sig = (
        await sol.send_raw_transaction(
            bytes(second), TxOpts(skip_preflight=True, skip_confirmation=False, preflight_commitment="confirmed")
        )
    ).value
    listed = (await sol.get_signatures_for_address(recipient)).value
    assert [entry.signature for entry in listed] == [second_sig, signature]  # newest first
    assert all(
        entry.err is None and entry.confirmation_status == TransactionConfirmationStatus.Finalized for entry in listed
    )
    assert [e.signature for e in (await sol.get_signatures_for_address(recipient, limit=1)).value] == [second_sig]
    assert [e.signature for e in (await sol.get_signatures_for_address(recipient, before=second_sig)).value] == [
        signature
    ]
    assert any(e.signature == signature for e in (await sol.get_signatures_for_address(payer.pubkey())).value)

    # resending is harmless: with preflight the node says it is already processed, without it
    # the signature comes back; nothing runs twice
    with pytest.raises(RPCException) as resent:
        await sol.send_raw_transaction(bytes(tx))
    err = resent.value.args[0]
    assert isinstance(err, SendTransactionPreflightFailureMessage)
    assert err.message == "Transaction simulation failed: This transaction has already been processed"
    assert err.data.err == TransactionErrorFieldless.AlreadyProcessed
    assert (await sol.send_raw_transaction(bytes(tx), TxOpts(skip_preflight=True))).value == signature
    assert (await sol.get_balance(recipient)).value == 2 * SOL + 1

    # the same transaction in base58, as older clients send it
    third = transfer_tx(payer, recipient, 2, (await sol.get_latest_blockhash()).value.blockhash)
    assert b58encode(bytes(third.signatures[0])) == str(third.signatures[0])  # the test's encoder agrees with solders
    reply = await rpc(devnet.solana_url, "sendTransaction", [b58encode(bytes(third))])
    assert reply["result"] == str(third.signatures[0])


async def test_solana_failed_transaction_with_and_without_preflight(devnet, sol):
    payer = await airdropped(sol, SOL)
    recipient = Keypair().pubkey()
    blockhash = (await sol.get_latest_blockhash()).value.blockhash
    too_much = transfer_tx(payer, recipient, 5 * SOL, blockhash)
    with pytest.raises(RPCException) as refused:
        await sol.send_raw_transaction(bytes(too_much))
    err = refused.value.args[0]
    assert err.message == "Transaction simulation failed: Error processing Instruction 0: custom program error: 0x1"
    assert err.data.logs and err.data.units_consumed > 0
    assert (await sol.get_signature_statuses([too_much.signatures[0]])).value == [None]  # did not land

    signature = (await sol.send_raw_transaction(bytes(too_much), TxOpts(skip_preflight=True))).value
    status = await wait_finalized(sol, signature)
    assert status.err is not None
    raw = (await rpc(devnet.solana_url, "getSignatureStatuses", [[str(signature)]]))["result"]["value"][0]
    assert raw["err"] == {"InstructionError": [0, {"Custom": 1}]} and raw["status"] == {"Err": raw["err"]}
    meta = (await sol.get_transaction(signature)).value.transaction.meta
    assert meta.fee == SIGNATURE_FEE_LAMPORTS and meta.err is not None
    assert (await sol.get_balance(payer.pubkey())).value == SOL - SIGNATURE_FEE_LAMPORTS  # paid the fee only
    listed = (await sol.get_signatures_for_address(recipient)).value
    assert [(e.signature, e.err is not None) for e in listed] == [(signature, True)]


async def test_solana_expired_blockhash_is_refused(tmp_path):
    with running_devnet(tmp_path, slot_ms=10, chains="solana") as node:
        async with AsyncClient(node.solana_url, timeout=10) as client:
            payer = await airdropped(client)
            latest = (await client.get_latest_blockhash()).value
            tx = transfer_tx(payer, Keypair().pubkey(), SOL, latest.blockhash)
            started = time.monotonic()
            while (await client.get_block_height()).value <= latest.last_valid_block_height:
                assert time.monotonic() - started < DEADLINE_S
                await asyncio.sleep(POLL_S)
            assert time.monotonic() - started < 10  # 150 slots of 10 ms
            assert (await blockhash_valid(node.solana_url, latest.blockhash)) is False
            with pytest.raises(RPCException) as expired:
                await client.send_raw_transaction(bytes(tx))
            err = expired.value.args[0]
            assert isinstance(err, SendTransactionPreflightFailureMessage)
            assert err.message == "Transaction simulation failed: Blockhash not found"
            assert err.data.err == TransactionErrorFieldless.BlockhashNotFound
            reply = await rpc(
                node.solana_url, "sendTransaction", [base64.b64encode(bytes(tx)).decode(), {"encoding": "base64"}]
            )
            assert reply["error"]["code"] == -32002 and reply["error"]["data"]["err"] == "BlockhashNotFound"
            # without preflight a node forwards it; it can never land
            assert (await client.send_raw_transaction(bytes(tx), TxOpts(skip_preflight=True))).value == tx.signatures[0]
            assert (await client.get_signature_statuses([tx.signatures[0]])).value == [None]
            assert (await client.get_balance(payer.pubkey())).value == 10 * SOL


# ----------------------------------------------------------------------- process
async def test_state_persists_across_restart(tmp_path):
    chains = "ethereum,solana"
    address = Account.create().address
    with running_devnet(tmp_path, chains=chains) as first:
        await asyncio.to_thread(fund_evm, first.evm_url(), address, 123 * GWEI)
        block = int((await rpc(first.evm_url(), "eth_blockNumber"))["result"], 16)
        async with AsyncClient(first.solana_url, timeout=10) as client:
            payer = await airdropped(client, 3 * SOL)
            recipient = Keypair().pubkey()
            tx = transfer_tx(payer, recipient, SOL, (await client.get_latest_blockhash()).value.blockhash)
            signature = (await client.send_raw_transaction(bytes(tx))).value
            await wait_finalized(client, signature)
            slot = (await client.get_slot()).value
            genesis = (await client.get_genesis_hash()).value
        # a second devnet on the same state is refused while the first runs
        clash = await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                "-m",
                "tokenforge",
                "devnet",
                "--port",
                "0",
                "--data-dir",
                str(first.data_dir),
                "--chains",
                chains,
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert clash.returncode == 2 and "in use" in clash.stderr
    assert first.process.returncode == 0  # SIGTERM stops it cleanly

    with running_devnet(tmp_path, chains=chains) as second:
        assert (await rpc(second.evm_url(), "eth_getBalance", [address, "latest"]))["result"] == hex(123 * GWEI)
        assert int((await rpc(second.evm_url(), "eth_blockNumber"))["result"], 16) == block
        async with AsyncClient(second.solana_url, timeout=10) as client:
            assert (await client.get_genesis_hash()).value == genesis
            assert (await client.get_slot()).value > slot
            assert (await client.get_balance(recipient)).value == SOL
            (status,) = (await client.get_signature_statuses([signature])).value
            assert status is not None and status.err is None
            assert (await client.get_transaction(signature)).value.transaction.meta.fee == SIGNATURE_FEE_LAMPORTS
            assert [e.signature for e in (await client.get_signatures_for_address(recipient)).value] == [signature]
        assert stop(second.process) == 0


async def test_in_memory_devnet_writes_no_state(tmp_path):
    with running_devnet(tmp_path, chains="base,solana", in_memory=True) as node:
        assert (await rpc(node.evm_url("base"), "eth_chainId"))["result"] == hex(CHAIN_ID)
        assert (await rpc(node.solana_url, "getHealth"))["result"] == "ok"
    assert not node.data_dir.exists()
