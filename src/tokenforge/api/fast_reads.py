"""Cache hits answered before FastAPI: ``GET /v1/tokens/{token_id}`` and ``GET /v1/tokens``.

A token's detail is a hit when both its token body and its market part are stored; it is
answered with them spliced as the route does (:func:`tokenforge.market.analytics.detail_body`).

A hot read costs one store round trip; routing, validation and dependency injection would
cost many times that. :class:`FastReads` (pure ASGI, just inside
:class:`~tokenforge.api.middleware.ObservabilityMiddleware`, so request ids and HTTP metrics
stay the same) builds the cache key exactly as the route does
(:func:`tokenforge.api.routes.tokens.list_key`), asks :meth:`tokenforge.cache.Cache.peek`
for a valid stored body, and on a hit answers with the route's own response
(:func:`~tokenforge.api.routes.tokens.json_response`: the same bytes and headers). Anything
else goes to FastAPI unchanged: a miss, a store that is down, a key whose invalidation has
not reached the store, a query it does not read exactly as the route would (an unknown or
repeated parameter, a value not in canonical form), a request with a body, a test that
overrides the cache dependency, and every request while tracing is on (the route's server
span must not go missing).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import get_args
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from tokenforge.api.deps import get_cache
from tokenforge.api.routes.tokens import PAGE_SIZE, json_response, list_filters, list_key
from tokenforge.api.schemas.tokens import CURSOR_PATTERN
from tokenforge.cache import TOKEN, TOKEN_LIST, Cache, Entry
from tokenforge.domain.chains import ChainName
from tokenforge.domain.jobs import TokenStatus, could_be_id
from tokenforge.errors import ValidationFailed
from tokenforge.market.analytics import MARKET, detail_body
from tokenforge.observability import tracing
from tokenforge.store.repositories.market import TOKEN_SORTS

LIST_PATH = "/v1/tokens"
DETAIL_PATH = LIST_PATH + "/{token_id}"
_DETAIL_PREFIX = LIST_PATH + "/"
_CHAINS = frozenset(get_args(ChainName))
_STATUSES = {s.value: s for s in TokenStatus}
_CURSOR = re.compile(CURSOR_PATTERN)
_LIST_PARAMS = frozenset({"chain", "status", "limit", "cursor", "creator", "sort"})
_CANONICAL_INT = re.compile(r"[1-9][0-9]{0,5}")
_BODY_HEADERS = (b"content-length", b"transfer-encoding")


def lookup(path: str, query_string: bytes) -> tuple[Entry, str, str] | None:
    """``(entry, key, route template)`` of a read the cache may answer, or None when in doubt."""
    if path == LIST_PATH:
        key = _list_key(query_string)
        return None if key is None else (TOKEN_LIST, key, LIST_PATH)
    if path.startswith(_DETAIL_PREFIX) and not query_string:
        token_id = path[len(_DETAIL_PREFIX) :]
        if could_be_id(token_id):
            return TOKEN, token_id, DETAIL_PATH
    return None


def _list_key(query_string: bytes) -> str | None:
    """The route's cache key for this query, when every parameter is one the route reads
    once, in the form it would validate to; None otherwise. A value the route would refuse
    yields a key it never stores (a miss), so only cursors, which decode, are checked here."""
    params: dict[str, str] = {}
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if name not in _LIST_PARAMS or name in params:
            return None
        params[name] = value
    chain, status, limit = params.get("chain"), params.get("status"), params.get("limit")
    if (chain is not None and chain not in _CHAINS) or (status is not None and status not in _STATUSES):
        return None
    if limit is not None and not _CANONICAL_INT.fullmatch(limit):
        return None
    sort = params.get("sort", "created")
    if sort not in TOKEN_SORTS:
        return None
    cursor = params.get("cursor")
    if cursor is not None and not _CURSOR.fullmatch(cursor):
        return None
    try:
        before, creator = list_filters(cursor, params.get("creator"), sort)
    except ValidationFailed:
        return None
    page_size = PAGE_SIZE if limit is None else int(limit)
    return list_key(chain, None if status is None else _STATUSES[status], page_size, before, creator, sort)


@dataclass(frozen=True, slots=True)
class _Route:
    """What the metrics read of the route that would have answered (its template)."""

    path_format: str


class FastReads:
    """Answers cache hits of the token reads (see the module docstring); passes the rest on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._routes = {template: _Route(template) for template in (LIST_PATH, DETAIL_PATH)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and not scope.get("root_path"):
            found = lookup(scope["path"], scope["query_string"])
            cache = _cache(scope) if found is not None else None
            if found is not None and cache is not None and not _has_body(scope) and not tracing.enabled():
                entry, key, template = found
                body = await cache.peek(entry, key)
                if body is not None and template == DETAIL_PATH:
                    market = await cache.peek(MARKET, key)
                    body = None if market is None else detail_body(body, market)
                if body is not None:
                    scope["route"] = self._routes[template]
                    await json_response(body)(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def _cache(scope: Scope) -> Cache | None:
    """The cache the route would use, or None when there is none or a test replaced it."""
    app = scope.get("app")
    if app is None or get_cache in app.dependency_overrides:
        return None
    return getattr(getattr(app.state, "container", None), "cache", None)


def _has_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name in _BODY_HEADERS and (name != b"content-length" or value.strip() != b"0"):
            return True
    return False
