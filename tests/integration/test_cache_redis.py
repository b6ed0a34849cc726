"""The Redis cache backend: the backend contract, one database read across processes for a
burst of misses, invalidation from another process, and a Redis that is down or restarts
(answers from the database, one log line, recovery without a restart).

The shared Redis on 6379 is only read and written under a key prefix of each test's own
(deleted afterwards); outages are played on a closed port and on a ``redis-server`` child
the test starts and stops itself.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid

import pytest
import redis.asyncio as aioredis

from tests.conftest import require_service
from tests.support.bodies import fakes, launch_body
from tests.support.cluster import RedisChild
from tests.support.server import free_port
from tests.support.stack import running_stack, wait_final
from tests.unit.cache.contract import BackendContract
from tests.unit.cache.helpers import FakeClock, cache_count
from tokenforge.cache import Cache, CacheUnavailable, Entry, install_cache_invalidation, open_cache
from tokenforge.cache.redis import RedisBackend

pytestmark = pytest.mark.integration

SHARED_URL = "redis://127.0.0.1:6379/0"
DETAIL = Entry("test-detail", ttl_s=60.0)


@pytest.fixture
async def prefix():
    """A key prefix of this test's own on the shared Redis; its keys are deleted afterwards."""
    require_service("Redis", "127.0.0.1", 6379)
    prefix = f"tf-test:{uuid.uuid4().hex[:12]}"
    yield prefix
    client = aioredis.Redis.from_url(SHARED_URL)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
async def backend(prefix):
    backend = RedisBackend(SHARED_URL)
    yield backend
    await backend.close()


@pytest.fixture
def key(prefix):
    return prefix


@pytest.fixture
async def ttl_left_s():
    client = aioredis.Redis.from_url(SHARED_URL)

    async def ttl_left_s(key: str) -> float | None:
        ms = await client.pttl(key)
        return None if ms < 0 else ms / 1000

    yield ttl_left_s
    await client.aclose()


class TestRedisBackend(BackendContract):
    pass


async def test_a_lease_expires_by_itself(backend, key, ttl_left_s):
    """A reader that dies holding a lease blocks other processes for the lease time at most."""
    await backend.claim(f"{key}:a", 2.0)
    assert 1.5 < await ttl_left_s(f"{key}:a:lock") <= 2.0


class Database:
    def __init__(self, value: bytes) -> None:
        self.value = value
        self.reads = 0
        self.gate: asyncio.Event | None = None
        self.reading = asyncio.Event()  # set by the first read

    async def load(self) -> bytes:
        self.reads += 1
        self.reading.set()
        value = self.value
        if self.gate is not None:
            await self.gate.wait()
        return value


def process_cache(prefix: str, **options) -> Cache:
    """The cache one process would open: its own connections, the shared store."""
    return open_cache(SHARED_URL, prefix=prefix, **options)


async def test_fifty_concurrent_reads_in_two_processes_read_the_database_once(prefix):
    api_a, api_b = process_cache(prefix, lock_wait_s=5.0), process_cache(prefix, lock_wait_s=5.0)
    db = Database(b'{"id":"t1"}')
    try:
        reads = [cache.read(DETAIL, "t1", db.load) for _ in range(25) for cache in (api_a, api_b)]
        assert await asyncio.gather(*reads) == [db.value] * 50
    finally:
        await api_a.close()
        await api_b.close()
    assert db.reads == 1


async def test_a_worker_process_invalidation_reaches_an_api_process(prefix):
    worker, api = process_cache(prefix), process_cache(prefix)
    db = Database(b"pending")
    try:
        assert await api.read(DETAIL, "t1", db.load) == b"pending"
        assert await api.read(DETAIL, "t1", db.load) == b"pending"
        db.value = b"live"
        worker.invalidate(DETAIL, ["t1"])  # the worker committed; its change feed says so
        await worker.settled()
        assert await api.read(DETAIL, "t1", db.load) == b"live"
    finally:
        await worker.close()
        await api.close()
    assert db.reads == 2


