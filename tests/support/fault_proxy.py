"""A fault-injecting JSON-RPC HTTP proxy for tests.

``FaultProxy(upstream_url)`` listens on 127.0.0.1 (a free port) in its own thread with its
own event loop, so it serves sync tests, async tests and subprocesses alike. It forwards
every POST body to ``upstream_url`` (whatever path the client used) and returns the answer,
unless told otherwise::

    with FaultProxy(node_url) as proxy:
        pool = RpcPool("evm", [EndpointConfig(proxy.url)])
        proxy.set_mode("error", status=503, methods={"eth_chainId"}, times=2)
        proxy.set_mode("hang")                    # never answers (until close)
        proxy.swallow({"eth_sendRawTransaction"}) # "accepted", never reaches the node
        proxy.count("eth_chainId"), proxy.count("eth_chainId", upstream=True)

Faults by method apply to a JSON-RPC batch when any of its elements matches. A fault mode
is checked before a swallow rule: a request the fault hits is not swallowed. Every control
is thread-safe and may be changed while the proxy runs. ``wait_for_count`` (sync) and
``until_count`` (async) wait for requests to arrive instead of sleeping.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, Self

import aiohttp
from aiohttp import web

Mode = Literal["pass", "error", "drop", "hang", "latency"]
Answer = Callable[[dict], Any]

_MODES = ("pass", "error", "drop", "hang", "latency")
_SHUTDOWN_S = 2.0


# --- answers for swallowed requests -------------------------------------------------------------


def evm_tx_hash_answer(request: dict) -> str:
    """``eth_sendRawTransaction``: the transaction hash a node would answer (keccak of the raw tx)."""
    from eth_utils import keccak

    return "0x" + keccak(hexstr=request["params"][0]).hex()


def solana_signature_answer(request: dict) -> str:
    """``sendTransaction``: the transaction's first signature, base58, as a node would answer."""
    from solders.transaction import Transaction, VersionedTransaction

    params = request["params"]
    config = params[1] if len(params) > 1 and isinstance(params[1], dict) else {}
    encoded = params[0]
    raw = base64.b64decode(encoded) if config.get("encoding") == "base64" else _b58decode(encoded)
    try:
        signature = VersionedTransaction.from_bytes(raw).signatures[0]
    except ValueError:
        signature = Transaction.from_bytes(raw).signatures[0]
    return str(signature)


def default_answer(request: dict) -> Any:
    """The node's answer for the send methods above; ``None`` for anything else."""
    method = request.get("method")
    if method == "eth_sendRawTransaction":
        return evm_tx_hash_answer(request)
    if method == "sendTransaction":
        return solana_signature_answer(request)
    return None


