"""RpcSolanaTransport and open_rpc_solana_deployer against a scripted JSON-RPC node (aiohttp, local port).

Each test scripts the node's answers per method and checks what the transport asks and
how it reads (or translates) the answers.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import traceback
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from solana.rpc.async_api import AsyncClient
from solana.rpc.core import RPCException
from solders.hash import Hash
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.rpc.errors import NodeUnhealthy, NodeUnhealthyMessage
from solders.rpc.responses import SendTransactionResp
from solders.signature import Signature

from tokenforge.chains.solana.open import open_rpc_solana_deployer
from tokenforge.chains.solana.rpc_transport import (
    SIGNATURES_MAX_PAGES,
    SIGNATURES_PAGE_LIMIT,
    RpcSolanaTransport,
    parse_transaction_error,
    translate_rpc_failure,
)
from tokenforge.chains.solana.transport import SendOutcome
from tokenforge.errors import PermanentError, TokenForgeError, TransientError

SECRET = "s3cr3t-api-key"
Answer = Callable[[list], Any]


class Reply:
    """An answer other than a JSON-RPC result."""

    def __init__(
        self,
        *,
        error: dict | None = None,
        status: int = 200,
        body: str | None = None,
        headers: dict | None = None,
        hang: bool = False,
    ) -> None:
        self.error, self.status, self.body, self.headers, self.hang = error, status, body, headers or {}, hang


class StubNode:
    """Answers JSON-RPC requests from ``answers[method]`` (a value, a Reply, or a callable of params)."""

    def __init__(self) -> None:
        self.answers: dict[str, Any] = {}
        self.requests: list[dict] = []
        self._stop = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    def calls(self, method: str) -> list[list]:
        return [r.get("params") for r in self.requests if r["method"] == method]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/solana?api-key={SECRET}"

    async def stop(self) -> None:
        self._stop.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        answer = self.answers.get(body["method"])
        if callable(answer):
            answer = answer(body.get("params"))
        if isinstance(answer, Reply):
            if answer.hang:
                await self._stop.wait()
            if answer.body is not None or answer.status != 200:
                return web.Response(status=answer.status, text=answer.body or "", headers=answer.headers)
            return web.json_response({"jsonrpc": "2.0", "id": body["id"], "error": answer.error})
        return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": answer})


@pytest.fixture
async def node():
    n = StubNode()
    await n.start()
    yield n
    await n.stop()


@pytest.fixture
async def transport(node):
    t = RpcSolanaTransport(AsyncClient(node.url, timeout=2))
    yield t
    await t.close()


def _ctx(value: Any) -> dict:
    return {"context": {"slot": 100}, "value": value}


def _error(code: int, message: str, data: Any = None) -> Reply:
    error = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return Reply(error=error)


def _preflight(err: Any, message: str = "Transaction simulation failed") -> Reply:
    return _error(-32002, message, {"err": err, "logs": [], "accounts": None, "unitsConsumed": 0})


SIG = Signature.new_unique()
SIG2 = Signature.new_unique()
SIG3 = Signature.new_unique()


def _tx(slot: int, fee: int, err: Any = None) -> dict:
    return {"slot": slot, "blockTime": 1, "meta": {"fee": fee, "err": err, "logMessages": []}, "transaction": {}}


def _status(level: str | None, err: Any = None, confirmations: Any = 0) -> dict:
    return {"slot": 7, "confirmations": confirmations, "err": err, "status": {"Ok": None}, "confirmationStatus": level}


# ----------------------------------------------------------------------- reads
async def test_latest_blockhash_at_the_commitment(node, transport):
    blockhash = Hash.new_unique()
    node.answers["getLatestBlockhash"] = _ctx({"blockhash": str(blockhash), "lastValidBlockHeight": 1234})
    assert await transport.latest_blockhash() == (blockhash, 1234)
    assert await transport.latest_blockhash() == (blockhash, 1234)
    assert node.calls("getLatestBlockhash") == [[{"commitment": "confirmed"}]] * 2  # never cached


async def test_simple_reads(node, transport):
    owner, address = Pubkey.new_unique(), Pubkey.new_unique()
    node.answers.update(
        {
            "getBlockHeight": 99,
            "getBalance": _ctx(5_000),
            "getMinimumBalanceForRentExemption": 2_039_280,
            "getAccountInfo": _ctx(
                {
                    "data": [base64.b64encode(b"\x01\x02").decode(), "base64"],
                    "owner": str(owner),
                    "lamports": 7,
                    "executable": False,
                    "rentEpoch": 0,
                    "space": 2,
                }
            ),
            "requestAirdrop": str(SIG),
        }
    )
    assert await transport.block_height() == 99
    assert await transport.get_balance(address) == 5_000
    assert await transport.minimum_balance_for_rent_exemption(165) == 2_039_280
    account = await transport.get_account(address)
    assert (account.lamports, account.owner, account.data) == (7, owner, b"\x01\x02")
    assert await transport.request_airdrop(address, 10) == SIG
    assert node.calls("getAccountInfo") == [[str(address), {"encoding": "base64", "commitment": "confirmed"}]]
    assert node.calls("getMinimumBalanceForRentExemption") == [[165, {"commitment": "confirmed"}]]
    node.answers["getAccountInfo"] = _ctx(None)
    assert await transport.get_account(address) is None


# ----------------------------------------------------------------------- send
async def test_send_skips_preflight(node, transport):
    node.answers["sendTransaction"] = str(SIG)
    assert await transport.send_raw_transaction(b"\x01raw") is SendOutcome.ACCEPTED
    [(encoded, config)] = node.calls("sendTransaction")
    assert base64.b64decode(encoded) == b"\x01raw"
    assert config == {"encoding": "base64", "skipPreflight": True, "preflightCommitment": "confirmed"}


@pytest.mark.parametrize(
    ("reply", "outcome"),
    [
        (
            _preflight(
                "AlreadyProcessed", "Transaction simulation failed: This transaction has already been processed"
            ),
            SendOutcome.ALREADY_PROCESSED,
        ),
        (_error(-32000, "This transaction has already been processed"), SendOutcome.ALREADY_PROCESSED),
        (
            _preflight("BlockhashNotFound", "Transaction simulation failed: Blockhash not found"),
            SendOutcome.BLOCKHASH_NOT_FOUND,
        ),
        (_error(-32000, "Blockhash not found"), SendOutcome.BLOCKHASH_NOT_FOUND),
    ],
    ids=["already-structured", "already-text", "blockhash-structured", "blockhash-text"],
)
async def test_send_outcomes(node, transport, reply, outcome):
    node.answers["sendTransaction"] = reply
    assert await transport.send_raw_transaction(b"tx") is outcome


SEND_FAILURES = [
    (_error(-32003, "Transaction signature verification failure"), PermanentError, "invalid_signature"),
    (
        _error(-32602, "failed to deserialize solana_transaction::versioned::VersionedTransaction: io error"),
        PermanentError,
        "invalid_transaction",
    ),
    (_preflight("InsufficientFundsForFee"), PermanentError, "insufficient_funds"),
    (_preflight("AccountNotFound"), PermanentError, "insufficient_funds"),
    (_preflight({"InstructionError": [0, {"Custom": 1}]}), PermanentError, "tx_failed"),
    (_preflight("WouldExceedMaxBlockCostLimit"), TransientError, "rpc_busy"),
    (_error(-32005, "Node is behind by 42 slots", {"numSlotsBehind": 42}), TransientError, "rpc_node_unhealthy"),
    (_error(-32005, "Node is unhealthy"), TransientError, "rpc_node_unhealthy"),
    (_error(-32603, "Internal error"), TransientError, "rpc_internal_error"),
    (_error(429, "Too many requests for a specific RPC call"), TransientError, "rate_limited"),
    (_error(-32000, "something the node made up"), TransientError, "rpc_error"),
    (_error(-32601, "Method not found"), PermanentError, "rpc_method_unsupported"),
    (Reply(status=503, body="unavailable"), TransientError, "rpc_unavailable"),
    (Reply(status=502, body="bad gateway"), TransientError, "rpc_unavailable"),
    (Reply(status=429, body="slow down", headers={"Retry-After": "3"}), TransientError, "rate_limited"),
    (Reply(status=403, body="forbidden"), TransientError, "rpc_http_error"),
    (Reply(body="<html>not json-rpc</html>"), TransientError, "rpc_bad_response"),
]


@pytest.mark.parametrize(("reply", "kind", "code"), SEND_FAILURES)
async def test_send_failures_are_translated(node, transport, reply, kind, code):
    node.answers["sendTransaction"] = reply
    with pytest.raises(kind) as info:
        await transport.send_raw_transaction(b"tx")
    assert info.value.code == code
    assert "sendTransaction" in info.value.message
    if code == "rate_limited" and reply.status == 429:
        assert info.value.retry_after_s == 3.0


async def test_http_errors_do_not_leak_the_endpoint_url(node, transport):
    node.answers["getBlockHeight"] = Reply(status=503, body="down")
    with pytest.raises(TransientError) as info:
        await transport.block_height()
    rendered = "".join(traceback.format_exception(info.value))
    assert SECRET not in rendered and "127.0.0.1" not in rendered
    assert info.value.__cause__ is None


async def test_unreachable_node_is_transient():
    t = RpcSolanaTransport(AsyncClient(f"http://127.0.0.1:9/solana?api-key={SECRET}", timeout=2))
    try:
        with pytest.raises(TransientError) as info:
            await t.block_height()
        assert info.value.code == "rpc_unavailable" and SECRET not in str(info.value)
    finally:
        await t.close()


async def test_timeout_is_transient(node):
    node.answers["getBlockHeight"] = Reply(hang=True)
    t = RpcSolanaTransport(AsyncClient(node.url, timeout=0.2, max_transport_retries=0))
    try:
        with pytest.raises(TransientError) as info:
            await t.block_height()
        assert info.value.code == "rpc_timeout"
    finally:
        await t.close()


async def test_unexpected_answer_shape_is_transient(node, transport):
    node.answers["getLatestBlockhash"] = _ctx({"blockhash": "not base58 !"})
    with pytest.raises(TransientError) as info:
        await transport.latest_blockhash()
    assert info.value.code == "rpc_bad_response"


class _RaisingClient:
    """A client whose HTTP layer raises TokenForge errors itself (like a pooled provider)."""

    def __init__(self, exc: BaseException) -> None:
        self.exc, self.closed = exc, False

    async def send_rpc_request(self, request, result_type, **_):
        raise self.exc

    async def close(self):
        self.closed = True


async def test_tokenforge_errors_pass_through():
    own = TransientError("every endpoint is down", code="rpc_unavailable", retry_after_s=1.5)
    t = RpcSolanaTransport(_RaisingClient(own))  # type: ignore[arg-type]
    for call in (t.block_height(), t.send_raw_transaction(b"tx"), t.get_transaction_status(SIG)):
        with pytest.raises(TransientError) as info:
            await call
        assert info.value is own
    await t.close()
    assert t.client.closed


def test_typed_client_errors_are_translated_too():
    # solana-py's typed helpers raise RPCException around a solders error object.
    exc = RPCException(NodeUnhealthyMessage("Node is behind by 3 slots", NodeUnhealthy(3)))
    err = translate_rpc_failure(exc, "getBalance")
    assert isinstance(err, TransientError) and err.code == "rpc_node_unhealthy"
    assert isinstance(translate_rpc_failure(RuntimeError("?"), "getBalance"), TransientError)
    for err, kind, code in [
        ({"InstructionError": [2, {"Custom": 1}]}, PermanentError, "tx_failed"),
        ("InsufficientFundsForFee", PermanentError, "insufficient_funds"),
        ("AccountInUse", TransientError, "rpc_busy"),
    ]:
        answer = {
            "jsonrpc": "2.0",
            "id": 0,
            "error": {"code": -32002, "message": "Transaction simulation failed", "data": {"err": err, "logs": []}},
        }
        translated = translate_rpc_failure(
            RPCException(SendTransactionResp.from_json(json.dumps(answer))), "sendTransaction"
        )
        assert isinstance(translated, kind) and translated.code == code


class _TypedErrorClient(_RaisingClient):
    """Raises what solana-py's typed helpers raise: RPCException around a solders error."""

    def __init__(self, err: str, message: str) -> None:
        answer = {
            "jsonrpc": "2.0",
            "id": 0,
            "error": {"code": -32002, "message": message, "data": {"err": err, "logs": []}},
        }
        super().__init__(RPCException(SendTransactionResp.from_json(json.dumps(answer))))


