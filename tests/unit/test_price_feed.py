"""The native price feed: fixed prices, and the cached HTTP feed's stale-while-revalidate,
single flight, failover and breakers, against scripted providers and a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from decimal import Decimal

import pytest
from pydantic import SecretStr, ValidationError

from tokenforge.config import PriceProviderSettings, Settings
from tokenforge.errors import ErrorCode
from tokenforge.market.price_feed import (
    NATIVE_ASSETS,
    FixedPriceFeed,
    HttpPriceFeed,
    NativePrice,
    PriceUnavailable,
    open_price_feed,
)
from tokenforge.market.price_providers import ProviderFault, parse_retry_after, parse_usd

T0 = 1_700_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class FakeProvider:
    """Answers ``prices`` (scaled by ``bump`` per call), or raises ``fault``; ``gate``
    holds every answer until it is set."""

    def __init__(self, name: str, prices: dict[str, str] | None = None) -> None:
        self.name = name
        self.prices = dict(prices if prices is not None else {"ETH": "3000", "BNB": "600", "SOL": "150"})
        self.fault: ProviderFault | None = None
        self.gate: asyncio.Event | None = None
        self.asked: list[tuple[str, ...]] = []
        #: set by every call (cleared by the test that waits for the next one)
        self.called = asyncio.Event()
        self.closed = False

    @property
    def calls(self) -> int:
        return len(self.asked)

    async def fetch(self, assets: Collection[str]) -> dict[str, Decimal]:
        self.asked.append(tuple(assets))
        self.called.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.fault is not None:
            raise self.fault
        return {a: Decimal(self.prices[a]) for a in assets if a in self.prices}

    async def close(self) -> None:
        self.closed = True


@pytest.fixture
def clock() -> Clock:
    return Clock()


def feed_of(clock: Clock, *providers: FakeProvider, **kwargs) -> HttpPriceFeed:
    return HttpPriceFeed(list(providers), ttl_s=60, stale_max_s=3600, reset_after_s=30, clock=clock, **kwargs)


# -- the fixed feed ----------------------------------------------------------------------


async def test_the_fixed_feed_serves_the_configured_prices_since_it_started(clock):
    feed = FixedPriceFeed({"ETH": 3000.0, "bnb": 612.5}, clock=clock)
    clock.now += 90
    eth = await feed.price("ETH")
    assert eth == NativePrice("ETH", Decimal("3000.0"), T0, "fixed")
    assert eth.age_s(clock.now) == 90
    assert (await feed.price("BNB")).usd == Decimal("612.5")
    with pytest.raises(PriceUnavailable) as caught:
        await feed.price("SOL")
    assert caught.value.code is ErrorCode.PRICE_UNAVAILABLE and caught.value.is_transient()


def test_the_default_settings_open_the_fixed_feed_with_every_native_coin():
    feed = open_price_feed(Settings())
    assert isinstance(feed, FixedPriceFeed)
    assert NATIVE_ASSETS == ("ETH", "BNB", "SOL")
    assert asyncio.run(feed.price("SOL")).usd == Decimal("150.0")


def test_http_settings_open_an_http_feed_with_one_provider_each():
    settings = Settings(
        price_feed="http",
        price_providers=[PriceProviderSettings(kind="coinbase", url="https://prices.example")],
        price_ttl_s=5,
        price_stale_max_s=50,
    )
    feed = open_price_feed(settings)
    assert isinstance(feed, HttpPriceFeed)
    assert (feed.ttl_s, feed.stale_max_s) == (5, 50)
    assert [s.provider.name for s in feed._sources] == ["coinbase"]


@pytest.mark.parametrize(
    "bad",
    [
        {"price_fixed_usd": {"ETH": 0}},
        {"price_fixed_usd": {"SOL": -1.0}},
        {"price_ttl_s": 120, "price_stale_max_s": 60},
        {"price_providers": []},
        {"price_providers": [{"kind": "kraken", "url": "https://x.example"}]},
        {"price_providers": [{"kind": "coingecko", "url": "https://user:pw@x.example"}]},
    ],
)
def test_settings_refuse_prices_and_providers_that_cannot_work(bad):
    with pytest.raises(ValidationError):
        Settings(**bad)


def test_a_provider_api_key_never_shows_in_the_settings_repr():
    provider = PriceProviderSettings(kind="coingecko", url="https://x.example", api_key=SecretStr("cg-sekrit"))
    settings = Settings(price_providers=[provider])
    assert "cg-sekrit" not in repr(settings) and "cg-sekrit" not in str(settings.price_providers)


# -- stale while revalidate ----------------------------------------------------------------


async def test_the_first_call_awaits_a_refresh_then_fresh_prices_cost_no_request(clock):
    provider = FakeProvider("a")
    feed = feed_of(clock, provider)
    first = await feed.price("ETH")
    assert first == NativePrice("ETH", Decimal(3000), T0, "a")
    assert provider.asked == [("ETH", "BNB", "SOL")]  # one request for every asset
    clock.now += 59
    assert await feed.price("ETH") is first
    assert (await feed.price("SOL")).usd == Decimal(150)
    assert provider.calls == 1


async def test_a_stale_price_is_returned_at_once_and_refreshed_once_in_the_background(clock):
    provider = FakeProvider("a")
    feed = feed_of(clock, provider)
    await feed.price("ETH")
    clock.now += 61
    provider.gate = asyncio.Event()  # the refresh hangs until released
    provider.prices["ETH"] = "3100"
    provider.called.clear()
    for _ in range(5):
        stale = await feed.price("ETH")
        assert stale.usd == Decimal(3000) and stale.age_s(clock.now) == 61
    await provider.called.wait()
    assert feed.refreshing and provider.calls == 2
    provider.gate.set()
    await feed.wait_refreshed()
    fresh = await feed.price("ETH")
    assert fresh.usd == Decimal(3100) and fresh.as_of == clock.now
    assert provider.calls == 2


async def test_fifty_concurrent_first_callers_share_one_refresh(clock):
    provider = FakeProvider("a")
    provider.gate = asyncio.Event()
    feed = feed_of(clock, provider)
    callers = [asyncio.create_task(feed.price(NATIVE_ASSETS[i % 3])) for i in range(50)]
    await provider.called.wait()  # the refresh runs after every caller started waiting on it
    assert provider.calls == 1
    provider.gate.set()
    prices = await asyncio.gather(*callers)
    assert {p.asset for p in prices} == set(NATIVE_ASSETS) and provider.calls == 1


async def test_fifty_concurrent_callers_of_a_stale_price_start_one_refresh(clock):
    provider = FakeProvider("a")
    feed = feed_of(clock, provider)
    await feed.price("BNB")
    clock.now += 120
    provider.gate = asyncio.Event()
    prices = await asyncio.gather(*(feed.price("BNB") for _ in range(50)))
    assert all(p.as_of == T0 for p in prices) and provider.calls == 2
    provider.gate.set()
    await feed.wait_refreshed()
    assert provider.calls == 2


async def test_an_expired_price_waits_briefly_for_a_refresh(clock):
    provider = FakeProvider("a")
    feed = feed_of(clock, provider, expired_wait_s=0.05)
    await feed.price("SOL")
    clock.now += 3601
    provider.prices["SOL"] = "160"
    assert (await feed.price("SOL")).usd == Decimal(160)  # a quick provider: the new price

    clock.now += 3601
    provider.gate = asyncio.Event()  # a hanging provider: the old price, with its age
    old = await feed.price("SOL")
    assert old.usd == Decimal(160) and old.age_s(clock.now) == 3601 and feed.refreshing
    provider.gate.set()
    await feed.wait_refreshed()
    assert (await feed.price("SOL")).as_of == clock.now


# -- failover and breakers -------------------------------------------------------------------


async def test_a_failing_provider_fails_over_to_the_next(clock):
    first, second = FakeProvider("a"), FakeProvider("b", {"ETH": "2999", "BNB": "601", "SOL": "151"})
    first.fault = ProviderFault("a", "HTTP 500")
    feed = feed_of(clock, first, second)
    eth = await feed.price("ETH")
    assert (eth.usd, eth.source) == (Decimal(2999), "b")


async def test_only_the_assets_a_provider_left_out_are_asked_of_the_next(clock):
    first = FakeProvider("a", {"ETH": "3000", "BNB": "600"})  # no SOL in its answer
    second = FakeProvider("b")
    feed = feed_of(clock, first, second)
    assert (await feed.price("ETH")).source == "a"
    assert (await feed.price("SOL")).source == "b"
    assert second.asked == [("SOL",)]
    assert feed.breaker(0).consecutive_failures == 1  # a missing asset counts as a failure


async def test_the_breaker_opens_after_three_failures_and_recovers_after_its_pause(clock):
    first, second = FakeProvider("a"), FakeProvider("b")
    first.fault = ProviderFault("a", "no answer within 5 s")
    feed = HttpPriceFeed([first, second], ttl_s=60, reset_after_s=300, clock=clock)
    await feed.price("ETH")
    for _ in range(4):  # every refresh asks: three failures open the first provider's breaker
        clock.now += 61
        await feed.price("ETH")
        await feed.wait_refreshed()
    assert first.calls == 3 and second.calls == 5
    assert feed.breaker(0).state == "open"

    first.fault = None
    clock.now += 300 - 2 * 61  # the pause is over: one trial call, which succeeds
    await feed.price("ETH")
    await feed.wait_refreshed()
    assert first.calls == 4 and second.calls == 5
    assert feed.breaker(0).state == "closed"
    assert (await feed.price("ETH")).source == "a"


async def test_a_rate_limited_provider_is_not_asked_before_its_retry_after(clock):
    first, second = FakeProvider("a"), FakeProvider("b")
    first.fault = ProviderFault("a", "rate limited", code=ErrorCode.RATE_LIMITED, retry_after_s=300)
    feed = feed_of(clock, first, second)
    await feed.price("ETH")
    first.fault = None
    for _ in range(3):
        clock.now += 61
        await feed.price("ETH")
        await feed.wait_refreshed()
    assert first.calls == 1 and feed.breaker(0).state == "closed"
    clock.now += 120  # 303 s after the 429
    await feed.price("ETH")
    await feed.wait_refreshed()
    assert first.calls == 2 and (await feed.price("ETH")).source == "a"


async def test_no_price_ever_raises_price_unavailable_and_a_later_call_tries_again(clock):
    provider = FakeProvider("a")
    provider.fault = ProviderFault("a", "HTTP 503")
    feed = feed_of(clock, provider)
    with pytest.raises(PriceUnavailable) as caught:
        await feed.price("ETH")
    assert caught.value.code is ErrorCode.PRICE_UNAVAILABLE and caught.value.is_transient()
    provider.fault = None
    assert (await feed.price("ETH")).usd == Decimal(3000)
    with pytest.raises(PriceUnavailable):
        await feed.price("DOGE")  # not a native coin: no request at all
    assert provider.calls == 2


async def test_an_adapter_bug_counts_as_a_failure_and_never_escapes(clock):
    provider = FakeProvider("a")
    provider.fault = RuntimeError("boom")  # type: ignore[assignment]
    feed = feed_of(clock, provider)
    with pytest.raises(PriceUnavailable):
        await feed.price("ETH")
    assert feed.breaker(0).consecutive_failures == 1


async def test_close_stops_a_refresh_in_flight_and_closes_the_providers(clock):
    provider = FakeProvider("a")
    provider.gate = asyncio.Event()
    feed = feed_of(clock, provider)
    caller = asyncio.create_task(feed.price("ETH"))
    await provider.called.wait()
    await feed.close()
    assert provider.closed and not feed.refreshing
    with pytest.raises((PriceUnavailable, asyncio.CancelledError)):
        await caller
    assert feed.breaker(0).state == "closed" and not feed.breaker(0).trial_in_flight


# -- parsing provider answers ------------------------------------------------------------------


@pytest.mark.parametrize("value", ["3012.5", 3012.5, 7, " 1e3 "])
def test_numeric_prices_above_zero_are_read(value):
    assert parse_usd(value) == Decimal(str(value).strip())


@pytest.mark.parametrize("value", ["abc", "", "0", 0, -3, "-1.5", "NaN", "Infinity", float("nan"), None, True, [1]])
def test_anything_else_is_not_a_price(value):
    assert parse_usd(value) is None


def test_retry_after_is_read_as_seconds_or_an_http_date_and_capped():
    assert parse_retry_after("30") == 30
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10
    assert parse_retry_after("999999") == 3600
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
