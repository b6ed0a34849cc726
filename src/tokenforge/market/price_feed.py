"""The USD price of each chain's native coin (ETH, BNB, SOL), behind one small port.

Every USD figure of the market derives from :meth:`PriceFeed.price`, called with
``CHAINS[chain].native_symbol``. Two implementations:

* :class:`FixedPriceFeed` — prices from settings (``price_fixed_usd``), the embedded
  default: no call out, ``as_of`` is when the feed was built, ``source`` is ``"fixed"``.
* :class:`HttpPriceFeed` — providers (:mod:`tokenforge.market.price_providers`) asked in
  order, with a cache per asset (stale while revalidate):

  - younger than ``ttl_s``: returned at once;
  - older (stale): returned at once, and one background refresh starts;
  - older than ``stale_max_s`` (expired): a refresh is awaited for up to ``expired_wait_s``;
    the refreshed price is returned if it came in time, else the old one (its ``as_of``
    shows its age; the refresh goes on in the background);
  - never obtained: the refresh is awaited in full; :class:`PriceUnavailable` if it fails.

  Refreshes are single flight: one at a time per feed, however many callers, and one
  refresh asks for every asset (one request where the provider's API allows). A refresh
  asks the first provider for every asset and the next one only for the assets still
  missing. Each provider has its own :class:`~tokenforge.chains.rpc.breaker.CircuitBreaker`
  (``failure_threshold`` consecutive failures open it for ``reset_after_s``) and a
  rate limit pause: a 429 with ``Retry-After`` skips it until that time has passed.
  A failure is a request fault (timeout, connection, HTTP status, not JSON) or an answer
  missing a valid price for an asked asset (the valid prices of that answer are kept).
  No provider fault ever escapes :meth:`~HttpPriceFeed.price`.

Failures are logged with the provider's name only (never its URL or API key).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

from tokenforge.chains.rpc.breaker import CircuitBreaker
from tokenforge.domain.chains import CHAINS
from tokenforge.errors import ErrorCode, TokenForgeError, TransientError

if TYPE_CHECKING:
    from tokenforge.config import Settings
    from tokenforge.market.price_providers import PriceProvider

__all__ = [
    "NATIVE_ASSETS",
    "FixedPriceFeed",
    "HttpPriceFeed",
    "NativePrice",
    "PriceFeed",
    "PriceUnavailable",
    "open_price_feed",
]

log = logging.getLogger(__name__)

#: Every native coin symbol of the chain registry, in registry order (ETH, BNB, SOL).
NATIVE_ASSETS: tuple[str, ...] = tuple(dict.fromkeys(spec.native_symbol for spec in CHAINS.values()))
#: Longest wait for a refresh when the cached price is past ``stale_max_s``.
EXPIRED_WAIT_S = 2.0


@dataclass(frozen=True, slots=True)
class NativePrice:
    """A native coin's USD price and where and when it was obtained."""

    asset: str
    usd: Decimal
    #: unix seconds when the provider's answer was fetched (or the fixed feed was built)
    as_of: float
    #: ``"fixed"`` or the provider's name (``"coingecko"``, ``"coinbase"``)
    source: str

    def age_s(self, now: float | None = None) -> float:
        """Seconds since ``as_of`` at ``now`` (unix seconds, default: now); never negative."""
        return max(0.0, (time.time() if now is None else now) - self.as_of)


class PriceUnavailable(TransientError):
    """No price of ``asset`` was ever obtained (or the feed does not know the asset)."""

    def __init__(self, asset: str, reason: str = "no price was obtained yet") -> None:
        super().__init__(f"no USD price of {asset}: {reason}", code=ErrorCode.PRICE_UNAVAILABLE)
        self.asset = asset


class PriceFeed(Protocol):
    async def price(self, asset: str) -> NativePrice:
        """The latest known price. Never waits on a slow provider once it has one (stale
        while revalidate); raises PriceUnavailable (a TransientError with a new ErrorCode
        PRICE_UNAVAILABLE) only when no price was ever obtained."""
        ...

    async def close(self) -> None:
        """Stop background refreshes and release connections."""
        ...


class FixedPriceFeed:
    """Prices given once (``{"ETH": 3000.0, ...}``); an asset not among them is unavailable."""

    def __init__(
        self, prices_usd: Mapping[str, float | Decimal | str], *, clock: Callable[[], float] = time.time
    ) -> None:
        as_of = clock()
        self._prices: dict[str, NativePrice] = {}
        for asset, usd in prices_usd.items():
            value = Decimal(str(usd))
            if not (value.is_finite() and value > 0):
                raise ValueError(f"the fixed price of {asset} must be > 0")
            self._prices[asset.upper()] = NativePrice(asset.upper(), value, as_of, "fixed")

    async def price(self, asset: str) -> NativePrice:
        found = self._prices.get(asset)
        if found is None:
            raise PriceUnavailable(asset, "no fixed price is configured")
        return found

    async def close(self) -> None:
        return None


class _Source:
    """A provider with its breaker and its rate limit pause."""

    __slots__ = ("breaker", "not_before", "provider")

    def __init__(self, provider: PriceProvider, breaker: CircuitBreaker) -> None:
        self.provider = provider
        self.breaker = breaker
        #: clock reading before which a 429's Retry-After forbids calls
        self.not_before = 0.0


