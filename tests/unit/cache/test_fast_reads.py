"""Cache hits answered before FastAPI (api/fast_reads.py): the route's bytes and headers,
request ids and metrics kept, and anything in doubt left to the route."""

from __future__ import annotations

import httpx
from prometheus_client import REGISTRY

from tests.support.bodies import fakes, launch_body
from tests.support.stack import running_stack
from tests.unit.cache.helpers import cache_count, container_cache
from tokenforge.api.app import create_app
from tokenforge.api.deps import get_cache
from tokenforge.api.fast_reads import lookup
from tokenforge.cache import TOKEN, TOKEN_LIST, Cache


def requests_counted(route: str) -> float:
    return (
        REGISTRY.get_sample_value("tokenforge_http_requests_total", {"route": route, "method": "GET", "status": "200"})
        or 0.0
    )


async def test_a_fast_hit_is_the_route_answer_with_its_request_id_and_metrics(settings):
    async with running_stack(settings, fakes(), start=False) as (container, client):
        container_cache(container)
        token_id = (await client.post("/v1/tokens", json=launch_body())).json()["token"]["id"]
        uncached_app = create_app(container=container)
        uncached_app.dependency_overrides[get_cache] = lambda: Cache(None)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=uncached_app), base_url="http://tokenforge.test"
        ) as uncached:
            for path, route, entry in (
                (f"/v1/tokens/{token_id}", "/v1/tokens/{token_id}", "token"),
                ("/v1/tokens?limit=2&chain=ethereum", "/v1/tokens", "tokens"),
                ("/v1/tokens", "/v1/tokens", "tokens"),
            ):
                await client.get(path)  # fills
                hits, counted = cache_count(entry, "hit"), requests_counted(route)
                fast = await client.get(path, headers={"X-Request-ID": "req-1"})
                assert cache_count(entry, "hit") == hits + 1, path
                assert requests_counted(route) == counted + 1, path
                plain = await uncached.get(path)
                assert fast.status_code == plain.status_code == 200
                assert fast.content == plain.content, path
                assert fast.headers["x-request-id"] == "req-1"
                assert {k: v for k, v in fast.headers.items() if k != "x-request-id" and "ratelimit" not in k} == {
                    k: v for k, v in plain.headers.items() if k != "x-request-id" and "ratelimit" not in k
                }


async def test_queries_the_route_would_refuse_or_read_otherwise_are_left_to_it(settings):
    async with running_stack(settings, fakes(), start=False) as (_container, client):
        await client.get("/v1/tokens?limit=2")
        assert (await client.get("/v1/tokens?limit=2&limit=3")).status_code == 200
        assert (await client.get("/v1/tokens?chain=nope")).status_code == 422
        assert (await client.get("/v1/tokens?cursor=czE=")).status_code == 422


def test_only_canonical_token_reads_have_a_fast_key():
    assert lookup("/v1/tokens/ab12", b"") == (TOKEN, "ab12", "/v1/tokens/{token_id}")
    assert lookup("/v1/tokens", b"limit=2&chain=ethereum") == (TOKEN_LIST, "ethereum||2||", "/v1/tokens")
    assert lookup("/v1/tokens", b"") == (TOKEN_LIST, "||50||", "/v1/tokens")
    for path, query in (
        ("/v1/tokens", b"limit=02"),
        ("/v1/tokens", b"limit=2&limit=3"),
        ("/v1/tokens", b"other=1"),
        ("/v1/tokens", b"status=LIVE"),
        ("/v1/tokens", b"cursor=czE="),
        ("/v1/tokens/", b""),
        ("/v1/tokens/a-b", b""),
        ("/v1/tokens/ab12", b"x=1"),
    ):
        assert lookup(path, query) is None, (path, query)


async def test_peek_answers_only_what_read_would_take_from_the_store():
    from tokenforge.cache.memory import MemoryBackend

    cache = Cache(MemoryBackend())
    assert await cache.peek(TOKEN, "t1") is None

    async def load() -> bytes:
        return b'{"id":"t1"}'

    await cache.read(TOKEN, "t1", load)
    assert await cache.peek(TOKEN, "t1") == b'{"id":"t1"}'
    cache.invalidate(TOKEN, ["t1"])
    assert await cache.peek(TOKEN, "t1") is None  # invalidated, whatever the store still holds
    await cache.settled()
    assert await cache.peek(TOKEN, "t1") is None
    await cache.close()