async def test_a_read_from_before_another_process_commit_is_not_stored(prefix):
    worker, api = process_cache(prefix), process_cache(prefix)
    db = Database(b"pending")
    db.gate = asyncio.Event()
    try:
        early = asyncio.create_task(api.read(DETAIL, "t1", db.load))
        await db.reading.wait()  # the API process has the lease and is reading the database
        db.value = b"live"
        worker.invalidate(DETAIL, ["t1"])
        await worker.settled()
        db.gate.set()
        assert await early == b"pending"
        db.gate = None
        assert await api.read(DETAIL, "t1", db.load) == b"live", "the pending read was not stored"
    finally:
        await worker.close()
        await api.close()


async def test_a_generation_bump_from_another_process_drops_the_pages(prefix):
    page = Entry("test-page", ttl_s=5.0, by_generation=True)
    worker, api = process_cache(prefix), process_cache(prefix)
    db = Database(b"page 1")
    try:
        await api.read(page, "chain=ethereum", db.load)
        db.value = b"page 2"
        worker.invalidate(page)
        await worker.settled()
        assert await api.read(page, "chain=ethereum", db.load) == b"page 2"
        assert await api.read(page, "chain=ethereum", db.load) == b"page 2"
    finally:
        await worker.close()
        await api.close()
    assert db.reads == 2


# -- Redis down --------------------------------------------------------------------------


def logged(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("tokenforge.cache")]


async def test_with_nothing_listening_reads_answer_from_the_database_in_milliseconds(caplog):
    caplog.set_level(logging.WARNING, logger="tokenforge.cache")
    cache = open_cache(f"redis://:hunter2@127.0.0.1:{free_port()}/0")
    db = Database(b"from the database")
    errors = cache_count("test-detail", "error")
    try:
        started = time.monotonic()
        for _ in range(50):
            assert await cache.read(DETAIL, "t1", db.load) == db.value
        elapsed_s = time.monotonic() - started
    finally:
        await cache.close()
    assert elapsed_s < 0.5, f"50 reads took {elapsed_s:.3f} s"
    assert db.reads == 50
    assert cache_count("test-detail", "error") - errors == 50
    assert len(logged(caplog)) == 1 and "unreachable" in logged(caplog)[0]
    assert "hunter2" not in caplog.text


@pytest.fixture(params=["closed port", "no answer"])
async def unreachable_url(request):
    """A Redis URL nothing answers on: a closed port (refused at once), or a server that takes
    the connection and never replies (each request times out after 0.2 s)."""
    if request.param == "closed port":
        yield f"redis://127.0.0.1:{free_port()}/0"
        return
    connections: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        await reader.read()  # until the client hangs up

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    yield f"redis://127.0.0.1:{server.sockets[0].getsockname()[1]}/0"
    for writer in connections:
        writer.close()
    server.close()
    await server.wait_closed()


