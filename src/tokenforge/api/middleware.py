"""Per request: a request id and HTTP metrics (pure ASGI middleware).

* **Request id**: a sane incoming ``X-Request-ID`` (at most 64 of ``[A-Za-z0-9._-]``) is
  kept, anything else replaced by a new one; it is bound to every log line of the request
  (``structlog.contextvars``), carried into the outbox rows the request writes
  (:func:`tokenforge.observability.context.headers`) and returned in the response's
  ``X-Request-ID``.
* **Metrics**: ``tokenforge_http_requests_total{route,method,status}`` and
  ``tokenforge_http_request_duration_seconds{route,method}`` by route *template*
  (``/v1/tokens/{token_id}``; ``unmatched`` when no route matched), so label values stay
  bounded (methods beyond the usual ones count as ``_OTHER``). The duration runs to the
  response start: a Server-Sent Events stream counts when it opens, not when it ends.

The server span of each request is FastAPI's own (its native telemetry, given this
process's tracer provider by :func:`tokenforge.observability.tracing.fastapi_telemetry`);
a second one here would only duplicate it.

Pure ASGI (not ``BaseHTTPMiddleware``), so streaming responses pass through untouched.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tokenforge.observability.metrics import HTTP_DURATION, HTTP_REQUESTS

HEADER = b"x-request-id"
_SANE_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")
UNMATCHED = "unmatched"
#: Method label values; any other method a client sends is counted as ``_OTHER``.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def request_id_from(scope: Scope) -> str:
    """The request's own id if it sent a sane one, else a new one."""
    for name, value in scope.get("headers", ()):
        if name == HEADER:
            if _SANE_ID.fullmatch(value):
                return value.decode("ascii")
            break
    return os.urandom(16).hex()


def route_template(scope: Scope) -> str:
    """The path template of the route that matched (set by the router), or ``unmatched``."""
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        #: (route, method, status) → the counter and histogram series (label look-ups cost
        #: more than the counting; the keys are bounded by the routes)
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method = scope["method"] if scope["method"] in _METHODS else "_OTHER"
        request_id = request_id_from(scope)
        answered = False

        def observe(status: int) -> None:
            key = (route_template(scope), method, status)
            series = self._series.get(key)
            if series is None:
                series = HTTP_REQUESTS.labels(key[0], method, str(status)), HTTP_DURATION.labels(key[0], method)
                self._series[key] = series
            series[0].inc()
            series[1].observe(time.perf_counter() - started)

        async def send_with_id(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start" and not answered:
                answered = True
                message["headers"] = [*message.get("headers", ()), (HEADER, request_id.encode("ascii"))]
                observe(message["status"])
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            except Exception:
                if not answered:  # the server's error handler answers 500 outside of us
                    observe(500)
                raise