async def test_typed_client_send_outcomes():
    blockhash = RpcSolanaTransport(_TypedErrorClient("BlockhashNotFound", "Blockhash not found"))  # type: ignore[arg-type]
    assert await blockhash.send_raw_transaction(b"tx") is SendOutcome.BLOCKHASH_NOT_FOUND
    known = RpcSolanaTransport(_TypedErrorClient("AlreadyProcessed", "already processed"))  # type: ignore[arg-type]
    assert await known.send_raw_transaction(b"tx") is SendOutcome.ALREADY_PROCESSED


def test_invalid_commitment():
    with pytest.raises(PermanentError):
        RpcSolanaTransport(_RaisingClient(RuntimeError()), commitment="soon")  # type: ignore[arg-type]


# ----------------------------------------------------------------------- statuses
async def test_status_unknown_is_none(node, transport):
    node.answers["getSignatureStatuses"] = _ctx([None])
    assert await transport.get_transaction_status(SIG) is None
    assert node.calls("getSignatureStatuses") == [[[str(SIG)], {"searchTransactionHistory": True}]]
    assert node.calls("getTransaction") == []


async def test_status_below_commitment_is_pending(node, transport):
    node.answers["getSignatureStatuses"] = _ctx([_status("processed")])
    assert await transport.get_transaction_status(SIG) is None
    assert node.calls("getTransaction") == []


