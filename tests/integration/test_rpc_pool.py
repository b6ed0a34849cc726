"""The RPC endpoint pool over real HTTP: failover, circuit breakers, weights, secrets.

A tiny JSON-RPC node (aiohttp, its own thread) answers a few EVM and Solana methods; each
pool endpoint is a :class:`FaultProxy` in front of it, so faults are injected per endpoint
while the requests travel over real sockets. The web3.py and solana-py adapters are driven
through the same setup.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import socket
import threading
import time
from typing import Any, ClassVar, Self

import httpx
import pytest
from aiohttp import web
from eth_account import Account
from solana.rpc.core import RPCException
from solders.hash import Hash
from solders.keypair import Keypair
from solders.system_program import TransferParams, transfer
from solders.transaction import Transaction
from web3 import AsyncWeb3
from web3.exceptions import Web3RPCError

from tests.support.fault_proxy import (
    FaultProxy,
    evm_tx_hash_answer,
    solana_signature_answer,
)
from tokenforge.chains.evm.pooled_provider import PooledAsyncProvider
from tokenforge.chains.evm.rpc_errors import translate
from tokenforge.chains.rpc import (
    EndpointConfig,
    RpcPool,
    classify_rpc_error,
    redact_url,
)
from tokenforge.chains.solana.pooled_provider import pooled_async_client
from tokenforge.errors import TransientError

SECRET = "SECRETKEY123"
CHAIN_ID = 31337
BLOCKHASH = "EkSnNWid2cvwEVnVx9aBqawnmiCNiDgp3gUdkDPTKN1N"
POOL_LOGGER = "tokenforge.chains.rpc.pool"


# --- a tiny JSON-RPC node ------------------------------------------------------------------------


class StubNode:
    """Answers EVM and Solana JSON-RPC methods in a real node's shapes, from its own thread.

    ``errors`` maps a method to the JSON-RPC error object the node answers for it;
    ``path_errors`` maps a URL path to an error answered for every method (a sick node),
    and the path ``/html`` answers a 200 page that is not JSON.
    """

    RESULTS: ClassVar[dict[str, Any]] = {
        "eth_chainId": hex(CHAIN_ID),
        "eth_blockNumber": "0x10",
        "eth_getBalance": hex(10**18),
        "web3_clientVersion": "StubNode/v1",
        "getHealth": "ok",
        "getBlockHeight": 1234,
        "getLatestBlockhash": {
            "context": {"slot": 1300, "apiVersion": "2.1.0"},
            "value": {"blockhash": BLOCKHASH, "lastValidBlockHeight": 1384},
        },
    }

    def __init__(self) -> None:
        self.errors: dict[str, dict] = {"eth_sendRawTransaction": {"code": -32000, "message": "nonce too low"}}
        self.path_errors: dict[str, dict] = {}
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stub-node", daemon=True)
        self._runner: web.AppRunner | None = None
        self.url = ""

    def __enter__(self) -> Self:
        self._thread.start()
        self._ready.wait()
        return self

    def __exit__(self, *_exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def _handle(self, request: web.Request) -> web.Response:
        if request.path == "/html":
            return web.Response(text="<html>maintenance</html>", content_type="text/html")
        body = await request.json()
        if isinstance(body, list):
            return web.json_response([self._answer(item, request.path) for item in body])
        return web.json_response(self._answer(body, request.path))

    def _answer(self, item: dict, path: str) -> dict:
        error = self.path_errors.get(path) or self.errors.get(item["method"])
        if error is not None:
            return {"jsonrpc": "2.0", "id": item["id"], "error": error}
        if item["method"] not in self.RESULTS:
            return {"jsonrpc": "2.0", "id": item["id"], "error": {"code": -32601, "message": "method not found"}}
        return {"jsonrpc": "2.0", "id": item["id"], "result": self.RESULTS[item["method"]]}


class FirstChoice(random.Random):
    """Makes the weighted first choice the first allowed endpoint in configuration order."""

    def random(self) -> float:
        return 0.0


class LastChoice(random.Random):
    def random(self) -> float:
        return 0.999999


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def node():
    with StubNode() as stub:
        yield stub


@pytest.fixture
def primary(node):
    with FaultProxy(node.url) as proxy:
        yield proxy


@pytest.fixture
def secondary(node):
    with FaultProxy(node.url) as proxy:
        yield proxy


def keyed(proxy: FaultProxy) -> str:
    """The proxy's URL with an API key in its path, as hosted RPC providers hand them out."""
    return f"{proxy.url}/v3/{SECRET}?apikey={SECRET}"