class HttpPriceFeed:
    """Providers in order, cached per asset, with failover (see the module docstring)."""

    def __init__(
        self,
        providers: Sequence[PriceProvider],
        *,
        assets: Iterable[str] = NATIVE_ASSETS,
        ttl_s: float = 60.0,
        stale_max_s: float = 3600.0,
        expired_wait_s: float = EXPIRED_WAIT_S,
        failure_threshold: int = 3,
        reset_after_s: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not providers:
            raise ValueError("HttpPriceFeed needs at least one provider")
        if not 0 < ttl_s <= stale_max_s:
            raise ValueError("need 0 < ttl_s <= stale_max_s")
        self.assets: tuple[str, ...] = tuple(assets)
        self.ttl_s, self.stale_max_s, self.expired_wait_s = ttl_s, stale_max_s, expired_wait_s
        self._clock = clock
        self._sources = [
            _Source(p, CircuitBreaker(failure_threshold=failure_threshold, reset_after_s=reset_after_s, clock=clock))
            for p in providers
        ]
        self._cache: dict[str, NativePrice] = {}
        self._refresh: asyncio.Task[None] | None = None
        self._closed = False

    # -- the port -------------------------------------------------------------------------

    async def price(self, asset: str) -> NativePrice:
        if asset not in self.assets:
            raise PriceUnavailable(asset, "the price feed does not quote it")
        cached = self._cache.get(asset)
        if cached is not None:
            age_s = cached.age_s(self._clock())
            if age_s < self.ttl_s:
                return cached
            refresh = self._start_refresh()
            if age_s < self.stale_max_s or refresh is None:
                return cached
            with contextlib.suppress(TimeoutError):  # the refresh goes on in the background
                await asyncio.wait_for(asyncio.shield(refresh), self.expired_wait_s)
            return self._cache[asset]
        refresh = self._start_refresh()
        if refresh is not None:
            await asyncio.shield(refresh)
        found = self._cache.get(asset)
        if found is None:
            raise PriceUnavailable(asset, "every price provider failed")
        return found

    async def close(self) -> None:
        self._closed = True
        if self._refresh is not None:
            self._refresh.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresh
            self._refresh = None
        for source in self._sources:
            await source.provider.close()

    # -- inspection (tests, health) ---------------------------------------------------------

    @property
    def refreshing(self) -> bool:
        """True while a refresh is in flight."""
        return self._refresh is not None and not self._refresh.done()

    def breaker(self, index: int) -> CircuitBreaker:
        """The circuit breaker of the ``index``-th provider."""
        return self._sources[index].breaker

    async def wait_refreshed(self) -> None:
        """Returns once no refresh is in flight (for callers that need the outcome)."""
        if self._refresh is not None:
            await asyncio.shield(self._refresh)

    # -- refreshing -------------------------------------------------------------------------

    def _start_refresh(self) -> asyncio.Task[None] | None:
        """The refresh in flight, or a new one; None once the feed is closed."""
        if self._closed:
            return None
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.get_running_loop().create_task(self._run_refresh(), name="price-refresh")
        return self._refresh

    async def _run_refresh(self) -> None:
        missing: list[str] = list(self.assets)
        for source in self._sources:
            if not missing:
                break
            got = await self._ask(source, missing)
            missing = [a for a in missing if a not in got]
        if missing:
            log.warning("price refresh: no provider answered for %s; serving the last prices", ", ".join(missing))

    async def _ask(self, source: _Source, assets: Collection[str]) -> set[str]:
        """Ask one provider; store what it answered; the assets it priced."""
        name = source.provider.name
        if self._clock() < source.not_before or not source.breaker.allow():
            return set()
        try:
            prices = await source.provider.fetch(assets)
        except asyncio.CancelledError:
            source.breaker.release()
            raise
        except TokenForgeError as err:
            source.breaker.record_failure()
            if err.code is ErrorCode.RATE_LIMITED and isinstance(err, TransientError) and err.retry_after_s:
                source.not_before = self._clock() + err.retry_after_s
            log.warning("price provider %s failed: %s", name, getattr(err, "reason", err.message))
            return set()
        except Exception as exc:  # noqa: BLE001 - an adapter bug must not take the feed down
            source.breaker.record_failure()
            log.warning("price provider %s failed unexpectedly (%s)", name, type(exc).__name__)
            return set()
        as_of = self._clock()
        got = {a for a in assets if a in prices}
        for asset in got:
            self._cache[asset] = NativePrice(asset, prices[asset], as_of, name)
        if got == set(assets):
            source.breaker.record_success()
        else:
            source.breaker.record_failure()
            log.warning(
                "price provider %s gave no valid price for %s", name, ", ".join(a for a in assets if a not in got)
            )
        return got


def open_price_feed(settings: Settings) -> PriceFeed:
    """The feed ``settings.price_feed`` names, built from the ``price_*`` settings."""
    if settings.price_feed == "fixed":
        return FixedPriceFeed(settings.price_fixed_usd)
    from tokenforge.market.price_providers import build_provider

    providers = [
        build_provider(
            p.kind, p.url, timeout_s=settings.price_timeout_s, max_rps=settings.price_max_rps, api_key=p.api_key
        )
        for p in settings.price_providers
    ]
    return HttpPriceFeed(
        providers,
        ttl_s=settings.price_ttl_s,
        stale_max_s=settings.price_stale_max_s,
        expired_wait_s=min(EXPIRED_WAIT_S, settings.price_timeout_s),
    )
