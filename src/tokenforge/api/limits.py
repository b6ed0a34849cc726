"""Limits that keep one request from crashing the process or exhausting its memory.

:class:`RequestLimits` is an ASGI middleware in front of every route. It reads the request
body as it streams in and refuses it before the framework sees it:

* ``413`` (``/problems/body-too-large``) as soon as more than ``max_body_bytes`` have
  arrived, or at once when ``Content-Length`` announces more; nothing past the limit is
  kept in memory.
* ``422`` (``/problems/body-too-deep``, field ``body``) as soon as a JSON body nests
  arrays or objects deeper than :data:`MAX_JSON_DEPTH`. Every body this API takes is a
  flat object; the depth is counted on the raw bytes (:class:`JsonDepthGauge`), so the
  JSON parser never recurses on hostile input.
* ``408`` (``/problems/request-timeout``) when the body has not fully arrived within
  ``body_timeout_s`` of the first read (a client trickling bytes holds a connection).

These refusals close the connection (``Connection: close``), so the server does not read
the rest of an oversized body. A body within the limits is handed to the route unchanged;
a client that disconnects before its body is complete gets no answer and no route runs.

:func:`cap_recursion_limit` keeps the interpreter's recursion limit where C-level
recursion (the JSON parser, ``repr``, pickling) cannot overrun a thread's stack, whatever
a dependency set when it was imported.
"""

from __future__ import annotations

import asyncio
import importlib
import re
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.requests import Request