def make_pool(*proxies: FaultProxy, timeout_s: float = 5.0, chain: str = "evm", **kwargs) -> RpcPool:
    kwargs.setdefault("rng", FirstChoice())
    return RpcPool(chain, [EndpointConfig(keyed(p), timeout_s=timeout_s) for p in proxies], **kwargs)


# --- failover within one request -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "status"),
    [("error", 500), ("error", 503), ("error", 429), ("error", 401), ("error", 403), ("drop", None), ("hang", None)],
)
async def test_an_endpoint_fault_fails_over_within_the_same_request(primary, secondary, mode, status):
    primary.set_mode(mode, status=status or 500)
    pool = make_pool(primary, secondary, timeout_s=0.4)
    started = time.perf_counter()
    try:
        answer = await pool.call("eth_chainId")
    finally:
        await pool.close()
    elapsed_s = time.perf_counter() - started

    assert answer["result"] == hex(CHAIN_ID)
    assert primary.count("eth_chainId") == 1 and primary.count(upstream=True) == 0
    assert secondary.count("eth_chainId", upstream=True) == 1
    first, second = pool.health()
    assert (first["requests"], first["failures"], first["consecutive_failures"]) == (1, 1, 1)
    assert (second["requests"], second["failures"]) == (1, 0)
    assert first["last_error"]
    if mode == "hang":
        assert 0.4 <= elapsed_s < 3.0, "the hanging endpoint is given up after its timeout_s"
        assert "timeout" in first["last_error"]


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/lagging", {"code": -32000, "message": "header not found"}),
        ("/limited", {"code": -32005, "message": "limit exceeded"}),
        ("/limited", {"code": -32000, "message": "Too Many Requests: rate limit reached"}),
        ("/busy", {"code": -32603, "message": "Internal error"}),
        ("/busy", {"code": -32000, "message": "server busy, try again"}),
        ("/html", None),
    ],
)
async def test_answers_that_blame_the_node_fail_over(node, secondary, path, error):
    if error is not None:
        node.path_errors[path] = error
    with FaultProxy(node.url + path) as sick:
        pool = make_pool(sick, secondary)
        try:
            answer = await pool.call("eth_blockNumber")
        finally:
            await pool.close()
        assert answer == {"jsonrpc": "2.0", "id": answer["id"], "result": "0x10"}
        assert sick.count("eth_blockNumber", upstream=True) == 1
        assert secondary.count("eth_blockNumber", upstream=True) == 1
        assert pool.health()[0]["failures"] == 1


@pytest.mark.parametrize(
    "error",
    [
        {"code": -32000, "message": "nonce too low"},
        {"code": -32000, "message": "already known"},
        {"code": -32000, "message": "insufficient funds for gas * price + value"},
        {"code": 3, "message": "execution reverted: request timeout", "data": "0x08c379a0"},
        {"code": -32602, "message": "invalid params"},
        {"code": -32002, "message": "Transaction simulation failed: Blockhash not found"},
        {"code": -32603, "message": "internal error: nonce too high"},
    ],
)
async def test_node_error_answers_are_returned_unchanged_and_not_counted(node, primary, secondary, error):
    node.errors["eth_sendRawTransaction"] = error
    pool = make_pool(primary, secondary, failure_threshold=2)
    try:
        answers = [await pool.call("eth_sendRawTransaction", ["0x02f8"]) for _ in range(4)]
    finally:
        await pool.close()
    assert all(answer["error"] == error for answer in answers)
    assert primary.count("eth_sendRawTransaction", upstream=True) == 4
    assert secondary.count() == 0, "a node's real answer must not be retried elsewhere"
    health = pool.health()[0]
    assert (health["state"], health["failures"], health["consecutive_failures"]) == ("closed", 0, 0)


def test_classification_is_conservative():
    assert classify_rpc_error(-32005, "limit exceeded") == ("rate_limited", "rpc -32005 limit exceeded")
    assert classify_rpc_error(-32005, "Node is behind by 42 slots")[0] == "unavailable"
    assert classify_rpc_error(-32000, "request timed out")[0] == "timeout"
    assert classify_rpc_error(-32603, "internal error") is not None
    assert classify_rpc_error(-32603, "internal error: invalid opcode") is None
    assert classify_rpc_error(-32000, "execution reverted: service unavailable") is None
    assert classify_rpc_error(-32601, "the method eth_foo does not exist/is not available") is None
    assert classify_rpc_error(-32005, "query returned more than 10000 results") is None
    assert classify_rpc_error(429, "Your app has exceeded its compute units per second capacity")[0] == "rate_limited"
    assert classify_rpc_error(-32429, "slow down")[0] == "rate_limited"


