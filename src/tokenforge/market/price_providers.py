"""Adapters to the HTTP services that quote native coins in USD.

A :class:`PriceProvider` answers :meth:`~PriceProvider.fetch` with the USD price of each
asked asset it could read, as a positive :class:`~decimal.Decimal`. An entry that is
missing, non-numeric, zero or negative is left out of the answer (the caller counts that
as a failure of the provider); a failure of the whole request raises :class:`ProviderFault`
(a :class:`~tokenforge.errors.TransientError`), never an httpx exception:

* no answer within ``timeout_s`` (connecting, sending and reading the body together),
  a refused or broken connection, a redirect (not followed), any status other than 200,
  a body over :data:`MAX_BODY_BYTES` or one that is not JSON;
* ``429`` raises it with code ``rate_limited`` and ``retry_after_s`` read from the
  ``Retry-After`` header (seconds or an HTTP date; None when absent or unreadable).

Every request first waits for the provider's own call budget (:mod:`tokenforge.outbound`;
waiting is not counted in ``timeout_s``). Two adapters:

* :class:`CoinGeckoProvider` — ``GET {url}/simple/price?ids=ethereum,binancecoin,solana&vs_currencies=usd``:
  every asset in one request; an API key goes in the ``x-cg-pro-api-key`` header.
* :class:`CoinbaseProvider` — ``GET {url}/v2/prices/{ASSET}-USD/spot`` answering
  ``{"data": {"amount": "3012.5", "base": "ETH", "currency": "USD"}}``: one request per asset.

Messages and logs name the provider, never its URL or API key.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import time
from collections.abc import Collection, Mapping
from decimal import Decimal, InvalidOperation
from typing import Protocol

import httpx
import orjson
from pydantic import SecretStr

from tokenforge.errors import ErrorCode, TransientError
from tokenforge.outbound import CallBudget, Unlimited

__all__ = [
    "COINGECKO_IDS",
    "CoinGeckoProvider",
    "CoinbaseProvider",
    "PriceProvider",
    "ProviderFault",
    "build_provider",
]

log = logging.getLogger(__name__)

#: A price answer larger than this is refused (the real ones are well under 1 KiB).
MAX_BODY_BYTES = 64 * 1024
#: The longest ``Retry-After`` honoured; a larger hint is capped to this.
MAX_RETRY_AFTER_S = 3600.0
USER_AGENT = "TokenForge-Prices/1"
#: CoinGecko's coin id of each native asset.
COINGECKO_IDS: Mapping[str, str] = {"ETH": "ethereum", "BNB": "binancecoin", "SOL": "solana"}


class ProviderFault(TransientError):
    """A price request failed as a whole (see the module docstring); names the provider only."""

    def __init__(
        self,
        provider: str,
        reason: str,
        *,
        code: ErrorCode = ErrorCode.PRICE_UNAVAILABLE,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(f"price provider {provider}: {reason}", code=code, retry_after_s=retry_after_s)
        self.provider = provider
        self.reason = reason


class PriceProvider(Protocol):
    """One price source. ``name`` is what :attr:`NativePrice.source` shows."""

    name: str

    async def fetch(self, assets: Collection[str]) -> dict[str, Decimal]:
        """USD prices of those of ``assets`` it could read (each > 0); ``ProviderFault``
        when the request as a whole failed."""
        ...

    async def close(self) -> None:
        """Release connections; the provider is not used again."""
        ...


def parse_usd(value: object) -> Decimal | None:
    """``value`` (a JSON number or numeric string) as a finite Decimal > 0, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    try:
        usd = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return usd if usd.is_finite() and usd > 0 else None


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delta seconds or an HTTP date),
    capped at :data:`MAX_RETRY_AFTER_S`; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER_S)


