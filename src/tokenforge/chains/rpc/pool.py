"""A pool of JSON-RPC HTTP endpoints for one chain, with per-endpoint circuit breakers.

Every request goes to a weighted-random first choice among the endpoints whose breaker lets
a call through, then, if that endpoint is at fault, to the remaining ones by descending
weight — all within the same request. An *endpoint fault* is a transport failure
(connection refused/reset/dropped, timeout or hang), HTTP 429 or 5xx, a body that is not a
JSON-RPC answer, or a JSON-RPC error that blames the node rather than the request (rate
limit, lagging node, busy, bare internal error). Any other JSON-RPC error is the node's real
answer and is returned unchanged for the chain adapters to classify.

When every endpoint tried was at fault the request fails with a
:class:`~tokenforge.errors.TransientError` (``rate_limited``, ``rpc_timeout`` or
``rpc_unavailable``). Endpoint URLs often carry API keys, so only :func:`redact_url` labels
(scheme, host and port) ever appear in logs, errors and :meth:`RpcPool.health`.

One pool belongs to one event loop: its aiohttp session is created lazily inside the
running loop and re-created if the pool is used from another loop later.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Self
from urllib.parse import urlsplit

import aiohttp
import orjson

from tokenforge.errors import TransientError

from .breaker import BreakerState, CircuitBreaker

log = logging.getLogger(__name__)

FaultKind = Literal["rate_limited", "timeout", "unavailable"]

_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
_CONNECTIONS_PER_HOST = 100
_KEEPALIVE_S = 30.0
_MAX_REASON = 80


def redact_url(url: str) -> str:
    """``https://rpc.example.com/…``: scheme, host and port only; anything else is hidden."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        port = parts.port
    except ValueError:
        return "<invalid url>"
    if not parts.scheme or not host:
        return "<invalid url>"
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    label = f"{parts.scheme.lower()}://{host}"
    if port is not None:
        label += f":{port}"
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        label += "/…"
    return label


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    url: str
    weight: int = 1  # relative share of first-choice traffic, >= 1
    timeout_s: float = 10.0  # per request to this endpoint

    def __post_init__(self) -> None:
        label = redact_url(self.url)
        if urlsplit(self.url.strip()).scheme.lower() not in ("http", "https") or label == "<invalid url>":
            raise ValueError(f"RPC endpoint {label}: an http(s) URL with a host is required")
        if isinstance(self.weight, bool) or not isinstance(self.weight, int) or self.weight < 1:
            raise ValueError(f"RPC endpoint {label}: weight must be an integer >= 1")
        if not self.timeout_s > 0:
            raise ValueError(f"RPC endpoint {label}: timeout_s must be > 0")


@dataclass(frozen=True, slots=True)
class _Fault:
    kind: FaultKind
    reason: str  # short, never contains a URL
    retry_after_s: float | None = None


# --- classification of JSON-RPC error answers ----------------------------------------------

# Words that mark a node's real answer about the request itself; checked first, so a revert
# reason or a Solana simulation log that happens to say "timeout" is never taken for a fault.
_REQUEST_ANSWER_WORDS: tuple[str, ...] = (
    "revert", "nonce", "already known", "known transaction", "already imported", "underpriced",
    "insufficient", "invalid", "blockhash", "simulation", "gas", "signature", "query returned",
    "block range", "response size", "too large", "execution",
)
# JSON-RPC codes that are always an answer about the request.
_REQUEST_ANSWER_CODES = frozenset({3, -32700, -32600, -32601, -32602, -32002, -32003})

# (substring of the lower-cased message, kind, short reason) — first match wins.
_FAULT_MESSAGES: tuple[tuple[str, FaultKind, str], ...] = (
    ("header not found", "unavailable", "header not found"),
    ("rate limit", "rate_limited", "rate limited"),
    ("too many requests", "rate_limited", "too many requests"),
    ("limit exceeded", "rate_limited", "limit exceeded"),
    ("exceeded its", "rate_limited", "capacity exceeded"),
    ("capacity", "rate_limited", "capacity exceeded"),
    ("timed out", "timeout", "node timed out"),
    ("timeout", "timeout", "node timeout"),
    ("busy", "unavailable", "node busy"),
    ("unavailable", "unavailable", "node unavailable"),
    ("unhealthy", "unavailable", "node unhealthy"),
)
_BARE_INTERNAL_ERRORS = frozenset({"", "internal error", "internal server error", "internal_error",
                                    "internal json-rpc error", "internal json-rpc error."})