@pytest.mark.parametrize("level", ["confirmed", "finalized"])
async def test_status_reached_reads_fee_once(node, transport, level):
    node.answers["getSignatureStatuses"] = _ctx([_status(level)])
    node.answers["getTransaction"] = _tx(slot=42, fee=15_000)
    status = await transport.get_transaction_status(SIG)
    assert (status.signature, status.slot, status.fee_lamports, status.err) == (SIG, 42, 15_000, None)
    assert node.calls("getTransaction") == [
        [str(SIG), {"encoding": "json", "maxSupportedTransactionVersion": 0, "commitment": "confirmed"}]
    ]


async def test_status_without_transaction_yet_is_pending(node, transport):
    node.answers["getSignatureStatuses"] = _ctx([_status("confirmed")])
    node.answers["getTransaction"] = None  # the node lags between the two indexes
    assert await transport.get_transaction_status(SIG) is None


async def test_failed_transaction_fields(node, transport):
    err = {"InstructionError": [2, {"Custom": 1}]}
    node.answers["getSignatureStatuses"] = _ctx([_status("confirmed", err=err)])
    node.answers["getTransaction"] = _tx(slot=9, fee=10_000, err=err)
    status = await transport.get_transaction_status(SIG)
    assert (status.instruction_index, status.custom_code, status.fee_lamports) == (2, 1, 10_000)
    assert status.err == "instruction 2 failed: custom program error 1"