class JsonGetter:
    """GETs JSON for one provider: its budget, its timeout, its client, faults translated."""

    def __init__(
        self,
        name: str,
        *,
        timeout_s: float,
        budget: CallBudget | Unlimited | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.timeout_s = timeout_s
        self._budget = budget or Unlimited()
        self._headers = {"Accept": "application/json", "User-Agent": USER_AGENT, **(headers or {})}
        self._client: httpx.AsyncClient | None = None

    async def get(self, url: str, params: Mapping[str, str] | None = None) -> object:
        """The decoded JSON body of a 200 answer to ``GET url``; ``ProviderFault`` otherwise."""
        await self._budget.acquire()  # waiting for the budget is not the provider's time
        try:
            async with asyncio.timeout(self.timeout_s):
                status, headers, body = await self._send(url, params)
        except TimeoutError:
            raise ProviderFault(self.name, f"no answer within {self.timeout_s:g} s") from None
        except httpx.HTTPError as exc:  # the exception text may carry the URL: only its type
            raise ProviderFault(self.name, f"request failed ({type(exc).__name__})") from None
        if status == 429:
            retry_after_s = parse_retry_after(headers.get("retry-after"))
            raise ProviderFault(
                self.name, "rate limited (HTTP 429)", code=ErrorCode.RATE_LIMITED, retry_after_s=retry_after_s
            )
        if status != 200:
            raise ProviderFault(self.name, f"HTTP {status}")
        if body is None:
            raise ProviderFault(self.name, f"answer larger than {MAX_BODY_BYTES} bytes")
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            raise ProviderFault(self.name, "answer is not JSON") from None

    async def _send(self, url: str, params: Mapping[str, str] | None) -> tuple[int, httpx.Headers, bytes | None]:
        client = self._http()
        async with client.stream("GET", url, params=params, headers=self._headers) as response:
            if response.status_code != 200:
                return response.status_code, response.headers, b""
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    return response.status_code, response.headers, None
                chunks.append(chunk)
            return response.status_code, response.headers, b"".join(chunks)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                follow_redirects=False,
                trust_env=False,  # like the RPC pool: no proxy from the environment
                timeout=httpx.Timeout(self.timeout_s),
                limits=httpx.Limits(max_connections=4, max_keepalive_connections=2),
            )
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class CoinGeckoProvider:
    """A CoinGecko-compatible ``/simple/price`` API: every asset in one request."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float,
        api_key: SecretStr | None = None,
        budget: CallBudget | Unlimited | None = None,
        name: str = "coingecko",
    ) -> None:
        self.name = name
        self._url = url.rstrip("/") + "/simple/price"
        headers = {"x-cg-pro-api-key": api_key.get_secret_value()} if api_key is not None else {}
        self._get = JsonGetter(name, timeout_s=timeout_s, budget=budget, headers=headers)

    async def fetch(self, assets: Collection[str]) -> dict[str, Decimal]:
        ids = {COINGECKO_IDS[a]: a for a in assets if a in COINGECKO_IDS}
        if not ids:
            return {}
        body = await self._get.get(self._url, {"ids": ",".join(ids), "vs_currencies": "usd"})
        if not isinstance(body, dict):
            raise ProviderFault(self.name, "answer is not a JSON object")
        prices = {}
        for coin_id, asset in ids.items():
            entry = body.get(coin_id)
            usd = parse_usd(entry.get("usd")) if isinstance(entry, dict) else None
            if usd is not None:
                prices[asset] = usd
        return prices

    async def close(self) -> None:
        await self._get.close()

    def __repr__(self) -> str:
        return f"CoinGeckoProvider(name={self.name!r})"


class CoinbaseProvider:
    """Coinbase's ``/v2/prices/{ASSET}-USD/spot``: one request per asset, in turn."""

    def __init__(
        self, url: str, *, timeout_s: float, budget: CallBudget | Unlimited | None = None, name: str = "coinbase"
    ) -> None:
        self.name = name
        self._base = url.rstrip("/")
        self._get = JsonGetter(name, timeout_s=timeout_s, budget=budget)

    async def fetch(self, assets: Collection[str]) -> dict[str, Decimal]:
        """Assets are asked one after the other; a fault of any request fails the fetch
        (the prices already read are lost: the caller asks the next provider)."""
        prices = {}
        for asset in assets:
            body = await self._get.get(f"{self._base}/v2/prices/{asset}-USD/spot")
            data = body.get("data") if isinstance(body, dict) else None
            if not isinstance(data, dict) or data.get("base") != asset or data.get("currency") != "USD":
                continue
            usd = parse_usd(data.get("amount"))
            if usd is not None:
                prices[asset] = usd
        return prices

    async def close(self) -> None:
        await self._get.close()

    def __repr__(self) -> str:
        return f"CoinbaseProvider(name={self.name!r})"


def build_provider(
    kind: str, url: str, *, timeout_s: float, max_rps: float | None, api_key: SecretStr | None = None
) -> PriceProvider:
    """The adapter of ``kind`` (``coingecko`` | ``coinbase``) with its own call budget."""
    budget = CallBudget(max_rps) if max_rps is not None else Unlimited()
    if kind == "coingecko":
        return CoinGeckoProvider(url, timeout_s=timeout_s, api_key=api_key, budget=budget)
    if kind == "coinbase":
        return CoinbaseProvider(url, timeout_s=timeout_s, budget=budget)
    raise ValueError(f"unknown price provider kind {kind!r}")