def classify_rpc_error(code: Any, message: Any) -> tuple[FaultKind, str] | None:
    """``(kind, reason)`` when a JSON-RPC error blames the endpoint; None for a real answer."""
    text = message.lower().strip() if isinstance(message, str) else ""
    if code in _REQUEST_ANSWER_CODES or any(word in text for word in _REQUEST_ANSWER_WORDS):
        return None
    if code in (429, -32429):
        return "rate_limited", f"rpc {code} rate limited"
    if code == -32005:
        if "behind" in text or "unhealthy" in text:
            return "unavailable", "rpc -32005 node behind"
        return "rate_limited", "rpc -32005 limit exceeded"
    for needle, kind, reason in _FAULT_MESSAGES:
        if needle in text:
            return kind, f"rpc {code} {reason}" if isinstance(code, int) else reason
    if code == -32603 and text in _BARE_INTERNAL_ERRORS:
        return "unavailable", "rpc -32603 internal error"
    return None


def _answer_fault(answer: Any, is_batch: bool) -> _Fault | None:
    """The fault in a parsed JSON body, or None when it is a proper JSON-RPC answer."""
    if isinstance(answer, dict):
        if is_batch and "error" not in answer:
            return _Fault("unavailable", "unexpected answer to a batch")
        return _object_fault(answer)
    if isinstance(answer, list) and is_batch:
        for item in answer:
            fault = _object_fault(item) if isinstance(item, dict) else _Fault("unavailable", "malformed batch answer")
            if fault is not None:
                return fault
        return None
    return _Fault("unavailable", "not a JSON-RPC answer")


def _object_fault(answer: dict) -> _Fault | None:
    error = answer.get("error")
    if error is None:
        return None if "result" in answer else _Fault("unavailable", "not a JSON-RPC answer")
    if not isinstance(error, dict):
        return _Fault("unavailable", "malformed JSON-RPC error")
    verdict = classify_rpc_error(error.get("code"), error.get("message"))
    return None if verdict is None else _Fault(verdict[0], verdict[1])


_ENDPOINT_REFUSALS = frozenset({401, 403, 404})


def _http_fault(status: int, retry_after: str | None) -> _Fault:
    if status == 429:
        return _Fault("rate_limited", "http 429", _parse_retry_after(retry_after))
    if status in (408, 504):
        return _Fault("timeout", f"http {status}")
    return _Fault("unavailable", f"http {status}")


def _parse_retry_after(value: str | None) -> float | None:
    try:
        seconds = float(value) if value is not None else None
    except ValueError:  # an HTTP date: not worth parsing
        return None
    return seconds if seconds is not None and 0 <= seconds <= 3600 else None