async def test_finalized_commitment_waits_for_finalized(node):
    t = RpcSolanaTransport(AsyncClient(node.url), commitment="finalized")
    try:
        node.answers["getSignatureStatuses"] = _ctx([_status("confirmed")])
        assert await t.get_transaction_status(SIG) is None
        node.answers["getSignatureStatuses"] = _ctx([_status(None, confirmations=None)])  # old node: rooted
        node.answers["getTransaction"] = _tx(slot=3, fee=5_000)
        assert (await t.get_transaction_status(SIG)).slot == 3
        assert node.calls("getTransaction")[0][1]["commitment"] == "finalized"
    finally:
        await t.close()


async def test_processed_commitment_reads_history_at_confirmed(node):
    t = RpcSolanaTransport(AsyncClient(node.url), commitment="processed")
    try:
        node.answers["getSignatureStatuses"] = _ctx([_status("processed")])
        node.answers["getTransaction"] = _tx(slot=3, fee=5_000)
        node.answers["getSignaturesForAddress"] = []
        assert (await t.get_transaction_status(SIG)).fee_lamports == 5_000
        await t.signatures_for_address(Pubkey.new_unique())
        assert node.calls("getTransaction")[0][1]["commitment"] == "confirmed"
        assert node.calls("getSignaturesForAddress")[0][1]["commitment"] == "confirmed"
    finally:
        await t.close()