# --- circuit breakers --------------------------------------------------------------------------------


async def test_breaker_opens_after_repeated_faults_then_half_opens_and_closes(primary, secondary, caplog):
    caplog.set_level(logging.INFO, logger=POOL_LOGGER)
    clock = FakeClock()
    pool = make_pool(primary, secondary, failure_threshold=2, reset_after_s=5.0, clock=clock)
    primary.set_mode("error", status=503)
    try:
        for _ in range(2):
            assert (await pool.call("eth_chainId"))["result"] == hex(CHAIN_ID)
        assert primary.count() == 2
        assert pool.health()[0]["state"] == "open"
        assert [r.levelname for r in caplog.records if "opened" in r.message] == ["WARNING"]

        for _ in range(5):
            assert (await pool.call("eth_chainId"))["result"] == hex(CHAIN_ID)
        assert primary.count() == 2, "an open breaker keeps requests away from the endpoint"
        assert secondary.count(upstream=True) == 7

        primary.set_mode("pass")
        clock.advance(4.9)
        await pool.call("eth_chainId")
        assert primary.count() == 2, "still paused"
        clock.advance(0.1)
        assert pool.health()[0]["state"] == "half_open"
        await pool.call("eth_chainId")
        assert primary.count(upstream=True) == 1, "the trial call went to the recovered endpoint"
        assert pool.health()[0]["state"] == "closed"
        assert pool.health()[0]["consecutive_failures"] == 0
        await pool.call("eth_chainId")
        assert primary.count(upstream=True) == 2
        assert any(r.levelname == "INFO" and "closed" in r.message for r in caplog.records)
    finally:
        await pool.close()
    assert SECRET not in caplog.text
    assert redact_url(keyed(primary)) in caplog.text


async def test_breaker_recovers_on_the_real_clock(primary, secondary):
    pool = make_pool(primary, secondary, failure_threshold=1, reset_after_s=0.2)
    primary.set_mode("drop")
    try:
        await pool.call("eth_chainId")
        assert pool.health()[0]["state"] == "open"
        primary.set_mode("pass")
        await asyncio.sleep(0.25)  # the breaker is time-based: let its pause run out
        await pool.call("eth_chainId")
    finally:
        await pool.close()
    assert pool.health()[0]["state"] == "closed"
    assert primary.count(upstream=True) == 1


async def test_failed_trial_reopens_for_another_pause(primary, secondary):
    clock = FakeClock()
    pool = make_pool(primary, secondary, failure_threshold=2, reset_after_s=5.0, clock=clock)
    primary.set_mode("error", status=500)
    try:
        for _ in range(2):
            await pool.call("eth_chainId")
        clock.advance(5.0)
        await pool.call("eth_chainId")  # the trial: fails over again
        assert primary.count() == 3
        assert pool.health()[0]["state"] == "open"
        clock.advance(4.0)
        for _ in range(3):
            await pool.call("eth_chainId")
        assert primary.count() == 3, "a new pause started with the failed trial"
    finally:
        await pool.close()


async def test_half_open_lets_exactly_one_trial_through(primary, secondary):
    clock = FakeClock()
    pool = make_pool(primary, secondary, failure_threshold=1, reset_after_s=5.0, clock=clock)
    primary.set_mode("error", status=502)
    try:
        await pool.call("eth_chainId")
        clock.advance(5.0)
        primary.set_mode("latency", latency_s=0.3)  # the trial stays out for a while
        answers = await asyncio.gather(*(pool.call("eth_chainId") for _ in range(6)))
    finally:
        await pool.close()
    assert all(answer["result"] == hex(CHAIN_ID) for answer in answers)
    assert primary.count() == 2, "one fault, then exactly one trial while half-open"
    assert secondary.count(upstream=True) == 1 + 5, "the failed-over first call, then the other five"
    assert pool.health()[0]["state"] == "closed"


