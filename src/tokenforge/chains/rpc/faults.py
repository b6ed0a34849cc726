"""Which answers blame the endpoint: the pool's classification of HTTP and JSON-RPC replies.

An *endpoint fault* is a transport failure (connection refused/reset/dropped, timeout or
hang), HTTP 429 or 5xx (and 401/403/404: a bad API key or path serves nobody), a body
that is not a JSON-RPC answer, or a JSON-RPC error that blames the node rather than the
request (rate limit, lagging node, busy, bare internal error). Any other JSON-RPC error
is the node's real answer about the request and is not a fault.

A :class:`Fault` has one of three kinds, which the pool turns into the code it raises
when every endpoint was at fault (:data:`FAULT_CODES`). Reasons are short and never quote
an exception's text (it may name the URL).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp

from tokenforge.errors import ErrorCode

FaultKind = Literal["rate_limited", "timeout", "unavailable"]

#: The code a request fails with when every endpoint tried had faults of one kind.
FAULT_CODES: dict[FaultKind, ErrorCode] = {
    "rate_limited": ErrorCode.RATE_LIMITED,
    "timeout": ErrorCode.RPC_TIMEOUT,
    "unavailable": ErrorCode.RPC_UNAVAILABLE,
}


@dataclass(frozen=True, slots=True)
class Fault:
    kind: FaultKind
    reason: str  # short, never contains a URL
    retry_after_s: float | None = None


# --- JSON-RPC error answers --------------------------------------------------------------------

# Words that mark a node's real answer about the request itself; checked first, so a revert
# reason or a Solana simulation log that happens to say "timeout" is never taken for a fault.
_REQUEST_ANSWER_WORDS: tuple[str, ...] = (
    "revert",
    "nonce",
    "already known",
    "known transaction",
    "already imported",
    "underpriced",
    "insufficient",
    "invalid",
    "blockhash",
    "simulation",
    "gas",
    "signature",
    "query returned",
    "block range",
    "response size",
    "too large",
    "execution",
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
_BARE_INTERNAL_ERRORS = frozenset(
    {
        "",
        "internal error",
        "internal server error",
        "internal_error",
        "internal json-rpc error",
        "internal json-rpc error.",
    }
)


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


def answer_fault(answer: Any, is_batch: bool) -> Fault | None:
    """The fault in a parsed JSON body, or None when it is a proper JSON-RPC answer."""
    if isinstance(answer, dict):
        if is_batch and "error" not in answer:
            return Fault("unavailable", "unexpected answer to a batch")
        return _object_fault(answer)
    if isinstance(answer, list) and is_batch:
        for item in answer:
            fault = _object_fault(item) if isinstance(item, dict) else Fault("unavailable", "malformed batch answer")
            if fault is not None:
                return fault
        return None
    return Fault("unavailable", "not a JSON-RPC answer")


def _object_fault(answer: dict) -> Fault | None:
    error = answer.get("error")
    if error is None:
        return None if "result" in answer else Fault("unavailable", "not a JSON-RPC answer")
    if not isinstance(error, dict):
        return Fault("unavailable", "malformed JSON-RPC error")
    verdict = classify_rpc_error(error.get("code"), error.get("message"))
    return None if verdict is None else Fault(verdict[0], verdict[1])


# --- HTTP and transport --------------------------------------------------------------------------

#: Statuses that condemn the endpoint whatever the body says (a bad or expired API key, a wrong path).
ENDPOINT_REFUSALS = frozenset({401, 403, 404})


def http_fault(status: int, retry_after: str | None) -> Fault:
    if status == 429:
        return Fault("rate_limited", "http 429", _parse_retry_after(retry_after))
    if status in (408, 504):
        return Fault("timeout", f"http {status}")
    return Fault("unavailable", f"http {status}")


def _parse_retry_after(value: str | None) -> float | None:
    try:
        seconds = float(value) if value is not None else None
    except ValueError:  # an HTTP date: not worth parsing
        return None
    return seconds if seconds is not None and 0 <= seconds <= 3600 else None


def transport_reason(exc: BaseException) -> str:
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


def is_batch(payload: bytes) -> bool:
    """True when the JSON-RPC request body is a batch (a JSON array)."""
    head = payload[:1]
    if head.isspace():
        head = payload.lstrip()[:1]
    return head == b"["