from tokenforge.api.problems import problem_response
from tokenforge.errors import ErrorCode

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Deepest nesting of arrays and objects a JSON request body may have (bodies are flat
#: objects: depth 1).
MAX_JSON_DEPTH = 32

#: The interpreter recursion limit server processes keep. py-evm raises the limit to
#: 1024 × 12 at import so the embedded EVM can reach its 1024 call frames; py_ecc raises it
#: to 100,000, where a nested structure of ~70,000 levels overruns the 8 MiB C stack and
#: the process dies with SIGSEGV instead of raising ``RecursionError``. 12,288 keeps what
#: py-evm needs with a wide margin below that.
RECURSION_LIMIT = 12_288

#: Modules that raise the recursion limit when first imported, imported before capping so
#: their one-time ``sys.setrecursionlimit`` cannot undo the cap later. (py-evm's ``eth``
#: is imported lazily with the embedded chain; it only raises the limit to
#: :data:`RECURSION_LIMIT`, so it needs no pre-import.)
_RAISE_AT_IMPORT = ("py_ecc",)


def cap_recursion_limit(limit: int = RECURSION_LIMIT) -> int:
    """Lower the interpreter's recursion limit to ``limit`` if something raised it higher;
    returns the limit in force. Call it after importing the application and again after
    the chains are opened (a chain adapter may import a library that raises it)."""
    for name in _RAISE_AT_IMPORT:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    if sys.getrecursionlimit() > limit:
        sys.setrecursionlimit(limit)
    return sys.getrecursionlimit()


_STRUCTURAL = re.compile(rb'[\[\]{}"\\]')
_OPEN = frozenset(b"[{")
_CLOSE = frozenset(b"]}")
_QUOTE, _BACKSLASH = ord('"'), ord("\\")


class JsonDepthGauge:
    """Tracks how deep a JSON text nests as its bytes are fed in chunks, without parsing it.

    Brackets inside strings (with their escapes) do not count; a closing bracket never
    takes the count below zero, so stray closers cannot hide openers. For any text a JSON
    parser would recurse into N levels deep, ``feed`` reports ``False`` once N exceeds
    ``max_depth``. A text with no more than ``max_depth`` opening brackets in all is never
    scanned byte by byte.
    """

    __slots__ = ("_escaped", "_held", "_in_string", "_openers", "_scanning", "depth", "max_depth")

    def __init__(self, max_depth: int = MAX_JSON_DEPTH) -> None:
        self.max_depth = max_depth
        self.depth = 0
        self._openers = 0
        self._held: list[bytes] = []
        self._scanning = False
        self._in_string = False
        self._escaped = False

    def feed(self, chunk: bytes) -> bool:
        """Take the next bytes; ``False`` once the text has nested deeper than allowed."""
        if not self._scanning:
            self._openers += chunk.count(b"[") + chunk.count(b"{")
            self._held.append(chunk)
            if self._openers <= self.max_depth:
                return True
            self._scanning = True
            chunk, self._held = b"".join(self._held), []
        return self._scan(chunk)

    def _scan(self, chunk: bytes) -> bool:
        skip = 0 if self._escaped else -1  # offset of a byte escaped by a backslash
        self._escaped = False
        for match in _STRUCTURAL.finditer(chunk):
            at = match.start()
            if at == skip:
                continue
            byte = chunk[at]
            if self._in_string:
                if byte == _BACKSLASH:
                    skip = at + 1
                    self._escaped = skip == len(chunk)
                elif byte == _QUOTE:
                    self._in_string = False
            elif byte == _QUOTE:
                self._in_string = True
            elif byte in _OPEN:
                self.depth += 1
                if self.depth > self.max_depth:
                    return False
            elif byte in _CLOSE and self.depth > 0:
                self.depth -= 1
        return True


def _problem_code(code: ErrorCode) -> str:
    return code.value.replace("_", "-")


def _is_json(content_type: str | None) -> bool:
    """Whether the framework would parse a body of this type as JSON (absent counts)."""
    if not content_type:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class RequestLimits:
    """ASGI middleware enforcing the body limits described in the module docstring."""

    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, body_timeout_s: float, max_json_depth: int = MAX_JSON_DEPTH
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.max_json_depth = max_json_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k: v for k, v in scope.get("headers", ()) if k in (b"content-length", b"content-type")}
        declared = headers.get(b"content-length", b"").strip()
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(scope, send)
            return
        content_type = headers.get(b"content-type")
        gauge = (
            JsonDepthGauge(self.max_json_depth) if _is_json(content_type and content_type.decode("latin-1")) else None
        )
        chunks: list[bytes] = []
        size = 0
        deadline = asyncio.get_running_loop().time() + self.body_timeout_s
        try:
            while True:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
                if message["type"] != "http.request":
                    return  # the client went away mid-body: nobody to answer
                body = message.get("body", b"")
                if gauge is not None and body and not gauge.feed(body):
                    await self._refuse(
                        scope,
                        send,
                        422,
                        _problem_code(ErrorCode.BODY_TOO_DEEP),
                        "Invalid request",
                        f"body: JSON nests deeper than {self.max_json_depth} levels",
                        errors=[{"field": "body", "message": f"nests deeper than {self.max_json_depth} levels"}],
                    )
                    return
                size += len(body)
                if size > self.max_body_bytes:
                    await self._too_large(scope, send)
                    return
                if body:
                    chunks.append(body)
                if not message.get("more_body", False):
                    break
        except TimeoutError:
            await self._refuse(
                scope,
                send,
                408,
                "request-timeout",
                "Request timeout",
                f"the body did not arrive within {self.body_timeout_s:g} s",
            )
            return
        replay: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        replayed = False

        async def replaying_receive() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return replay
            return await receive()

        await self.app(scope, replaying_receive, send)

    async def _too_large(self, scope: Scope, send: Send) -> None:
        await self._refuse(
            scope,
            send,
            413,
            _problem_code(ErrorCode.BODY_TOO_LARGE),
            "Request too large",
            f"the body is larger than {self.max_body_bytes} bytes",
        )

    @staticmethod
    async def _refuse(
        scope: Scope,
        send: Send,
        status: int,
        code: str,
        title: str,
        detail: str,
        errors: list[dict[str, str]] | None = None,
    ) -> None:
        async def no_body() -> Message:
            return {"type": "http.disconnect"}

        response = problem_response(
            Request(scope), status, code, title, detail, errors, headers={"Connection": "close"}
        )
        await response(scope, no_body, send)