async def test_with_every_breaker_open_the_soonest_to_reopen_is_still_tried(primary, secondary):
    clock = FakeClock()
    # LastChoice: the weighted first choice is the last allowed endpoint (the secondary)
    pool = make_pool(primary, secondary, failure_threshold=1, reset_after_s=5.0, clock=clock, rng=LastChoice())
    try:
        secondary.set_mode("error", status=500)
        await pool.call("eth_chainId")  # secondary opens at t=0, the primary answers
        clock.advance(4.0)
        primary.set_mode("error", status=500)
        with pytest.raises(TransientError) as caught:
            await pool.call("eth_chainId")  # primary opens at t=4: every breaker is open now
        assert caught.value.retry_after_s == pytest.approx(1.0)
        assert "(circuit open)" in caught.value.message
        assert [h["state"] for h in pool.health()] == ["open", "open"]

        primary.set_mode("pass")
        secondary.set_mode("pass")
        before = (primary.count(), secondary.count())
        answer = await pool.call("eth_chainId")
    finally:
        await pool.close()
    assert answer["result"] == hex(CHAIN_ID)
    assert (primary.count(), secondary.count()) == (before[0], before[1] + 1), "the secondary's pause ends first"
    assert [h["state"] for h in pool.health()] == ["open", "closed"]


# --- everything down -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("modes", "code"),
    [
        ((("error", 503), ("drop", None)), "rpc_unavailable"),
        ((("error", 429), ("error", 429)), "rate_limited"),
        ((("hang", None), ("hang", None)), "rpc_timeout"),
        ((("error", 429), ("error", 500)), "rpc_unavailable"),
    ],
)
async def test_all_endpoints_down_raises_a_transient_error_without_secrets(primary, secondary, caplog, modes, code):
    caplog.set_level(logging.DEBUG, logger=POOL_LOGGER)
    for proxy, (mode, status) in zip((primary, secondary), modes, strict=True):
        proxy.set_mode(mode, status=status or 500)
    pool = make_pool(primary, secondary, timeout_s=0.3)
    try:
        with pytest.raises(TransientError) as caught:
            await pool.call("eth_getBalance", ["0x" + "11" * 20, "latest"])
    finally:
        await pool.close()
    err = caught.value
    assert err.code == code
    assert err.is_transient()
    text = str(err)
    assert "evm" in text and "eth_getBalance" in text
    for proxy in (primary, secondary):
        assert redact_url(keyed(proxy)) in text
    assert SECRET not in text and "/v3/" not in text and "apikey" not in text
    health_text = json.dumps(pool.health())
    assert SECRET not in health_text and "/v3/" not in health_text
    assert SECRET not in caplog.text


async def test_unreachable_endpoints_are_reported_as_unavailable():
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])  # closed again: connections are refused
    pool = RpcPool("solana", [EndpointConfig(f"http://127.0.0.1:{port}/{SECRET}") for port in ports])
    try:
        with pytest.raises(TransientError) as caught:
            await pool.call("getBlockHeight")
    finally:
        await pool.close()
    assert caught.value.code == "rpc_unavailable"
    assert "connect failed" in caught.value.message
    assert SECRET not in str(caught.value)


# --- weights ---------------------------------------------------------------------------------------


async def test_first_choice_follows_the_weights(primary, secondary):
    pool = RpcPool("evm", [EndpointConfig(keyed(primary), weight=3), EndpointConfig(keyed(secondary), weight=1)])
    try:
        for _ in range(8):
            await asyncio.gather(*(pool.call("eth_chainId") for _ in range(50)))
    finally:
        await pool.close()
    heavy, light = primary.count(), secondary.count()
    assert heavy + light == 400
    assert 240 <= heavy <= 360, f"expected about 300 of 400 on the weight-3 endpoint, got {heavy}"
    assert [h["state"] for h in pool.health()] == ["closed", "closed"]
    assert [h["weight"] for h in pool.health()] == [3, 1]


def test_endpoint_config_is_validated_without_leaking_the_url():
    with pytest.raises(ValueError, match="weight must be an integer >= 1") as caught:
        EndpointConfig(f"https://rpc.example.com/v3/{SECRET}", weight=0)
    assert SECRET not in str(caught.value) and "https://rpc.example.com/…" in str(caught.value)
    with pytest.raises(ValueError, match=r"^RPC endpoint wss://rpc\.example\.com/…: an http\(s\) URL") as caught:
        EndpointConfig(f"wss://rpc.example.com/{SECRET}")
    assert SECRET not in str(caught.value)
    with pytest.raises(ValueError, match="timeout_s must be > 0"):
        EndpointConfig("https://rpc.example.com", timeout_s=0)


