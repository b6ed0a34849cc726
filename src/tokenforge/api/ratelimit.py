"""Inbound rate limits: budgets per client IP and per identity, checked before anything else.

:class:`RateLimits` (pure ASGI, outside :class:`~tokenforge.api.fast_reads.FastReads`, so
cached reads count too) classifies each HTTP request and spends one unit of every budget
that applies, with the ``limits`` library's sliding-window counter (async API):

* paths under ``/v1/auth/`` (sign-in nonces and verifications): ``rate_limit_signin_ip``,
  per client IP only;
* methods other than GET, HEAD and OPTIONS: ``rate_limit_writes_ip`` and
  ``rate_limit_writes_identity``, except the POSTs that write nothing
  (:data:`READ_POST_PATHS`: building an unsigned trade), which count as reads;
* everything else: ``rate_limit_reads_ip`` and ``rate_limit_reads_identity``;
* ``/healthz``, ``/readyz`` and ``/metrics`` are never limited, nor is anything while
  ``rate_limits_enabled`` is False.

The per-IP budget always applies; the per-identity one too when the request carries
``Authorization: Bearer <credential>``, and both must have room (a request the identity
budget refuses has still spent a unit of the per-IP one, and the other way round: it was a
request). The identity is a keyed BLAKE2b digest of the credential (not the digest the
database stores); the credential is never kept or logged. Limits run *before*
authentication, on purpose: a flood of bad or made-up credentials is refused by the per-IP
budget without costing a database look-up, and a request refused by authentication (401)
has spent its unit. A new credential per request gains nothing, the per-IP budget still
applies.

The client IP is the socket peer, unless that peer is in ``trusted_proxies``: then it is
the right-most ``X-Forwarded-For`` address that is not a trusted proxy (an unparsable entry
stops the walk at the proxy that passed it on). ``X-Forwarded-For`` from any other peer is
ignored, so it cannot be spoofed. IPv6 clients are counted per /64 (one subscriber's
allocation), IPv4-mapped IPv6 as the IPv4 address.

A refused request answers ``429`` problem+json (``/problems/too-many-requests``, ``detail``
naming the budget, e.g. ``writes per client IP: 120 per 1 minute``) with ``Retry-After``
(whole seconds, at least 1). Every limited answer, 429 or not, carries the headers of
draft-ietf-httpapi-ratelimit-headers (draft 07): ``RateLimit-Limit``,
``RateLimit-Remaining`` and ``RateLimit-Reset`` (seconds) for the tightest budget that
applied (the one with the least room left), and ``RateLimit-Policy`` listing each budget
(``120;w=60;comment="writes per client IP"``).

Storage: in process memory on the embedded default (``cache_url`` ``memory://`` or
``none://``: each API process then has its own budgets), Redis at ``cache_url`` when it is
``redis://`` / ``rediss://`` (redis-py's asyncio client, one count shared by every API
process; Lua scripts make each spend atomic).

**If Redis is unreachable the limits fail open**: requests are answered without a check
(never a 500, never a 429 for an outage), one warning is logged per outage and
``tokenforge_rate_limit_unchecked_total`` counts each request let through unchecked. The
choice: a cache outage must not take down the API (reads stay served, as the cache itself
degrades), and authentication still guards every write; the counter is what an alert
watches. After a failed call Redis is not asked again for :data:`OUTAGE_PAUSE_S`, so an
outage costs one short timeout per pause, not one per request.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tokenforge.api.problems import problem_response
from tokenforge.config import Settings
from tokenforge.errors import ErrorCode
from tokenforge.observability.metrics import RATE_LIMIT_UNCHECKED, RATE_LIMITED

log = logging.getLogger(__name__)

UNLIMITED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
SIGNIN_PREFIX = "/v1/auth/"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: POST routes that store nothing (``POST /v1/tokens/{id}/trades/build``): reads.
READ_POST_PATHS = re.compile(r"^/v1/tokens/[^/]+/trades/build$")
#: Redis connect and answer timeout: it answers a LAN request in well under a millisecond.
REDIS_TIMEOUT_S = 0.2
#: After a failed call to Redis, requests go unchecked this long before it is asked again.
OUTAGE_PAUSE_S = 1.0
#: How often the in-memory store drops expired counters.
EXPIRY_INTERVAL_S = 1.0
_IDENTITY_KEY = b"tokenforge rate limit identity"
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Budget:
    """One configured budget: ``kind`` reads|writes|signin, ``scope`` ip|identity."""

    kind: str
    scope: str
    items: tuple[RateLimitItem, ...]

    @property
    def label(self) -> str:
        return f"{self.kind} per {'client IP' if self.scope == 'ip' else 'identity'}"


@dataclass(frozen=True, slots=True)
class _Use:
    """One item of one budget, spent under one key."""

    budget: Budget
    item: RateLimitItem
    key: str

    def policy(self) -> str:
        return f'{self.item.amount};w={self.item.get_expiry()};comment="{self.budget.label}"'


def _budget(kind: str, scope: str, notation: str) -> Budget:
    return Budget(kind, scope, tuple(parse_many(notation)))


def _networks(cidrs: Sequence[str]) -> tuple[_Network, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


@lru_cache(maxsize=16_384)  # parsing is most of the cost of a check; clients repeat
def _address(text: str) -> _Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@lru_cache(maxsize=16_384)
def _client_key(address: _Address) -> str:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def client_ip(scope: Scope, trusted: Sequence[_Network]) -> str:
    """The client a request is counted against (see the module docstring)."""
    peer = scope.get("client")
    host = peer[0] if peer else None
    current = _address(host) if host else None
    if current is None:
        return host or "unknown"
    if not trusted or not any(current in net for net in trusted):
        return _client_key(current)
    hops: list[str] = []
    for name, value in scope.get("headers") or ():
        if name == b"x-forwarded-for":
            hops.extend(value.decode("latin-1").split(","))
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break  # malformed: the proxy that handed it over is the best we can name
        current = address
        if not any(address in net for net in trusted):
            break
    return _client_key(current)


def identity_of(scope: Scope) -> str | None:
    """A keyed digest of the bearer credential, or None without one."""
    for name, value in scope.get("headers") or ():
        if name == b"authorization":
            scheme, _, credential = value.partition(b" ")
            credential = credential.strip()
            if scheme.lower() == b"bearer" and credential:
                return hashlib.blake2b(credential, digest_size=16, key=_IDENTITY_KEY).hexdigest()
            return None
    return None


class MemoryStore(MemoryStorage):
    """limits' in-process storage, with its clean-up of expired counters run at most once
    per :data:`EXPIRY_INTERVAL_S` instead of after every request: upstream walks every key
    each time, which costs ~6 ms per request at 10,000 clients (~0.07 ms this way).

    The hook is the base class's private ``__schedule_expiry``; a test checks it still
    exists (without it this class is upstream's, correct but slow)."""

    def __init__(self) -> None:
        super().__init__()
        self._expiry_due_s = 0.0

    async def _MemoryStorage__schedule_expiry(self) -> None:  # overrides the name-mangled hook
        now = time.monotonic()
        if now >= self._expiry_due_s and (self.timer is None or self.timer.done()):
            self._expiry_due_s = now + EXPIRY_INTERVAL_S
            self.timer = asyncio.create_task(self._MemoryStorage__expire_events())  # type: ignore[attr-defined]


def open_storage(cache_url: str) -> tuple[Storage, bool]:
    """The limit store for ``cache_url`` and whether it is shared (Redis)."""
    if cache_url.startswith(("redis://", "rediss://")):
        from limits.aio.storage import RedisStorage
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import ConnectionError as RedisConnectionError

        storage = RedisStorage(
            f"async+{cache_url}",
            implementation="redispy",
            wrap_exceptions=True,
            key_prefix="tokenforge-limits",
            socket_timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_TIMEOUT_S,
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),  # type: ignore[arg-type]
            client_name="tokenforge-limits",
        )
        return storage, True
    return MemoryStore(), False