def _transport_reason(exc: BaseException) -> str:
    """A short fault reason that never quotes the exception text (it may name the URL)."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"connect failed{_errno_suffix(exc.os_error)}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "connection dropped"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "answer cut off"
    if isinstance(exc, OSError):
        return f"connection error{_errno_suffix(exc)}"
    return f"transport error ({type(exc).__name__})"


def _errno_suffix(exc: OSError | None) -> str:
    number = getattr(exc, "errno", None)
    name = errno.errorcode.get(number) if isinstance(number, int) else None
    return f" ({name})" if name else ""


def _is_batch(payload: bytes) -> bool:
    head = payload[:1]
    if head.isspace():
        head = payload.lstrip()[:1]
    return head == b"["


# --- the pool ----------------------------------------------------------------------------------


class _Endpoint:
    __slots__ = (
        "breaker",
        "client_timeout",
        "config",
        "failures",
        "label",
        "last_error",
        "last_latency_ms",
        "requests",
    )

    def __init__(self, config: EndpointConfig, label: str, breaker: CircuitBreaker) -> None:
        self.config = config
        self.label = label
        self.breaker = breaker
        self.client_timeout = aiohttp.ClientTimeout(total=config.timeout_s)
        self.requests = 0
        self.failures = 0
        self.last_error: str | None = None
        self.last_latency_ms: float | None = None


class RpcPool:
    """Sends JSON-RPC requests for one chain to a set of endpoints with failover."""

    def __init__(
        self,
        chain: str,
        endpoints: Sequence[EndpointConfig],
        *,
        failure_threshold: int = 3,
        reset_after_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        if not endpoints:
            raise ValueError(f"{chain}: an RPC pool needs at least one endpoint")
        self.chain = chain
        self._rng = rng or random.Random()
        self._ids = itertools.count(1)
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None
        labels = [redact_url(config.url) for config in endpoints]
        self._endpoints: list[_Endpoint] = []
        for index, (config, label) in enumerate(zip(endpoints, labels, strict=True)):
            if labels.count(label) > 1:  # same host twice (e.g. two API keys): keep labels apart
                label = f"{label} #{index + 1}"
            breaker = CircuitBreaker(failure_threshold=failure_threshold, reset_after_s=reset_after_s, clock=clock,
                                     on_change=self._breaker_listener(label))
            self._endpoints.append(_Endpoint(config, label, breaker))

    # -- public API --------------------------------------------------------------------------

    @property
    def labels(self) -> list[str]:
        """The redacted endpoint labels, in configuration order."""
        return [endpoint.label for endpoint in self._endpoints]

    async def post(self, payload: bytes, *, method: str) -> bytes:
        """Sends a raw JSON-RPC request body (single or batch); returns the raw answer body."""
        raw, _ = await self._send(payload, method)
        return raw

    async def post_json(self, payload: bytes, *, method: str) -> Any:
        """Like :meth:`post`, but returns the answer already parsed (it is parsed only once)."""
        _, answer = await self._send(payload, method)
        return answer

    async def call(self, method: str, params: list | dict | None = None) -> dict:
        """Calls ``method``; returns the whole JSON-RPC answer object (``result`` or ``error``)."""
        request = {"jsonrpc": "2.0", "id": next(self._ids), "method": method,
                   "params": [] if params is None else params}
        _, answer = await self._send(orjson.dumps(request), method)
        return answer

    def health(self) -> list[dict]:
        """Per endpoint, in configuration order: redacted label, breaker state and counters."""
        return [
            {
                "label": endpoint.label,
                "weight": endpoint.config.weight,
                "timeout_s": endpoint.config.timeout_s,
                "state": endpoint.breaker.state,
                "consecutive_failures": endpoint.breaker.consecutive_failures,
                "retry_in_s": round(endpoint.breaker.remaining_s(), 3),
                "requests": endpoint.requests,
                "failures": endpoint.failures,
                "last_error": endpoint.last_error,
                "last_latency_ms": endpoint.last_latency_ms,
            }
            for endpoint in self._endpoints
        ]

    async def close(self) -> None:
        """Closes the HTTP session; the pool opens a new one if it is used again."""
        session, self._session, self._session_loop = self._session, None, None
        if session is not None and not session.closed:
            await session.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"RpcPool(chain={self.chain!r}, endpoints={self.labels!r})"

    # -- internals ---------------------------------------------------------------------------

    async def _send(self, payload: bytes, method: str) -> tuple[bytes, Any]:
        session = self._session_for_running_loop()
        is_batch = _is_batch(payload)
        faults: list[tuple[_Endpoint, _Fault]] = []
        for endpoint, forced in self._order():
            if not forced and not endpoint.breaker.allow():  # opened or trial taken meanwhile
                continue
            outcome = await self._attempt(session, endpoint, payload, is_batch, method)
            if isinstance(outcome, _Fault):
                faults.append((endpoint, outcome))
                continue
            return outcome
        raise self._exhausted(method, faults)

    def _order(self) -> list[tuple[_Endpoint, bool]]:
        """Endpoints to try, each with ``forced`` (True only for the all-open fallback)."""
        allowed = [endpoint for endpoint in self._endpoints if endpoint.breaker.can_attempt()]
        if not allowed:  # never refuse without trying: the pause that ends soonest goes first
            soonest = min(self._endpoints, key=lambda endpoint: endpoint.breaker.remaining_s())
            return [(soonest, True)]
        first = allowed[0]
        if len(allowed) > 1:
            pick = self._rng.random() * sum(endpoint.config.weight for endpoint in allowed)
            for endpoint in allowed:
                pick -= endpoint.config.weight
                if pick < 0:
                    first = endpoint
                    break
        rest = sorted((endpoint for endpoint in allowed if endpoint is not first),
                      key=lambda endpoint: -endpoint.config.weight)
        return [(first, False), *((endpoint, False) for endpoint in rest)]

    async def _attempt(
        self, session: aiohttp.ClientSession, endpoint: _Endpoint, payload: bytes, is_batch: bool, method: str
    ) -> tuple[bytes, Any] | _Fault:
        endpoint.requests += 1
        started = time.perf_counter()
        settled = False
        try:
            try:
                async with session.post(endpoint.config.url, data=payload, headers=_HEADERS,
                                        timeout=endpoint.client_timeout) as response:
                    raw = await response.read()
                    status = response.status
                    retry_after = response.headers.get("Retry-After")
            except TimeoutError:
                fault = _Fault("timeout", f"timeout after {endpoint.config.timeout_s:g}s")
            except (aiohttp.ClientError, OSError) as exc:
                fault = _Fault("unavailable", _transport_reason(exc))
            else:
                fault, answer = self._judge(status, retry_after, raw, is_batch)
            endpoint.last_latency_ms = round((time.perf_counter() - started) * 1000, 1)
            settled = True
            if fault is None:
                endpoint.breaker.record_success()
                return raw, answer
            endpoint.failures += 1
            endpoint.last_error = fault.reason[:_MAX_REASON]
            endpoint.breaker.record_failure()
            log.debug("rpc fault on %s %s via %s: %s", self.chain, method, endpoint.label, fault.reason)
            return fault
        finally:
            if not settled:  # cancelled or an unexpected error: free a half-open trial slot
                endpoint.breaker.release()

    @staticmethod
    def _judge(status: int, retry_after: str | None, raw: bytes, is_batch: bool) -> tuple[_Fault | None, Any]:
        if status == 429 or status >= 500 or status in _ENDPOINT_REFUSALS:
            # 401/403/404: a bad or expired API key, a wrong path: this endpoint cannot serve
            # anyone, whatever its body says
            return _http_fault(status, retry_after), None
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return (_Fault("unavailable", "answer is not JSON") if 200 <= status < 300
                    else _http_fault(status, retry_after)), None
        fault = _answer_fault(answer, is_batch)
        if fault is not None and not 200 <= status < 300 and not (
            isinstance(answer, dict) and isinstance(answer.get("error"), dict)
        ):
            fault = _http_fault(status, retry_after)  # e.g. a 401/404 page that happens to be JSON
        return fault, answer

    def _exhausted(self, method: str, faults: list[tuple[_Endpoint, _Fault]]) -> TransientError:
        kinds = {fault.kind for _, fault in faults}
        if kinds == {"rate_limited"}:
            code = "rate_limited"
        elif kinds == {"timeout"}:
            code = "rpc_timeout"
        else:
            code = "rpc_unavailable"
        parts = [f"{endpoint.label} ({fault.reason})" for endpoint, fault in faults]
        tried = {id(endpoint) for endpoint, _ in faults}
        parts += [f"{endpoint.label} (circuit open)" for endpoint in self._endpoints if id(endpoint) not in tried]
        hints = [fault.retry_after_s for _, fault in faults if fault.retry_after_s is not None]
        pause_s = min(endpoint.breaker.remaining_s() for endpoint in self._endpoints)
        retry_after_s = max(hints) if hints else (pause_s if pause_s > 0 else None)
        message = f"{self.chain} {method}: no RPC endpoint answered: {'; '.join(parts)}"
        return TransientError(message, code=code, retry_after_s=retry_after_s)

    def _session_for_running_loop(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._session_loop is not loop:
            connector = aiohttp.TCPConnector(limit=_CONNECTIONS_PER_HOST * len(self._endpoints),
                                             limit_per_host=_CONNECTIONS_PER_HOST, keepalive_timeout=_KEEPALIVE_S)
            self._session = aiohttp.ClientSession(connector=connector)
            self._session_loop = loop
        return self._session

    def _breaker_listener(self, label: str) -> Callable[[BreakerState, BreakerState], None]:
        def on_change(old_state: BreakerState, new_state: BreakerState) -> None:
            if new_state == "open" and old_state == "closed":
                log.warning("rpc circuit opened for %s endpoint %s: it keeps failing; sending elsewhere",
                            self.chain, label)
            elif new_state == "open":
                log.info("rpc circuit re-opened for %s endpoint %s: trial call failed", self.chain, label)
            elif new_state == "closed":
                log.info("rpc circuit closed for %s endpoint %s: answering again", self.chain, label)

        return on_change