@pytest.mark.parametrize(
    ("err", "expected"),
    [
        (None, (None, None, None)),
        ({"InstructionError": [4, {"Custom": 1}]}, ("instruction 4 failed: custom program error 1", 4, 1)),
        ({"InstructionError": [0, "InvalidAccountData"]}, ("instruction 0 failed: InvalidAccountData", 0, None)),
        ({"InstructionError": [1, {"BorshIoError": "x"}]}, ("instruction 1 failed: BorshIoError: x", 1, None)),
        (
            {"InsufficientFundsForRent": {"account_index": 2}},
            ("InsufficientFundsForRent: {'account_index': 2}", None, None),
        ),
        ("AccountInUse", ("AccountInUse", None, None)),
    ],
)
def test_parse_transaction_error(err, expected):
    assert parse_transaction_error(err) == expected


# ----------------------------------------------------------------------- history
def _sig_entry(sig: Signature, err: Any = None) -> dict:
    return {
        "signature": str(sig),
        "slot": 1,
        "err": err,
        "memo": None,
        "blockTime": 1,
        "confirmationStatus": "finalized",
    }


async def test_signatures_oldest_first_up_to_the_first_success(node, transport):
    failed = {"InstructionError": [0, {"Custom": 1}]}
    # newest first, as the node lists them: a later failed retry, the launch, an earlier failure
    node.answers["getSignaturesForAddress"] = [_sig_entry(SIG3, failed), _sig_entry(SIG2), _sig_entry(SIG, failed)]
    fees = {str(SIG): _tx(1, 5_000, failed), str(SIG2): _tx(2, 10_000), str(SIG3): _tx(3, 5_000, failed)}
    node.answers["getTransaction"] = lambda params: fees[params[0]]
    statuses = await transport.signatures_for_address(Pubkey.new_unique())
    assert [(s.signature, s.slot, s.fee_lamports, s.err is None) for s in statuses] == [
        (SIG, 1, 5_000, False),
        (SIG2, 2, 10_000, True),
    ]
    assert [p[0] for p in node.calls("getTransaction")] == [str(SIG), str(SIG2)]  # not the later retry


async def test_signatures_follow_pages(node, transport):
    first = [_sig_entry(Signature.new_unique()) for _ in range(SIGNATURES_PAGE_LIMIT)]
    node.answers["getSignaturesForAddress"] = lambda params: first if "before" not in params[1] else [_sig_entry(SIG)]
    node.answers["getTransaction"] = _tx(1, 5_000)
    statuses = await transport.signatures_for_address(Pubkey.new_unique())
    assert [s.signature for s in statuses] == [SIG]
    assert node.calls("getSignaturesForAddress")[1][1]["before"] == first[-1]["signature"]


async def test_signatures_give_up_on_endless_history(node, transport):
    page = [_sig_entry(Signature.new_unique()) for _ in range(SIGNATURES_PAGE_LIMIT)]
    node.answers["getSignaturesForAddress"] = page
    assert await transport.signatures_for_address(Pubkey.new_unique()) == []
    assert len(node.calls("getSignaturesForAddress")) == SIGNATURES_MAX_PAGES
    assert node.calls("getTransaction") == []