def test_redact_url_keeps_scheme_host_and_port_only():
    assert (
        redact_url(f"https://user:{SECRET}@rpc.example.com:8443/v2/{SECRET}?key={SECRET}")
        == "https://rpc.example.com:8443/…"
    )
    assert redact_url("http://127.0.0.1:8545") == "http://127.0.0.1:8545"
    assert redact_url("http://127.0.0.1:8545/") == "http://127.0.0.1:8545"
    assert redact_url("not a url") == "<invalid url>"


# --- web3.py over the pool -------------------------------------------------------------------------


async def test_web3_over_the_pool(node, primary, secondary):
    primary.set_mode("error", status=503, times=1)  # the very first request fails over
    pool = make_pool(primary, secondary)
    w3 = AsyncWeb3(PooledAsyncProvider(pool))
    try:
        assert await w3.eth.chain_id == CHAIN_ID
        assert secondary.count("eth_chainId", upstream=True) == 1
        assert await w3.eth.block_number == 16
        assert await w3.eth.get_balance("0x" + "11" * 20) == 10**18
        assert await w3.is_connected()

        async with w3.batch_requests() as batch:
            batch.add(w3.eth.block_number)
            batch.add(w3.eth.get_balance("0x" + "22" * 20))
            assert await batch.async_execute() == [16, 10**18]

        with pytest.raises(Web3RPCError) as caught:
            await w3.eth.send_raw_transaction(b"\x02\xf8")
        assert translate(caught.value, "broadcast").code == "nonce_too_low"

        rlp_error = {"code": -32000, "message": "rlp: expected input list for types.LegacyTx"}
        node.errors["eth_sendRawTransaction"] = rlp_error
        with pytest.raises(Web3RPCError) as caught:
            await w3.eth.send_raw_transaction(b"garbage")
        assert "rlp" in str(caught.value)
        assert secondary.count("eth_sendRawTransaction") == 0, "node answers are not failed over"

        primary.set_mode("error", status=503)
        secondary.set_mode("drop")
        with pytest.raises(TransientError) as down:
            await w3.eth.block_number
        assert down.value.code == "rpc_unavailable"
        assert not await w3.is_connected()
    finally:
        await w3.provider.disconnect()


# --- solana-py over the pool -----------------------------------------------------------------------


async def test_solana_async_client_over_the_pool(node, secondary):
    node.path_errors["/behind"] = {
        "code": -32005,
        "message": "Node is behind by 42 slots",
        "data": {"numSlotsBehind": 42},
    }
    with FaultProxy(node.url + "/behind") as behind:
        pool = make_pool(behind, secondary, chain="solana")
        client = pooled_async_client(pool)
        try:
            assert (await client.get_block_height()).value == 1234
            assert behind.count("getBlockHeight") == 1 and secondary.count("getBlockHeight") == 1
            latest = (await client.get_latest_blockhash()).value
            assert latest.blockhash == Hash.from_string(BLOCKHASH)
            assert latest.last_valid_block_height == 1384
            assert await client.is_connected()
            assert pool.health()[0]["state"] == "open", "three faults in a row (default threshold)"

            node.errors["getBlockHeight"] = {"code": -32602, "message": "Invalid params: unknown commitment"}
            with pytest.raises(RPCException):
                await client.get_block_height()
            assert secondary.count("getBlockHeight", upstream=True) == 2
            assert behind.count() == 3, "the lagging node's breaker is open"

            secondary.set_mode("error", status=502)
            with pytest.raises(TransientError) as down:
                await client.get_latest_blockhash()
            assert down.value.code == "rpc_unavailable" and "solana getLatestBlockhash" in down.value.message
            assert not await client.is_connected()
        finally:
            await client.close()


# --- the fault proxy itself ------------------------------------------------------------------------