class RateLimits:
    """ASGI middleware: spends the budgets of each request, answers 429 when one is out."""

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.enabled = settings.rate_limits_enabled
        self._trusted = _networks(settings.trusted_proxies)
        self._budgets = {
            ("reads", "ip"): _budget("reads", "ip", settings.rate_limit_reads_ip),
            ("reads", "identity"): _budget("reads", "identity", settings.rate_limit_reads_identity),
            ("writes", "ip"): _budget("writes", "ip", settings.rate_limit_writes_ip),
            ("writes", "identity"): _budget("writes", "identity", settings.rate_limit_writes_identity),
            ("signin", "ip"): _budget("signin", "ip", settings.rate_limit_signin_ip),
        }
        self._storage: Storage | None = None
        self._limiter: SlidingWindowCounterRateLimiter | None = None
        self._shared = False
        self._down_until = 0.0
        self._outage = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.enabled or scope["path"] in UNLIMITED_PATHS:
            if scope["type"] == "lifespan":
                receive = self._closing_on_shutdown(receive)
            await self.app(scope, receive, send)
            return
        uses = self.uses(scope)
        try:
            verdict = await self._spend(uses)
        except (StorageError, OSError, TimeoutError) as exc:
            self._store_down(exc)
            verdict = None
        if verdict is None:
            RATE_LIMIT_UNCHECKED.inc()
            await self.app(scope, receive, send)
            return
        refused, headers = verdict
        if refused is not None:
            RATE_LIMITED.labels(refused.budget.kind, refused.budget.scope).inc()
            detail = f"{refused.budget.label}: {refused.item}"
            code = ErrorCode.RATE_LIMITED_CLIENT.value.replace("_", "-")
            response = problem_response(Request(scope), 429, code, "Too many requests", detail, headers=headers)
            await response(scope, receive, send)
            return
        raw = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *raw]}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def uses(self, scope: Scope) -> list[_Use]:
        """The budget items this request spends, per-IP ones first."""
        path: str = scope["path"]
        ip = client_ip(scope, self._trusted)
        if path.startswith(SIGNIN_PREFIX) or path == SIGNIN_PREFIX.rstrip("/"):
            budget = self._budgets[("signin", "ip")]
            return [_Use(budget, item, f"signin/ip/{ip}") for item in budget.items]
        method = scope["method"]
        kind = "reads" if method in READ_METHODS or (method == "POST" and READ_POST_PATHS.match(path)) else "writes"
        ip_budget = self._budgets[(kind, "ip")]
        uses = [_Use(ip_budget, item, f"{kind}/ip/{ip}") for item in ip_budget.items]
        identity = identity_of(scope)
        if identity is not None:
            id_budget = self._budgets[(kind, "identity")]
            uses += [_Use(id_budget, item, f"{kind}/identity/{identity}") for item in id_budget.items]
        return uses

    async def _spend(self, uses: list[_Use]) -> tuple[_Use | None, dict[str, str]] | None:
        """``(the refusing use or None, headers)``; None while the store is known to be down."""
        if time.monotonic() < self._down_until:
            return None
        limiter = self._lazy_limiter()
        granted = await self._each([partial(limiter.hit, u.item, u.key) for u in uses])
        refused = next((u for u, ok in zip(uses, granted, strict=True) if not ok), None)
        shown = [refused] if refused is not None else uses
        stats = await self._each([partial(limiter.get_window_stats, u.item, u.key) for u in shown])
        if self._outage:
            self._outage = False
            log.info("rate limit store reachable again: requests are limited again")
        now = time.time()
        tightest, (reset_at, remaining) = min(zip(shown, stats, strict=True), key=lambda pair: pair[1][1])
        reset_s = max(0, math.ceil(reset_at - now))
        headers = {
            "RateLimit-Limit": str(tightest.item.amount),
            "RateLimit-Remaining": str(0 if refused is not None else remaining),
            "RateLimit-Reset": str(reset_s),
            "RateLimit-Policy": ", ".join(u.policy() for u in uses),
        }
        if refused is not None:
            headers["Retry-After"] = str(max(1, reset_s))
            headers["RateLimit-Reset"] = headers["Retry-After"]
        return refused, headers

    async def _each(self, calls: list[Callable[[], Awaitable[Any]]]) -> list[Any]:
        """Concurrently on Redis (one round trip for all), one after another in memory."""
        if self._shared and len(calls) > 1:
            return list(await asyncio.gather(*(call() for call in calls)))
        return [await call() for call in calls]

    def _lazy_limiter(self) -> SlidingWindowCounterRateLimiter:
        """Built on first use, inside the event loop that serves requests."""
        if self._limiter is None:
            self._storage, self._shared = open_storage(self.settings.cache_url)
            self._limiter = SlidingWindowCounterRateLimiter(self._storage)
        return self._limiter

    def _store_down(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + OUTAGE_PAUSE_S
        if not self._outage:
            self._outage = True
            # the exception's type only: its message could name the store's URL
            log.warning(
                "rate limit store unreachable (%s): requests go through unchecked until it answers",
                type(exc.__cause__ or exc).__name__,
            )

    def _closing_on_shutdown(self, receive: Receive) -> Receive:
        async def wrapped() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                await self.aclose()
            return message

        return wrapped

    async def aclose(self) -> None:
        """Closes the Redis connections (a later request opens new ones)."""
        storage, self._storage, self._limiter = self._storage, None, None
        bridge = getattr(storage, "bridge", None)
        client = getattr(bridge, "storage", None)
        if client is not None:
            try:
                await client.aclose()
            except (OSError, RuntimeError) as exc:  # a loop already gone: nothing to close
                log.debug("closing the rate limit store: %s", exc)
