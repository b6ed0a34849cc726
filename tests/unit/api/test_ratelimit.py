"""Inbound rate limits (api/ratelimit.py): what a client over its budget sees, whose budget
a request spends, and what is never limited."""

from __future__ import annotations

import logging

import httpx
import pytest
from pydantic import ValidationError
from tests.conftest import UNREACHED_RATE_LIMITS
from tests.support.stack import running_stack

from tokenforge.api.ratelimit import RateLimits
from tokenforge.config import Settings
from tokenforge.observability.metrics import RATE_LIMIT_UNCHECKED

CLIENT = "203.0.113.7"
PROXY = "10.0.0.5"


async def ok_app(scope, receive, send):
    """Stands in for the API: 200 to everything."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


def limited(**overrides) -> RateLimits:
    return RateLimits(ok_app, settings=Settings(**{**UNREACHED_RATE_LIMITS, **overrides}))


def client(app: RateLimits, peer: str = CLIENT, **headers: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://tokenforge.test", headers=headers)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_write_over_the_ip_budget_gets_429_problem_json_with_retry_after_and_ratelimit_headers():
    app = limited(rate_limit_writes_ip="3/minute")
    async with client(app) as c:
        accepted = [await c.post("/v1/tokens") for _ in range(3)]
        refused = await c.post("/v1/tokens")
        read = await c.get("/v1/tokens")

    assert [r.status_code for r in accepted] == [200, 200, 200]
    assert [r.headers["RateLimit-Remaining"] for r in accepted] == ["2", "1", "0"]
    assert all(r.headers["RateLimit-Limit"] == "3" for r in accepted)
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    body = refused.json()
    assert body["type"] == "/problems/too-many-requests"
    assert body["status"] == 429 and body["instance"] == "/v1/tokens"
    assert body["detail"] == "writes per client IP: 3 per 1 minute"
    retry_after_s = int(refused.headers["Retry-After"])
    assert 1 <= retry_after_s <= 60
    assert refused.headers["RateLimit-Limit"] == "3"
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert int(refused.headers["RateLimit-Reset"]) == retry_after_s
    assert refused.headers["RateLimit-Policy"] == '3;w=60;comment="writes per client IP"'
    assert read.status_code == 200, "reads have their own budget"


async def test_per_identity_and_per_ip_budgets_are_separate_and_both_must_pass():
    app = limited(rate_limit_writes_ip="6/minute", rate_limit_writes_identity="2/minute")
    async with client(app) as c:
        alice = [(await c.post("/v1/tokens", headers=bearer("tfk_alice"))).status_code for _ in range(3)]
        bob = (await c.post("/v1/tokens", headers=bearer("tfk_bob"))).status_code
        anonymous = (await c.post("/v1/tokens")).status_code
    async with client(app, peer="198.51.100.20") as elsewhere:
        alice_elsewhere = await elsewhere.post("/v1/tokens", headers=bearer("tfk_alice"))

    assert alice == [200, 200, 429], "alice's identity budget is spent after two"
    assert (bob, anonymous) == (200, 200), "another credential and no credential have their own room"
    assert alice_elsewhere.status_code == 429, "the identity budget follows the credential to another IP"
    assert alice_elsewhere.json()["detail"] == "writes per identity: 2 per 1 minute"
    assert "tfk_alice" not in str(alice_elsewhere.headers) + alice_elsewhere.text

    # 5 of the IP's 6 spent (alice's refused third request too): fresh credentials do not help
    async with client(app) as c:
        fresh = [(await c.post("/v1/tokens", headers=bearer(f"tfk_new{i}"))).status_code for i in range(2)]
        last = await c.post("/v1/tokens", headers=bearer("tfk_newest"))
    assert fresh == [200, 429]
    assert last.json()["detail"] == "writes per client IP: 6 per 1 minute"


async def test_success_headers_describe_the_tightest_budget_and_list_every_policy():
    app = limited(rate_limit_reads_ip="100/minute", rate_limit_reads_identity="5/minute;50/hour")
    async with client(app, **bearer("tfk_carol")) as c:
        resp = await c.get("/v1/tokens")
    assert resp.status_code == 200
    assert (resp.headers["RateLimit-Limit"], resp.headers["RateLimit-Remaining"]) == ("5", "4")
    assert resp.headers["RateLimit-Policy"] == (
        '100;w=60;comment="reads per client IP", 5;w=60;comment="reads per identity", '
        '50;w=3600;comment="reads per identity"'
    )


async def test_sign_in_attempts_have_their_own_per_ip_budget():
    app = limited(rate_limit_signin_ip="2/minute")
    async with client(app) as c:
        attempts = [
            (await c.get("/v1/auth/nonce")).status_code,
            (await c.post("/v1/auth/siwe")).status_code,
            (await c.post("/v1/auth/siwe", headers=bearer("tfk_x"))).status_code,
        ]
        refused = await c.post("/v1/auth/siws")
        others = [(await c.get("/v1/tokens")).status_code, (await c.post("/v1/tokens")).status_code]
    async with client(app, peer="198.51.100.30") as other_ip:
        other = (await other_ip.post("/v1/auth/siwe")).status_code

    assert attempts == [200, 200, 429]
    assert refused.json()["detail"] == "signin per client IP: 2 per 1 minute"
    assert others == [200, 200], "reads and writes are not sign-in attempts"
    assert other == 200


async def test_behind_a_trusted_proxy_the_client_is_the_right_most_untrusted_forwarded_address():
    app = limited(rate_limit_reads_ip="1/minute", trusted_proxies="10.0.0.0/8")
    async with client(app, peer=PROXY) as via_proxy:

        async def status(forwarded_for: str) -> int:
            return (await via_proxy.get("/v1/tokens", headers={"X-Forwarded-For": forwarded_for})).status_code

        first = await status("198.51.100.1")
        again = await status("198.51.100.1")
        another_client = await status("198.51.100.2")
        # the client claims 6.6.6.6; our two proxies appended what they saw
        chain = await status("6.6.6.6, 198.51.100.3, 10.0.0.9")
        same_client = await status("198.51.100.3")
        spoofed_part_is_free = await status("6.6.6.6")
    assert (first, again, another_client) == (200, 429, 200), "each forwarded client has its own budget"
    assert (chain, same_client) == (200, 429), "the right-most untrusted address is the client"
    assert spoofed_part_is_free == 200, "the spoofed left part was never counted"


async def test_forwarded_for_from_an_untrusted_peer_is_ignored():
    app = limited(rate_limit_reads_ip="1/minute", trusted_proxies="10.0.0.0/8")
    async with client(app, peer=CLIENT) as c:
        first = await c.get("/v1/tokens", headers={"X-Forwarded-For": "198.51.100.1"})
        spoofed = await c.get("/v1/tokens", headers={"X-Forwarded-For": "198.51.100.99"})
    assert (first.status_code, spoofed.status_code) == (200, 429)


async def test_ipv6_clients_are_counted_per_64():
    app = limited(rate_limit_reads_ip="1/minute")
    async with client(app, peer="2001:db8:1:2::1") as a, client(app, peer="2001:db8:1:2::ffff") as b:
        assert (await a.get("/v1/tokens")).status_code == 200
        assert (await b.get("/v1/tokens")).status_code == 429
    async with client(app, peer="2001:db8:1:3::1") as other_net:
        assert (await other_net.get("/v1/tokens")).status_code == 200


async def test_health_and_metrics_are_never_limited():
    app = limited(rate_limit_reads_ip="1/minute")
    async with client(app) as c:
        probes = [await c.get(path) for path in ("/healthz", "/readyz", "/metrics") for _ in range(5)]
        first, second = await c.get("/v1/tokens"), await c.get("/v1/tokens")
    assert {r.status_code for r in probes} == {200}
    assert not any("RateLimit-Limit" in r.headers for r in probes)
    assert (first.status_code, second.status_code) == (200, 429)


async def test_the_switch_turns_limits_off():
    app = limited(rate_limits_enabled=False, rate_limit_writes_ip="1/minute")
    async with client(app) as c:
        answers = [await c.post("/v1/tokens") for _ in range(5)]
    assert [r.status_code for r in answers] == [200] * 5
    assert not any("RateLimit-Limit" in r.headers for r in answers)


async def test_an_unreachable_redis_fails_open_with_one_warning_and_a_count(caplog):
    app = limited(rate_limit_writes_ip="1/minute", cache_url="redis://127.0.0.1:1/0")
    before = RATE_LIMIT_UNCHECKED._value.get()
    with caplog.at_level(logging.WARNING, logger="tokenforge.api.ratelimit"):
        async with client(app) as c:
            answers = [await c.post("/v1/tokens") for _ in range(4)]
    assert [r.status_code for r in answers] == [200] * 4, "no 500 and no 429 because the store is down"
    assert RATE_LIMIT_UNCHECKED._value.get() - before == 4
    warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1, "one warning per outage, not one per request"


def test_a_bad_budget_fails_at_settings_load_naming_the_setting():
    with pytest.raises(ValidationError, match="rate_limit_writes_identity"):
        Settings(rate_limit_writes_identity="plenty")
    with pytest.raises(ValidationError, match="trusted_proxies"):
        Settings(trusted_proxies="10.0.0.0/8,proxy.internal")


async def test_the_app_limits_before_authentication(settings):
    """A flood of writes without (or with bad) credentials is refused by the limit, not by a
    database look-up per request: the 401 spends the unit too."""
    settings.rate_limit_writes_ip = "2/minute"
    async with running_stack(settings, start=False, authorized=False) as (_, c):
        unauthenticated = await c.post("/v1/tokens", json={})
        bad_key = await c.post("/v1/tokens", json={}, headers=bearer("tfk_not-a-key"))
        limited_answer = await c.post("/v1/tokens", json={}, headers=bearer("tfk_another-bad-key"))
        health = await c.get("/healthz")
    assert (unauthenticated.status_code, bad_key.status_code) == (401, 401)
    assert "RateLimit-Remaining" in unauthenticated.headers
    assert limited_answer.status_code == 429
    assert limited_answer.headers["content-type"] == "application/problem+json"
    assert limited_answer.json()["type"] == "/problems/too-many-requests"
    assert health.status_code == 200


async def test_the_memory_store_cleans_up_at_most_once_per_interval():
    """MemoryStore overrides a private hook of limits' MemoryStorage; if an upgrade renames
    it, the clean-up after every request (O(clients) each) silently comes back."""
    from limits.aio.storage import MemoryStorage

    from tokenforge.api.ratelimit import MemoryStore

    assert hasattr(MemoryStorage, "_MemoryStorage__schedule_expiry")
    assert hasattr(MemoryStorage, "_MemoryStorage__expire_events")
    store = MemoryStore()
    await store.incr("a", 60)
    first = store.timer
    await store.incr("b", 60)
    assert first is not None and store.timer is first, "no second clean-up within the interval"