async def test_signatures_listed_but_not_served_is_transient(node, transport):
    node.answers["getSignaturesForAddress"] = [_sig_entry(SIG)]
    node.answers["getTransaction"] = None
    with pytest.raises(TransientError) as info:
        await transport.signatures_for_address(Pubkey.new_unique())
    assert info.value.code == "rpc_lagging"


async def test_every_error_is_a_tokenforge_error(node, transport):
    for method in (
        "getLatestBlockhash",
        "getSignatureStatuses",
        "getBlockHeight",
        "getAccountInfo",
        "getSignaturesForAddress",
        "getMinimumBalanceForRentExemption",
        "getBalance",
        "requestAirdrop",
    ):
        node.answers[method] = Reply(body=json.dumps({"unexpected": True}))
    key = Keypair().pubkey()
    for call in (
        transport.latest_blockhash(),
        transport.get_transaction_status(SIG),
        transport.block_height(),
        transport.get_account(key),
        transport.signatures_for_address(key),
        transport.minimum_balance_for_rent_exemption(1),
        transport.get_balance(key),
        transport.request_airdrop(key, 1),
    ):
        with pytest.raises(TokenForgeError):
            await call


# ----------------------------------------------------------------------- open_rpc_solana_deployer
class _SpyClient(AsyncClient):
    closed = False

    async def close(self) -> None:
        self.closed = True
        await super().close()


def _answer_blockhash(node: StubNode) -> None:
    node.answers["getLatestBlockhash"] = _ctx({"blockhash": str(Hash.new_unique()), "lastValidBlockHeight": 10})


async def test_open_checks_the_node_answers():
    client = _SpyClient(f"http://127.0.0.1:9/solana?api-key={SECRET}", timeout=2)
    with pytest.raises(TransientError) as info:
        await open_rpc_solana_deployer("solana", client, os.urandom(32), os.urandom(32))
    assert info.value.code == "rpc_unavailable" and SECRET not in str(info.value)
    assert client.closed


async def test_open_fails_fast_on_a_node_that_rejects_the_method(node):
    node.answers["getLatestBlockhash"] = _error(-32601, "Method not found")
    client = _SpyClient(node.url)
    with pytest.raises(PermanentError) as info:
        await open_rpc_solana_deployer("solana", client, os.urandom(32), os.urandom(32))
    assert info.value.code == "rpc_method_unsupported" and client.closed


async def test_open_rejects_a_bad_seed_and_closes_the_client(node):
    client = _SpyClient(node.url)
    with pytest.raises(PermanentError):
        await open_rpc_solana_deployer("solana", client, b"short", os.urandom(32))
    assert client.closed


async def test_open_airdrops_below_the_threshold_and_waits_for_it(node):
    _answer_blockhash(node)
    balances = iter([1_000, 1_000, 1_000, 5_000_000])  # the airdrop shows on the fourth read
    node.answers["getBalance"] = lambda params: _ctx(next(balances))
    node.answers["requestAirdrop"] = str(SIG)
    d = await open_rpc_solana_deployer(
        "solana",
        AsyncClient(node.url),
        os.urandom(32),
        os.urandom(32),
        commitment="processed",
        compute_unit_price_micro_lamports=10,
        airdrop_below_lamports=5_000_000,
    )
    try:
        assert isinstance(d.transport, RpcSolanaTransport) and d.transport.commitment == "processed"
        assert d.compute_unit_price_micro_lamports == 10
        assert node.calls("requestAirdrop") == [[str(d.payer), 4_999_000, {"commitment": "processed"}]]
        assert len(node.calls("getBalance")) == 4
    finally:
        await d.close()


async def test_open_does_not_airdrop_a_funded_payer(node):
    _answer_blockhash(node)
    node.answers["getBalance"] = _ctx(10 * 10**9)
    d = await open_rpc_solana_deployer(
        "solana", AsyncClient(node.url), os.urandom(32), os.urandom(32), airdrop_below_lamports=10**9
    )
    await d.close()
    assert node.calls("requestAirdrop") == []
