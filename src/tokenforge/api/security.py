"""Security headers and CORS for every response (an ASGI middleware).

:class:`SecurityHeaders` adds to every response:

* ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer`` (nothing this API
  serves links out with a referrer it needs), ``X-Frame-Options: DENY``;
* a ``Content-Security-Policy`` with ``frame-ancestors 'none'``:

  - API answers (JSON, problem+json, SSE): ``default-src 'none'`` (nothing in them may
    load or run anything);
  - the launch page at ``/``: only what the page uses — scripts, styles, images, fonts and
    connections (``fetch``, ``EventSource``) from its own origin, plus its inline
    ``<script>`` and ``<style>`` blocks by SHA-256 hash, computed once from the page the
    package ships (``api/static/index.html``). Inline event handlers, ``style=``
    attributes, ``eval`` and any other origin are refused;
  - ``/docs`` and ``/redoc`` (FastAPI's Swagger UI and ReDoc, whose assets come from a
    CDN: no Python package ships them): served only while every configured chain is on an
    ``embedded`` or ``local`` network, with a policy that allows that CDN on these pages
    alone and their inline scripts by hash. On testnets and mainnets they answer 404
    (a production page loads nothing from outside); ``/openapi.json`` stays for tools;
  - any other HTML: the page policy without inline hashes;

* ``Strict-Transport-Security`` when ``public_url`` is ``https://…``.

Headers a route set itself are kept. CORS is strict: only ``settings.cors_origins`` get
``Access-Control-Allow-Origin`` (their own origin, with credentials; never ``*``); a
preflight from them is answered 204 here, a preflight from any other origin gets a 403
problem, and an ordinary request from another origin is served without CORS headers (so
the browser withholds the answer from that page).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from importlib import resources
from typing import Any

from starlette.requests import Request

from tokenforge.api.problems import problem_response
from tokenforge.config import Settings
from tokenforge.domain.chains import Network

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Where the interactive API documentation lives (FastAPI's defaults).
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})
#: The CDN FastAPI's documentation pages load Swagger UI and ReDoc from.
DOCS_CDN = "https://cdn.jsdelivr.net"
#: How long a browser may remember HTTPS-only for this host (two years).
HSTS_MAX_AGE_S = 2 * 365 * 24 * 3600
#: How long a browser may cache a preflight answer.
CORS_MAX_AGE_S = 600
CORS_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
CORS_REQUEST_HEADERS = frozenset({"authorization", "content-type", "idempotency-key", "last-event-id", "accept"})
CORS_EXPOSED_HEADERS = (
    "Location",
    "Retry-After",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "RateLimit-Policy",
    "X-Request-ID",
)

API_CSP = "default-src 'none'; frame-ancestors 'none'"
_PAGE_BASE = (
    "default-src 'none'",
    "connect-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "manifest-src 'self'",
    "form-action 'self'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
)

_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc\s*=)[^>]*>(.*?)</script\s*>", re.DOTALL | re.IGNORECASE)
_INLINE_STYLE = re.compile(rb"<style[^>]*>(.*?)</style\s*>", re.DOTALL | re.IGNORECASE)


def csp_hashes(blocks: Iterable[bytes]) -> list[str]:
    """CSP source expressions (``'sha256-…'``) allowing exactly these inline blocks."""
    return sorted({f"'sha256-{base64.b64encode(hashlib.sha256(b).digest()).decode()}'" for b in blocks})


def page_csp(html: bytes) -> str:
    """The policy of a page served as ``html``: own-origin resources and its inline
    ``<script>``/``<style>`` blocks by hash."""
    scripts = " ".join(["'self'", *csp_hashes(_INLINE_SCRIPT.findall(html))])
    styles = " ".join(["'self'", *csp_hashes(_INLINE_STYLE.findall(html))])
    return "; ".join([*_PAGE_BASE, f"script-src {scripts}", f"style-src {styles}"])


def docs_csp(html: bytes) -> str:
    """The policy of FastAPI's Swagger UI / ReDoc page ``html``: the page policy plus the CDN
    for scripts, styles and images, ReDoc's fonts and its blob: workers. ReDoc injects
    styles at run time, so styles are not restricted to hashes here."""
    scripts = " ".join(["'self'", DOCS_CDN, *csp_hashes(_INLINE_SCRIPT.findall(html))])
    return "; ".join(
        [
            "default-src 'none'",
            "connect-src 'self'",
            f"img-src 'self' data: {DOCS_CDN} https://fastapi.tiangolo.com",
            "font-src 'self' https://fonts.gstatic.com",
            "worker-src blob:",
            "form-action 'self'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
            f"script-src {scripts}",
            f"style-src 'self' 'unsafe-inline' {DOCS_CDN} https://fonts.googleapis.com",
        ]
    )


def _launch_page() -> bytes:
    return resources.files("tokenforge.api").joinpath("static/index.html").read_bytes()


def docs_allowed(settings: Settings) -> bool:
    """Whether the CDN-backed documentation pages are served: only while every chain is on
    a local network (nothing in production loads from outside)."""
    return all(c.network in (Network.EMBEDDED, Network.LOCAL) for c in settings.chains.values())


class SecurityHeaders:
    """ASGI middleware adding the headers and CORS answers the module docstring describes."""

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.origins = frozenset(settings.cors_origins)
        self.docs_allowed = docs_allowed(settings)
        common = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
        ]
        if settings.resolved_public_url.lower().startswith("https://"):
            common.append((b"strict-transport-security", b"max-age=%d" % HSTS_MAX_AGE_S))
        self._common = common
        self._api_csp = API_CSP.encode()
        self._index_csp = page_csp(_launch_page()).encode()
        self._html_csp = page_csp(b"").encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path in DOCS_PATHS and not self.docs_allowed:
            await self._respond(
                scope,
                send,
                404,
                "not-found",
                "Not Found",
                "the API documentation pages are "
                "served on local networks only; the OpenAPI document is at /openapi.json",
            )
            return
        origin = _header(scope, b"origin")
        if origin is not None and scope["method"] == "OPTIONS" and _header(scope, b"access-control-request-method"):
            await self._preflight(scope, send, origin)
            return
        cors = self._cors_headers(origin)
        if path in DOCS_PATHS:
            await self.app(scope, receive, _BufferedHtml(send, self, cors))
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = self.headers_for(path, message.get("headers", []), cors)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    # -- headers ---------------------------------------------------------------------------
    def headers_for(
        self, path: str, headers: list[tuple[bytes, bytes]], cors: list[tuple[bytes, bytes]], *, html: bytes = b""
    ) -> list[tuple[bytes, bytes]]:
        """``headers`` of a response to ``path`` with the security and CORS headers added
        (a header the route set is kept). ``html``: the body, for documentation pages."""
        out = list(headers)
        present = {k.lower() for k, _ in out}
        for name, value in self._common:
            if name not in present:
                out.append((name, value))
        if b"content-security-policy" not in present:
            out.append((b"content-security-policy", self._csp(path, out, html)))
        out.extend(cors)
        return out

    def _csp(self, path: str, headers: list[tuple[bytes, bytes]], html: bytes) -> bytes:
        content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
        if not content_type.lower().startswith(b"text/html"):
            return self._api_csp
        if path == "/":
            return self._index_csp
        if path in DOCS_PATHS:
            return docs_csp(html).encode()
        return self._html_csp

    # -- CORS ------------------------------------------------------------------------------
    def _cors_headers(self, origin: str | None) -> list[tuple[bytes, bytes]]:
        if origin is None or not self.origins:
            return []
        vary = [(b"vary", b"Origin")]
        if origin not in self.origins:
            return vary
        return [
            *vary,
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-allow-credentials", b"true"),
            (b"access-control-expose-headers", ", ".join(CORS_EXPOSED_HEADERS).encode()),
        ]

    async def _preflight(self, scope: Scope, send: Send, origin: str) -> None:
        method = (_header(scope, b"access-control-request-method") or "").strip().upper()
        asked = {h.strip().lower() for h in (_header(scope, b"access-control-request-headers") or "").split(",")}
        asked.discard("")
        if origin not in self.origins:
            await self._respond(
                scope, send, 403, "forbidden", "Forbidden",
                f"origin {origin!r} may not call this API from a browser (TOKENFORGE_CORS_ORIGINS)",
            )  # fmt: skip
            return
        if method not in CORS_METHODS or not asked <= CORS_REQUEST_HEADERS:
            unknown = sorted(asked - CORS_REQUEST_HEADERS) or [method]
            await self._respond(
                scope, send, 403, "forbidden", "Forbidden", f"not allowed across origins: {', '.join(unknown)}"
            )
            return
        headers = [
            *self._cors_headers(origin),
            (b"access-control-allow-methods", ", ".join(CORS_METHODS).encode()),
            (b"access-control-allow-headers", ", ".join(sorted(CORS_REQUEST_HEADERS)).encode()),
            (b"access-control-max-age", str(CORS_MAX_AGE_S).encode()),
            (b"content-length", b"0"),
        ]
        await send({"type": "http.response.start", "status": 204, "headers": self.headers_for("", headers, [])})
        await send({"type": "http.response.body", "body": b""})

    async def _respond(self, scope: Scope, send: Send, status: int, code: str, title: str, detail: str) -> None:
        async def no_body() -> Message:
            return {"type": "http.disconnect"}

        cors = self._cors_headers(_header(scope, b"origin"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = self.headers_for("", message.get("headers", []), cors)
            await send(message)

        await problem_response(Request(scope), status, code, title, detail)(scope, no_body, send_with_headers)


class _BufferedHtml:
    """A ``send`` that holds a documentation page's response until its body is complete,
    so the policy can name the page's inline scripts by hash."""

    def __init__(self, send: Send, owner: SecurityHeaders, cors: list[tuple[bytes, bytes]]) -> None:
        self._send, self._owner, self._cors = send, owner, cors
        self._start: Message | None = None
        self._body: list[bytes] = []

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self._start = message
            return
        if message["type"] != "http.response.body" or self._start is None:
            await self._send(message)
            return
        self._body.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        body = b"".join(self._body)
        start, self._start = self._start, None
        start["headers"] = self._owner.headers_for("/docs", start.get("headers", []), self._cors, html=body)
        await self._send(start)
        await self._send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None
