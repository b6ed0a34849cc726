"""JSON-RPC 2.0 over HTTP as the devnet speaks it: one call or a batch (array) per POST body.

:func:`answer_body` parses a body, hands all its calls to a :class:`Dispatcher` at once (a
batch costs one hop to the chain's thread, not one per call) and serializes the replies
with orjson, in the order of the calls. Envelope errors (a body that is not JSON, a call
that is not an object, an empty batch) are answered here, in the wording of the node the
dispatcher imitates (:class:`Wording`). Calls without an ``id`` are notifications: they
run and get no reply; a body of notifications only is answered with an empty body.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import orjson

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603


class RpcError(Exception):
    """A JSON-RPC error answer: ``{"code": code, "message": message[, "data": data]}``."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def as_json(self) -> dict:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


@dataclass(frozen=True, slots=True)
class Wording:
    """How a node family words envelope errors."""

    parse_error: str
    invalid_request: str
    empty_batch: str


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    params: Any  # as sent; [] when absent. Dispatchers check the shape.


class Dispatcher(Protocol):
    wording: Wording

    async def run_calls(self, calls: list[Call]) -> list[Any]:
        """One result per call, in order; a failed call's entry is an :class:`RpcError`."""
        ...


_NO_ID = object()


async def answer_body(body: bytes, dispatcher: Dispatcher) -> bytes:
    """The HTTP response body for the JSON-RPC request ``body``."""
    wording = dispatcher.wording
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return orjson.dumps(_error_reply(None, RpcError(PARSE_ERROR, wording.parse_error)))
    batch = isinstance(payload, list)
    items = payload if batch else [payload]
    if not items:
        return orjson.dumps(_error_reply(None, RpcError(INVALID_REQUEST, wording.empty_batch)))
    ids: list[Any] = []
    calls: list[Call] = []
    replies: list[Any] = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("method"), str):
            req_id = item.get("id") if isinstance(item, dict) else None
            replies.append(_error_reply(req_id, RpcError(INVALID_REQUEST, wording.invalid_request)))
            continue
        params = item.get("params")
        calls.append(Call(item["method"], [] if params is None else params))
        ids.append(item.get("id", _NO_ID))
        replies.append(None)  # filled below
    results = await dispatcher.run_calls(calls) if calls else []
    it = iter(zip(ids, results, strict=True))
    out = []
    for reply in replies:
        if reply is None:
            req_id, result = next(it)
            if req_id is _NO_ID:
                continue  # a notification
            reply = _error_reply(req_id, result) if isinstance(result, RpcError) else _result_reply(req_id, result)
        out.append(reply)
    if not out:
        return b""
    return orjson.dumps(out if batch else out[0])


def _result_reply(req_id: Any, result: Any) -> dict:
    return {"jsonrpc": "2.0", "id": req_id, "result": result}


def _error_reply(req_id: Any, error: RpcError) -> dict:
    return {"jsonrpc": "2.0", "id": req_id, "error": error.as_json()}