def test_fault_proxy_modes_from_sync_code(node):
    def rpc(url: str, method: str) -> httpx.Response:
        return httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": []}, timeout=5)

    with FaultProxy(node.url) as proxy:
        proxy.set_mode("error", status=503, methods={"eth_chainId"}, times=2)
        assert rpc(proxy.url, "eth_blockNumber").json()["result"] == "0x10"  # other methods pass
        assert [rpc(proxy.url, "eth_chainId").status_code for _ in range(3)] == [503, 503, 200]
        assert proxy.mode == "pass"
        assert proxy.count("eth_chainId") == 3 and proxy.count("eth_chainId", upstream=True) == 1
        assert [call.action for call in proxy.calls] == ["pass", "error", "error", "pass"]

        proxy.set_mode("drop")
        with pytest.raises(httpx.TransportError):
            rpc(proxy.url, "eth_chainId")

        batch = [
            {"jsonrpc": "2.0", "id": i, "method": m, "params": []}
            for i, m in enumerate(["eth_chainId", "eth_blockNumber"])
        ]
        proxy.set_mode("error", status=500, methods={"eth_blockNumber"})
        assert httpx.post(proxy.url, json=batch, timeout=5).status_code == 500  # one element matches
        proxy.set_mode("pass")
        assert [a["result"] for a in httpx.post(proxy.url, json=batch, timeout=5).json()] == [hex(CHAIN_ID), "0x10"]

        proxy.swallow({"eth_blockNumber"}, times=1, answer=lambda request: "0xswallowed")
        answers = {a["id"]: a["result"] for a in httpx.post(proxy.url, json=batch, timeout=5).json()}
        assert answers == {0: hex(CHAIN_ID), 1: "0xswallowed"}
        assert proxy.count("eth_blockNumber") == 4 and proxy.count("eth_blockNumber", upstream=True) == 2
        assert [a["result"] for a in httpx.post(proxy.url, json=batch, timeout=5).json()] == [hex(CHAIN_ID), "0x10"]


def test_fault_proxy_close_releases_hanging_requests(node):
    proxy = FaultProxy(node.url).start()
    proxy.set_mode("hang")
    outcome: list[BaseException | httpx.Response] = []

    def request() -> None:
        try:
            outcome.append(httpx.post(proxy.url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}, timeout=30))
        except httpx.HTTPError as exc:
            outcome.append(exc)

    worker = threading.Thread(target=request)
    worker.start()
    assert proxy.wait_for_count("eth_chainId", 1, timeout_s=5)
    started = time.monotonic()
    proxy.close()
    worker.join(timeout=10)
    assert not worker.is_alive() and time.monotonic() - started < 5
    assert isinstance(outcome[0], httpx.TransportError)


async def test_swallowed_evm_transaction_gets_its_hash_but_never_reaches_the_node(primary):
    account = Account.create()
    signed = account.sign_transaction(
        {"to": "0x" + "33" * 20, "value": 1, "gas": 21000, "gasPrice": 10**9, "nonce": 0, "chainId": CHAIN_ID}
    )
    raw_hex = "0x" + signed.raw_transaction.hex()
    primary.swallow({"eth_sendRawTransaction"}, times=1, answer=evm_tx_hash_answer)
    pool = make_pool(primary)
    try:
        accepted = await pool.call("eth_sendRawTransaction", [raw_hex])
        assert accepted["result"] == "0x" + signed.hash.hex().removeprefix("0x")
        assert primary.count("eth_sendRawTransaction") == 1
        assert primary.count("eth_sendRawTransaction", upstream=True) == 0
        again = await pool.call("eth_sendRawTransaction", [raw_hex])  # times=1: forwarded now
        assert again["error"]["message"] == "nonce too low"
        assert primary.count("eth_sendRawTransaction", upstream=True) == 1
    finally:
        await pool.close()


async def test_swallowed_solana_transaction_gets_its_signature(node):
    payer, recipient = Keypair(), Keypair()
    tx = Transaction.new_signed_with_payer(
        [transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=recipient.pubkey(), lamports=5))],
        payer.pubkey(),
        [payer],
        Hash.from_string(BLOCKHASH),
    )
    with FaultProxy(node.url) as proxy:
        proxy.swallow({"sendTransaction"})  # default answer: the signature, as a node answers
        pool = make_pool(proxy, chain="solana")
        client = pooled_async_client(pool)
        try:
            sent = await client.send_raw_transaction(bytes(tx))
        finally:
            await client.close()
        assert sent.value == tx.signatures[0]
        assert proxy.count("sendTransaction") == 1 and proxy.count("sendTransaction", upstream=True) == 0
    request = {"method": "sendTransaction", "params": [base64.b64encode(bytes(tx)).decode(), {"encoding": "base64"}]}
    assert solana_signature_answer(request) == str(tx.signatures[0])
    legacy_base58 = {"method": "sendTransaction", "params": [_b58encode(bytes(tx))]}
    assert solana_signature_answer(legacy_base58) == str(tx.signatures[0])


def _b58encode(data: bytes) -> str:
    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    number, out = int.from_bytes(data, "big"), ""
    while number:
        number, digit = divmod(number, 58)
        out = alphabet[digit] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out