_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _b58decode(text: str) -> bytes:
    number = 0
    for char in text:
        number = number * 58 + _B58_ALPHABET.index(char)
    body = number.to_bytes((number.bit_length() + 7) // 8, "big")
    leading_zeros = len(text) - len(text.lstrip("1"))
    return b"\x00" * leading_zeros + body


# --- bookkeeping --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProxyCall:
    """One HTTP request the proxy received."""

    methods: tuple[str, ...]  # JSON-RPC methods in the body (several for a batch)
    action: str  # "pass", "error", "drop", "hang", "latency" or "swallow"


@dataclass(slots=True)
class _Rule:
    mode: Mode = "pass"
    status: int = 500
    latency_s: float = 0.0
    methods: frozenset[str] | None = None
    times: int | None = None

    def matches(self, methods: Iterable[str]) -> bool:
        return self.methods is None or not self.methods.isdisjoint(methods)


@dataclass(slots=True)
class _Swallow:
    methods: frozenset[str]
    times: int | None
    answer: Answer


class FaultProxy:
    """An HTTP proxy in front of a JSON-RPC node that injects faults on demand."""

    def __init__(self, upstream_url: str, *, host: str = "127.0.0.1") -> None:
        self.upstream_url = upstream_url
        self._host = host
        self._port: int | None = None
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._rule = _Rule()
        self._swallow: _Swallow | None = None
        self._calls: list[ProxyCall] = []
        self._upstream_methods: list[str] = []
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        if self._thread is not None:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, args=(ready, failure), name="fault-proxy", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            raise RuntimeError("fault proxy failed to start") from failure[0]
        return self

    def close(self) -> None:
        """Stops the proxy; requests that hang or wait are cut off (connection closed)."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None or not thread.is_alive():
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        try:
            future.result(timeout=_SHUTDOWN_S + 5)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError("the fault proxy is not running (use it as a context manager or call start())")
        return f"http://{self._host}:{self._port}"

    # -- controls (thread-safe) ------------------------------------------------------------

    def set_mode(
        self,
        mode: Mode,
        *,
        status: int = 500,
        latency_s: float = 0.0,
        methods: Iterable[str] | None = None,
        times: int | None = None,
    ) -> None:
        """Applies ``mode`` to all requests, or to those naming one of ``methods``.

        ``times``: only the next N matching requests, then back to ``"pass"``.
        ``"error"`` answers HTTP ``status`` with a short text body, ``"drop"`` closes the
        connection without an answer, ``"hang"`` never answers (until :meth:`close`),
        ``"latency"`` forwards after ``latency_s``.
        """
        if mode not in _MODES:
            raise ValueError(f"unknown mode {mode!r}; expected one of {_MODES}")
        if times is not None and times < 1:
            raise ValueError("times must be >= 1")
        rule = _Rule(mode, status, latency_s, None if methods is None else frozenset(methods), times)
        with self._lock:
            self._rule = rule

    @property
    def mode(self) -> Mode:
        with self._lock:
            return self._rule.mode

    def swallow(self, methods: Iterable[str], times: int | None = None, answer: Answer | None = None) -> None:
        """Answers matching requests itself, never forwarding them.

        The answer is ``{"jsonrpc": "2.0", "id": <id>, "result": answer(request)}``;
        by default :func:`default_answer` (tx hash / signature for the send methods).
        """
        with self._lock:
            self._swallow = _Swallow(frozenset(methods), times, answer or default_answer)

    def stop_swallowing(self) -> None:
        with self._lock:
            self._swallow = None

    @property
    def calls(self) -> list[ProxyCall]:
        """Every request received so far, oldest first."""
        with self._lock:
            return list(self._calls)

    @property
    def upstream_calls(self) -> list[str]:
        """JSON-RPC methods forwarded to the upstream, one entry per call, oldest first."""
        with self._lock:
            return list(self._upstream_methods)

    def count(self, method: str | None = None, *, upstream: bool = False) -> int:
        """JSON-RPC calls of ``method`` (all methods when None) received, or forwarded upstream."""
        with self._lock:
            return self._count(method, upstream)

    def reset_counts(self) -> None:
        with self._lock:
            self._calls.clear()
            self._upstream_methods.clear()

    def wait_for_count(self, method: str | None, n: int, *, upstream: bool = False, timeout_s: float = 10.0) -> bool:
        """Blocks until ``count(method, upstream=...) >= n``; False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while self._count(method, upstream) < n:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return True

    async def until_count(self, method: str | None, n: int, *, upstream: bool = False, timeout_s: float = 10.0) -> bool:
        """:meth:`wait_for_count` for async tests (waits in a worker thread, the loop stays free)."""
        return await asyncio.to_thread(self.wait_for_count, method, n, upstream=upstream, timeout_s=timeout_s)

    def _count(self, method: str | None, upstream: bool) -> int:
        if upstream:
            return sum(1 for m in self._upstream_methods if method is None or m == method)
        if method is None:
            return sum(len(call.methods) or 1 for call in self._calls)
        return sum(call.methods.count(method) for call in self._calls)

    # -- the server (runs on the proxy's own loop) ---------------------------------------------

    def _run(self, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._startup())
        except BaseException as exc:  # noqa: BLE001 - handed over to start()
            failure.append(exc)
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _startup(self) -> None:
        self._stopping = asyncio.Event()
        self._session = aiohttp.ClientSession()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=_SHUTDOWN_S)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, 0)
        await site.start()
        self._port = self._runner.addresses[0][1]

    async def _shutdown(self) -> None:
        assert self._stopping is not None
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        items = [i for i in (parsed if isinstance(parsed, list) else [parsed]) if isinstance(i, dict)]
        methods = tuple(str(item.get("method")) for item in items)

        with self._changed:
            rule = self._take_rule(methods)
            swallowed, answer = self._take_swallowed(items) if rule.mode in ("pass", "latency") else (set(), None)
            action = "swallow" if swallowed and rule.mode == "pass" else rule.mode
            self._calls.append(ProxyCall(methods, action))
            self._changed.notify_all()

        if rule.mode == "error":
            return web.Response(status=rule.status, text=f"injected HTTP {rule.status}\n")
        if rule.mode == "drop":
            return self._drop(request)
        if rule.mode == "hang":
            await self._stopping.wait()
            return self._drop(request)
        if rule.mode == "latency" and await self._stopped_within(rule.latency_s):
            return self._drop(request)

        if swallowed and answer is not None:
            return await self._answer_swallowed(parsed, items, swallowed, answer)
        return await self._forward(body, methods)

    def _take_rule(self, methods: tuple[str, ...]) -> _Rule:
        rule = self._rule
        if rule.mode == "pass" or not rule.matches(methods):
            return _Rule()
        if rule.times is not None:
            rule.times -= 1
            if rule.times <= 0:
                self._rule = _Rule()
        return rule

    def _take_swallowed(self, items: list[dict]) -> tuple[set[int], Answer | None]:
        """Indexes of the (batch) elements to answer locally, and how (consumes ``times``)."""
        rule = self._swallow
        chosen: set[int] = set()
        if rule is None:
            return chosen, None
        for index, item in enumerate(items):
            if item.get("method") in rule.methods and (rule.times is None or rule.times > 0):
                chosen.add(index)
                if rule.times is not None:
                    rule.times -= 1
        if rule.times is not None and rule.times <= 0:
            self._swallow = None
        return chosen, rule.answer

    async def _stopped_within(self, delay_s: float) -> bool:
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=delay_s)
        except TimeoutError:
            return False
        return True

    @staticmethod
    def _drop(request: web.Request) -> web.StreamResponse:
        transport = request.transport
        if transport is not None:
            transport.abort()  # closes the TCP connection without an answer
        return web.Response(status=499)  # never sent: the connection is gone

    async def _answer_swallowed(
        self, parsed: Any, items: list[dict], swallowed: set[int], answer: Answer
    ) -> web.StreamResponse:
        local = {i: {"jsonrpc": "2.0", "id": items[i].get("id"), "result": answer(items[i])} for i in swallowed}
        if not isinstance(parsed, list):
            return web.json_response(local[0])
        rest = [item for i, item in enumerate(items) if i not in swallowed]
        answers: list[Any] = [local[i] for i in sorted(local)]
        if rest:
            response = await self._forward(json.dumps(rest).encode(), tuple(str(i.get("method")) for i in rest))
            try:
                forwarded = json.loads(response.body)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                return response
            answers.extend(forwarded if isinstance(forwarded, list) else [forwarded])
        return web.json_response(answers)

    async def _forward(self, body: bytes, methods: tuple[str, ...]) -> web.Response:
        with self._changed:
            self._upstream_methods.extend(methods)
            self._changed.notify_all()
        assert self._session is not None
        try:
            async with self._session.post(
                self.upstream_url, data=body, headers={"Content-Type": "application/json"}
            ) as upstream:
                data = await upstream.read()
                content_type = upstream.headers.get("Content-Type", "application/json")
                return web.Response(body=data, status=upstream.status, headers={"Content-Type": content_type})
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return web.Response(status=502, text=f"upstream unreachable: {type(exc).__name__}\n")
