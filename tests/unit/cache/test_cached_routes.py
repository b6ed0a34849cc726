"""The cached read routes: the same bytes cached or not, never a stale state after a
commit, and one database read for a burst of requests for a cold key."""

from __future__ import annotations

import asyncio

import httpx

from tests.support.bodies import fakes, launch_body
from tests.support.stack import running_stack, wait_final
from tests.unit.cache.helpers import cache_count, container_cache, sql_statements
from tokenforge.api.app import create_app
from tokenforge.api.deps import get_cache
from tokenforge.cache import Cache

READS = ("/v1/tokens/{id}", "/v1/tokens", "/v1/tokens?limit=2&chain=ethereum", "/v1/chains")


def all_hits() -> float:
    return sum(cache_count(name, "hit") for name in ("token", "tokens", "chains"))


def same_headers(resp: httpx.Response) -> dict[str, str]:
    """The headers that must not depend on the cache (a request id is new for every request,
    the rate limit's remaining budget shrinks with each)."""
    return {k: v for k, v in resp.headers.items() if k != "x-request-id" and not k.startswith("ratelimit-")}


def token_selects(statements: list[str]) -> list[str]:
    return [s for s in statements if s.lstrip().upper().startswith("SELECT") and "FROM tokens" in s]


async def test_cached_and_uncached_answers_are_the_same_bytes_and_headers(settings):
    async with running_stack(settings, fakes(), start=False) as (container, client):
        cache = container_cache(container)
        ids = [
            (await client.post("/v1/tokens", json=launch_body(name=f"Forge {i} é"))).json()["token"]["id"]
            for i in range(3)
        ]
        uncached_app = create_app(container=container)
        uncached_app.dependency_overrides[get_cache] = lambda: Cache(None)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=uncached_app), base_url="http://tokenforge.test"
        ) as uncached:
            for path in READS:
                path = path.format(id=ids[1])
                hits = all_hits()
                miss, hit, plain = await client.get(path), await client.get(path), await uncached.get(path)
                assert all_hits() == hits + 1, path
                assert miss.status_code == hit.status_code == plain.status_code == 200, path
                assert miss.content == hit.content == plain.content, path
                assert same_headers(miss) == same_headers(hit) == same_headers(plain), path
                assert hit.headers["content-type"] == "application/json"
        assert cache.kind == "memory"


async def test_a_token_read_while_pending_is_live_right_after_its_job_is_confirmed(settings):
    async with running_stack(settings, fakes(), start=False) as (container, client):
        container_cache(container)
        accepted = (await client.post("/v1/tokens", json=launch_body())).json()
        token_id = accepted["token"]["id"]
        # read twice (cached) while pending: the worker has not started
        first = [(await client.get(f"/v1/tokens/{token_id}")).json() for _ in range(2)]
        listed = (await client.get("/v1/tokens")).json()["items"]
        assert [t["id"] for t in listed] == [token_id], "a new token is listed at once"
        await container.start()
        job = await wait_final(client, accepted["job"]["id"])
        assert job["status"] == "confirmed"
        token = (await client.get(f"/v1/tokens/{token_id}")).json()
        listed = (await client.get("/v1/tokens")).json()["items"]
        pending = (await client.get("/v1/tokens?status=pending")).json()["items"]
    assert [t["status"] for t in first] == ["pending", "pending"]
    assert token["status"] == "live" and token["address"] == job["token_address"]
    assert listed[0]["status"] == "live" and listed[0]["address"] == job["token_address"]
    assert pending == []


async def test_fifty_concurrent_requests_for_a_cold_token_read_it_once(settings):
    async with running_stack(settings, fakes(), start=False) as (container, client):
        container_cache(container)
        token_id = (await client.post("/v1/tokens", json=launch_body())).json()["token"]["id"]
        await client.post("/v1/tokens", json=launch_body())  # a second commit: the lists are cold again
        with sql_statements(container.engine) as statements:
            details = await asyncio.gather(*(client.get(f"/v1/tokens/{token_id}") for _ in range(50)))
            pages = await asyncio.gather(*(client.get("/v1/tokens?limit=5") for _ in range(50)))
    assert {r.status_code for r in details + pages} == {200}
    assert len({r.content for r in details}) == 1 and len({r.content for r in pages}) == 1
    assert len(token_selects(statements)) == 2, statements


async def test_an_unknown_token_is_a_404_every_time(settings):
    async with running_stack(settings, fakes(), start=False) as (container, client):
        container_cache(container)
        answers = [await client.get("/v1/tokens/0123456789abcdef") for _ in range(2)]
    assert [r.status_code for r in answers] == [404, 404]
    assert answers[0].headers["content-type"].startswith("application/problem+json")