class WatchedRedis(RedisBackend):
    """The Redis backend; ``answered()`` returns once no read is waiting for Redis."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._waiting = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def get(self, key: str, generation_key: str | None = None) -> tuple[str, bytes | None]:
        self._waiting += 1
        self._idle.clear()
        try:
            return await super().get(key, generation_key)
        finally:
            self._waiting -= 1
            if not self._waiting:
                self._idle.set()

    async def answered(self) -> None:
        await self._idle.wait()


async def test_fifty_concurrent_reads_of_a_hot_key_while_redis_is_unreachable_read_the_database_once(
    unreachable_url,
):
    backend = WatchedRedis(unreachable_url)
    cache = Cache(backend)
    db = Database(b"from the database")
    db.gate = asyncio.Event()
    errors = cache_count("test-detail", "error")
    try:
        readers = [asyncio.create_task(cache.read(DETAIL, "t1", db.load)) for _ in range(50)]
        await asyncio.sleep(0)  # every reader runs up to Redis, or (the circuit open) up to the shared load
        await backend.answered()  # every Redis read failed, and its reader went on to the shared load
        db.gate.set()
        assert await asyncio.gather(*readers) == [db.value] * 50
    finally:
        await cache.close()
    assert db.reads == 1
    assert cache_count("test-detail", "error") - errors == 50


async def test_a_redis_that_stops_and_comes_back_is_used_again_without_a_restart(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="tokenforge.cache")
    redis_child = RedisChild(tmp_path, dict(os.environ))
    await redis_child.start()
    clock = FakeClock()
    cache = Cache(RedisBackend(redis_child.url), clock=clock, sleep=clock.sleep, retry_after_s=1.0)
    db = Database(b"body")
    try:
        await cache.read(DETAIL, "t1", db.load)
        assert await cache.read(DETAIL, "t1", db.load) == db.value and db.reads == 1

        redis_child.stop()
        started = time.monotonic()
        for _ in range(20):
            assert await cache.read(DETAIL, "t1", db.load) == db.value
        assert time.monotonic() - started < 0.5
        assert db.reads == 21 and not cache.up
        clock.advance(1.0)
        await cache.read(DETAIL, "t1", db.load)  # a probe, still down
        assert len(logged(caplog)) == 1

        await redis_child.start()  # the same port, empty
        clock.advance(1.0)
        hits = cache_count("test-detail", "hit")
        await cache.read(DETAIL, "t1", db.load)  # the probe: a miss, stored again
        assert cache.up
        assert await cache.read(DETAIL, "t1", db.load) == db.value
        assert cache_count("test-detail", "hit") - hits == 1 and db.reads == 23
        assert len(logged(caplog)) == 2 and "reachable again" in logged(caplog)[1]
    finally:
        await cache.close()
        redis_child.stop()


async def test_the_api_answers_every_read_while_redis_is_unreachable(settings):
    async with running_stack(settings, fakes(), start=False) as (container, client):
        container.cache = open_cache(f"redis://127.0.0.1:{free_port()}/0")
        install_cache_invalidation(container.feed, container.cache)
        with pytest.raises(CacheUnavailable):
            await container.cache.ping()  # as a readiness check would find it
        errors = cache_count("token", "error") + cache_count("tokens", "error") + cache_count("chains", "error")
        accepted = (await client.post("/v1/tokens", json=launch_body())).json()
        answers = [
            await client.get(path)
            for path in (f"/v1/tokens/{accepted['token']['id']}", "/v1/tokens", "/v1/chains")
            for _ in range(3)
        ]
        await container.cache.close()
    assert [r.status_code for r in answers] == [200] * 9
    assert answers[0].json() == accepted["token"]
    assert cache_count("token", "error") + cache_count("tokens", "error") + cache_count("chains", "error") == errors + 9


async def test_the_api_on_redis_serves_a_live_token_after_the_worker_commit(settings, prefix):
    async with running_stack(settings, fakes(), start=False) as (container, client):
        container.cache = open_cache(SHARED_URL, prefix=prefix)
        install_cache_invalidation(container.feed, container.cache)
        accepted = (await client.post("/v1/tokens", json=launch_body())).json()
        path = f"/v1/tokens/{accepted['token']['id']}"
        await container.cache.settled()  # until then reads of the new token skip the cache
        hits = cache_count("token", "hit")
        first = [await client.get(path) for _ in range(2)]
        assert cache_count("token", "hit") == hits + 1, "the second read came from Redis"
        await container.start()
        job = await wait_final(client, accepted["job"]["id"])
        after = (await client.get(path)).json()
        await container.cache.close()
    assert first[0].content == first[1].content and first[0].json()["status"] == "pending"
    assert job["status"] == "confirmed"
    assert after["status"] == "live" and after["address"] == job["token_address"]
