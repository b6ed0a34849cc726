"""A pool of JSON-RPC HTTP endpoints for one chain, with per-endpoint circuit breakers.

Every request goes to a weighted-random first choice among the endpoints whose breaker lets
a call through, then, if that endpoint is at fault, to the remaining ones by descending
weight — all within the same request. An *endpoint fault* (:mod:`.faults` decides) is a
transport failure (connection refused/reset/dropped, timeout or hang), HTTP 429 or 5xx, a
body that is not a JSON-RPC answer, or a JSON-RPC error that blames the node rather than
the request (rate limit, lagging node, busy, bare internal error). Any other JSON-RPC error
is the node's real answer and is returned unchanged for the chain adapters to classify.

When every endpoint tried was at fault the request fails with a
:class:`~tokenforge.errors.TransientError` (``rate_limited``, ``rpc_timeout`` or
``rpc_unavailable``). Endpoint URLs often carry API keys, so only :func:`redact_url` labels
(scheme, host and port) ever appear in logs, errors, metrics (requests, latency and
breaker state per endpoint: :mod:`tokenforge.observability.metrics`) and
:meth:`RpcPool.health`. Each request is one client span (:mod:`tokenforge.observability.tracing`).

An endpoint with ``max_rps`` has a client-side budget (:class:`tokenforge.outbound.CallBudget`,
per process): a call over it waits for its turn before it is sent (the wait is not counted
as the endpoint's latency and never fails the call), so a provider never bans TokenForge.

One pool belongs to one event loop: its aiohttp session is created lazily inside the
running loop and re-created if the pool is used from another loop later.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Any, Self

import aiohttp
import orjson

from tokenforge.errors import ErrorCode, TransientError
from tokenforge.observability.metrics import RPC_BREAKER_OPEN, RPC_DURATION, RPC_REQUESTS
from tokenforge.observability.tracing import span
from tokenforge.outbound import CallBudget, Unlimited, budget

from .breaker import BreakerState, CircuitBreaker
from .endpoints import EndpointConfig, redact_url
from .faults import (
    ENDPOINT_REFUSALS,
    FAULT_CODES,
    Fault,
    answer_fault,
    classify_rpc_error,
    http_fault,
    is_batch,
    transport_reason,
)

__all__ = ["EndpointConfig", "RpcPool", "classify_rpc_error", "redact_url"]

log = logging.getLogger(__name__)

_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
_CONNECTIONS_PER_HOST = 100
_KEEPALIVE_S = 30.0
_MAX_REASON = 80


class _Endpoint:
    __slots__ = (
        "breaker",
        "budget",
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
        self.budget: CallBudget | Unlimited = budget(config.max_rps)
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
            breaker = CircuitBreaker(
                failure_threshold=failure_threshold,
                reset_after_s=reset_after_s,
                clock=clock,
                on_change=self._breaker_listener(label),
            )
            self._endpoints.append(_Endpoint(config, label, breaker))
            RPC_BREAKER_OPEN.labels(chain, label).set(0)

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
        request = {
            "jsonrpc": "2.0",
            "id": next(self._ids),
            "method": method,
            "params": [] if params is None else params,
        }
        _, answer = await self._send(orjson.dumps(request), method)
        return answer

    def health(self) -> list[dict]:
        """Per endpoint, in configuration order: redacted label, breaker state and counters."""
        return [
            {
                "label": endpoint.label,
                "weight": endpoint.config.weight,
                "timeout_s": endpoint.config.timeout_s,
                "max_rps": endpoint.config.max_rps,
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
        batch = is_batch(payload)
        faults: list[tuple[_Endpoint, Fault]] = []
        with span(f"rpc {method}", kind="client", attributes={"rpc.system": "jsonrpc", "rpc.method": method}):
            for endpoint, forced in self._order():
                if not forced and not endpoint.breaker.allow():  # opened or trial taken meanwhile
                    continue
                outcome = await self._attempt(session, endpoint, payload, batch, method)
                if isinstance(outcome, Fault):
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
        rest = sorted(
            (endpoint for endpoint in allowed if endpoint is not first), key=lambda endpoint: -endpoint.config.weight
        )
        return [(first, False), *((endpoint, False) for endpoint in rest)]

    async def _attempt(
        self, session: aiohttp.ClientSession, endpoint: _Endpoint, payload: bytes, batch: bool, method: str
    ) -> tuple[bytes, Any] | Fault:
        settled = False
        try:
            await endpoint.budget.acquire()  # over the endpoint's budget: wait for a slot
            endpoint.requests += 1
            started = time.perf_counter()
            try:
                async with session.post(
                    endpoint.config.url, data=payload, headers=_HEADERS, timeout=endpoint.client_timeout
                ) as response:
                    raw = await response.read()
                    status = response.status
                    retry_after = response.headers.get("Retry-After")
            except TimeoutError:
                fault: Fault | None = Fault("timeout", f"timeout after {endpoint.config.timeout_s:g}s")
            except (aiohttp.ClientError, OSError) as exc:
                fault = Fault("unavailable", transport_reason(exc))
            else:
                fault, answer = self._judge(status, retry_after, raw, batch)
            elapsed_s = time.perf_counter() - started
            endpoint.last_latency_ms = round(elapsed_s * 1000, 1)
            settled = True
            RPC_REQUESTS.labels(self.chain, endpoint.label, "ok" if fault is None else "error").inc()
            RPC_DURATION.labels(self.chain, endpoint.label).observe(elapsed_s)
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
    def _judge(status: int, retry_after: str | None, raw: bytes, batch: bool) -> tuple[Fault | None, Any]:
        if status == 429 or status >= 500 or status in ENDPOINT_REFUSALS:
            # 401/403/404: a bad or expired API key, a wrong path: this endpoint cannot serve
            # anyone, whatever its body says
            return http_fault(status, retry_after), None
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return (
                Fault("unavailable", "answer is not JSON") if 200 <= status < 300 else http_fault(status, retry_after)
            ), None
        fault = answer_fault(answer, batch)
        if (
            fault is not None
            and not 200 <= status < 300
            and not (isinstance(answer, dict) and isinstance(answer.get("error"), dict))
        ):
            fault = http_fault(status, retry_after)  # e.g. a 401/404 page that happens to be JSON
        return fault, answer

    def _exhausted(self, method: str, faults: list[tuple[_Endpoint, Fault]]) -> TransientError:
        kinds = {fault.kind for _, fault in faults}
        code = FAULT_CODES[kinds.pop()] if len(kinds) == 1 else ErrorCode.RPC_UNAVAILABLE
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
            connector = aiohttp.TCPConnector(
                limit=_CONNECTIONS_PER_HOST * len(self._endpoints),
                limit_per_host=_CONNECTIONS_PER_HOST,
                keepalive_timeout=_KEEPALIVE_S,
            )
            self._session = aiohttp.ClientSession(connector=connector)
            self._session_loop = loop
        return self._session

    def _breaker_listener(self, label: str) -> Callable[[BreakerState, BreakerState], None]:
        def on_change(old_state: BreakerState, new_state: BreakerState) -> None:
            RPC_BREAKER_OPEN.labels(self.chain, label).set(1 if new_state == "open" else 0)
            if new_state == "open" and old_state == "closed":
                log.warning(
                    "rpc circuit opened for %s endpoint %s: it keeps failing; sending elsewhere", self.chain, label
                )
            elif new_state == "open":
                log.info("rpc circuit re-opened for %s endpoint %s: trial call failed", self.chain, label)
            elif new_state == "closed":
                log.info("rpc circuit closed for %s endpoint %s: answering again", self.chain, label)

        return on_change
