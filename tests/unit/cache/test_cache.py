"""The read-through cache over the memory backend: single flight, invalidation, TTLs,
and answering from the database while the store is down."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.unit.cache.helpers import FakeClock, FlakyBackend, cache_count
from tokenforge.cache import Cache, Entry, open_cache
from tokenforge.cache.memory import MemoryBackend
from tokenforge.errors import NotFound

DETAIL = Entry("test-detail", ttl_s=60.0)
PAGE = Entry("test-page", ttl_s=5.0, by_generation=True)


class Database:
    """A loader that counts its reads; ``gate`` (when set) holds every read until opened."""

    def __init__(self, value: bytes = b'{"v":1}') -> None:
        self.value = value
        self.reads = 0
        self.gate: asyncio.Event | None = None

    async def load(self) -> bytes:
        self.reads += 1
        value = self.value  # what the database holds when the read starts
        if self.gate is not None:
            await self.gate.wait()
        return value


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def flaky(clock):
    return FlakyBackend(clock)


@pytest.fixture
async def cache(flaky, clock):
    cache = Cache(flaky, clock=clock, sleep=clock.sleep, retry_after_s=1.0)
    yield cache
    await cache.close()


async def test_fifty_concurrent_reads_of_a_cold_key_read_the_database_once(cache):
    db = Database()
    db.gate = asyncio.Event()
    readers = [asyncio.create_task(cache.read(DETAIL, "t1", db.load)) for _ in range(50)]
    await asyncio.sleep(0)  # every reader runs up to its wait (the memory store never suspends)
    db.gate.set()
    assert await asyncio.gather(*readers) == [db.value] * 50
    assert db.reads == 1
    assert await cache.read(DETAIL, "t1", db.load) == db.value
    assert db.reads == 1, "the value was stored"


async def test_hits_and_misses_are_counted(cache):
    db = Database()
    hits, misses = cache_count("test-detail", "hit"), cache_count("test-detail", "miss")
    await cache.read(DETAIL, "counted", db.load)
    await cache.read(DETAIL, "counted", db.load)
    await cache.read(DETAIL, "counted", db.load)
    assert (cache_count("test-detail", "hit") - hits, cache_count("test-detail", "miss") - misses) == (2, 1)


async def test_an_invalidated_key_is_read_from_the_database_at_once(cache):
    db = Database(b"pending")
    assert await cache.read(DETAIL, "t1", db.load) == b"pending"
    db.value = b"live"
    cache.invalidate(DETAIL, ["t1"])
    # no await in between: the next read already misses, before the store has been told
    assert await cache.read(DETAIL, "t1", db.load) == b"live"
    await cache.settled()
    assert await cache.read(DETAIL, "t1", db.load) == b"live"
    assert db.reads == 3, "read from the database until the store had dropped it, then stored again"
    assert await cache.read(DETAIL, "t1", db.load) == b"live"
    assert db.reads == 3


async def test_a_value_loaded_before_an_invalidation_is_not_stored(cache):
    """The read started before the commit; the commit is announced while it loads."""
    db = Database(b"pending")
    db.gate = asyncio.Event()
    early = asyncio.create_task(cache.read(DETAIL, "t1", db.load))
    await asyncio.sleep(0)
    cache.invalidate(DETAIL, ["t1"])
    db.value = b"live"
    later = asyncio.create_task(cache.read(DETAIL, "t1", db.load))  # must not join the early read
    db.gate.set()
    assert await early == b"pending", "it answers what it read"
    assert await later == b"live"
    await cache.settled()
    assert await cache.read(DETAIL, "t1", db.load) == b"live", "nothing was stored from the early read"


async def test_a_generation_bump_drops_every_page(cache):
    db = Database(b"page 1")
    assert await cache.read(PAGE, "chain=ethereum", db.load) == b"page 1"
    assert await cache.read(PAGE, "chain=solana", db.load) == b"page 1"
    db.value = b"page 2"
    cache.invalidate(PAGE)
    assert await cache.read(PAGE, "chain=ethereum", db.load) == b"page 2"
    await cache.settled()
    assert await cache.read(PAGE, "chain=solana", db.load) == b"page 2"
    assert await cache.read(PAGE, "chain=solana", db.load) == b"page 2"
    assert db.reads == 4


async def test_what_the_loader_raises_reaches_every_waiting_reader_and_nothing_is_stored(cache):
    missing = NotFound("token t9 does not exist")

    async def load() -> bytes:
        await gate.wait()
        raise missing

    gate = asyncio.Event()
    readers = [asyncio.create_task(cache.read(DETAIL, "t9", load)) for _ in range(5)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*readers, return_exceptions=True)
    assert results == [missing] * 5
    db = Database(b"created since")
    assert await cache.read(DETAIL, "t9", db.load) == b"created since"


async def test_readers_sharing_a_cancelled_request_load_for_themselves(cache):
    db = Database()
    db.gate = asyncio.Event()
    leader = asyncio.create_task(cache.read(DETAIL, "t1", db.load))
    await asyncio.sleep(0)
    follower = asyncio.create_task(cache.read(DETAIL, "t1", db.load))
    await asyncio.sleep(0)
    leader.cancel()
    db.gate.set()
    assert await follower == db.value
    with pytest.raises(asyncio.CancelledError):
        await leader


async def test_stored_values_live_their_ttl_with_jitter(cache, flaky, clock):
    db = Database()
    for i in range(100):
        await cache.read(DETAIL, f"t{i}", db.load)
    assert len(flaky.fills) == 100
    assert all(60 * 0.85 <= ttl <= 60 * 1.15 for ttl in flaky.fills)
    assert max(flaky.fills) - min(flaky.fills) > 60 * 0.1, "spread, so that they do not expire together"
    clock.advance(60 * 1.15)
    await cache.read(DETAIL, "t0", db.load)
    assert db.reads == 101


async def test_ttls_can_be_set_per_entry(clock):
    backend = FlakyBackend(clock)
    cache = Cache(backend, clock=clock, ttl_s={"test-page": 1.0}, jitter=0.0)
    await cache.read(PAGE, "p", Database().load)
    assert backend.fills == [1.0]
    await cache.close()


async def test_none_caches_nothing():
    cache = open_cache("none://")
    db = Database()
    for _ in range(3):
        assert await cache.read(DETAIL, "t1", db.load) == db.value
    cache.invalidate(DETAIL, ["t1"])
    assert db.reads == 3 and cache.kind == "none"
    await cache.close()


def test_the_url_picks_the_backend_and_a_bad_one_is_refused_without_echoing_it():
    assert open_cache("memory://").kind == "memory"
    assert open_cache("redis://127.0.0.1:6379/0").kind == "redis"
    with pytest.raises(ValueError, match="cache URL must start with") as refused:
        open_cache("memcached://user:hunter2@host")
    assert "hunter2" not in str(refused.value)


# -- the store is down -----------------------------------------------------------------


async def test_reads_answer_from_the_database_while_the_store_is_down_logged_once(cache, flaky, clock, caplog):
    db = Database()
    await cache.read(DETAIL, "t1", db.load)
    flaky.down = True
    errors = cache_count("test-detail", "error")
    caplog.set_level(logging.WARNING, logger="tokenforge.cache")

    def logged() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name.startswith("tokenforge.cache")]

    calls = flaky.calls
    for _ in range(20):
        assert await cache.read(DETAIL, "t1", db.load) == db.value
    assert db.reads == 21
    assert cache_count("test-detail", "error") - errors == 20
    assert flaky.calls - calls == 1, "after one failure the store is not asked again within retry_after_s"
    assert not cache.up
    assert len(logged()) == 1 and "unreachable" in logged()[0] and "connection refused" in logged()[0]

    clock.advance(1.0)
    await cache.read(DETAIL, "t1", db.load)  # one probe, failing
    assert flaky.calls - calls == 2 and len(logged()) == 1

    flaky.down = False
    clock.advance(1.0)
    assert await cache.read(DETAIL, "t1", db.load) == db.value  # the probe answers: a hit
    assert cache.up and db.reads == 22
    assert len(logged()) == 2 and "reachable again" in logged()[1]
    hits = cache_count("test-detail", "hit")
    await cache.read(DETAIL, "t1", db.load)
    assert cache_count("test-detail", "hit") - hits == 1 and db.reads == 22


async def test_only_one_request_probes_a_store_that_was_down(cache, flaky, clock):
    flaky.down = True
    db = Database()
    await cache.read(DETAIL, "t1", db.load)
    clock.advance(1.0)
    calls = flaky.calls
    await asyncio.gather(*(cache.read(DETAIL, "t1", db.load) for _ in range(10)))
    assert flaky.calls - calls == 1


async def test_fifty_concurrent_reads_while_the_store_fails_read_the_database_once(cache, flaky, clock):
    """Every reader asks the store at once and each gets a failure (as when Redis answers slower
    than its timeout): they share one database read, and nothing read meanwhile is stored."""
    flaky.down = True
    db = Database()
    db.gate = asyncio.Event()
    errors = cache_count("test-detail", "error")
    readers = [asyncio.create_task(cache.read(DETAIL, "t1", db.load)) for _ in range(50)]
    await asyncio.sleep(0)  # every reader runs up to its call to the store
    await flaky.answered()  # every call failed, and its reader went on to the shared load
    db.gate.set()
    assert await asyncio.gather(*readers) == [db.value] * 50
    assert db.reads == 1
    assert cache_count("test-detail", "error") - errors == 50
    flaky.down = False
    clock.advance(1.0)
    assert await cache.read(DETAIL, "t1", db.load) == db.value
    assert db.reads == 2, "what was read while the store was down was not stored"


@pytest.mark.parametrize(("entry", "keys"), [(DETAIL, ["t1"]), (PAGE, [])], ids=["key", "generation"])
async def test_reads_of_a_dirty_key_share_a_load_but_never_one_from_before_an_invalidation(cache, flaky, entry, keys):
    """The store is down, so the key stays dirty; a second commit lands while the first reads load."""
    flaky.down = True
    await cache.read(entry, "t0", Database().load)  # finds the store down
    db = Database(b"pending")
    db.gate = asyncio.Event()
    errors = cache_count(entry.name, "error")
    cache.invalidate(entry, keys)
    early = [asyncio.create_task(cache.read(entry, "t1", db.load)) for _ in range(10)]
    await asyncio.sleep(0)  # every reader runs up to its wait (a dirty key is not asked of the store)
    db.value = b"live"
    cache.invalidate(entry, keys)
    later = [asyncio.create_task(cache.read(entry, "t1", db.load)) for _ in range(10)]
    await asyncio.sleep(0)
    db.gate.set()
    assert await asyncio.gather(*early) == [b"pending"] * 10
    assert await asyncio.gather(*later) == [b"live"] * 10, "no read after the commit got what was read before it"
    assert db.reads == 2
    assert cache_count(entry.name, "error") - errors == 20


async def test_reads_of_a_key_whose_invalidation_the_store_has_not_confirmed_share_one_load(cache, flaky):
    """The memory store is up but slow to confirm a delete: the key is dirty meanwhile."""
    db = Database(b"pending")
    assert await cache.read(DETAIL, "t1", db.load) == b"pending"
    flaky.invalidations_held = asyncio.Event()
    db.value = b"live"
    db.gate = asyncio.Event()
    misses = cache_count("test-detail", "miss")
    cache.invalidate(DETAIL, ["t1"])
    readers = [asyncio.create_task(cache.read(DETAIL, "t1", db.load)) for _ in range(50)]
    await asyncio.sleep(0)  # every reader runs up to its wait
    db.gate.set()
    assert await asyncio.gather(*readers) == [b"live"] * 50
    assert db.reads == 2
    assert cache_count("test-detail", "miss") - misses == 50
    flaky.invalidations_held.set()
    await cache.settled()
    assert await cache.read(DETAIL, "t1", db.load) == b"live"
    assert db.reads == 3, "nothing was stored while the key was dirty"
    assert await cache.read(DETAIL, "t1", db.load) == b"live"
    assert db.reads == 3


async def test_an_invalidation_the_store_missed_is_sent_when_it_is_back(cache, flaky, clock):
    db = Database(b"pending")
    await cache.read(DETAIL, "t1", db.load)
    flaky.down = True
    await cache.read(DETAIL, "t2", db.load)  # finds the store down
    db.value = b"live"
    cache.invalidate(DETAIL, ["t1"])
    flusher = asyncio.create_task(cache.settled())
    await asyncio.sleep(0)
    assert not flusher.done()
    assert await cache.read(DETAIL, "t1", db.load) == b"live", "this process never reads the stale entry"
    flaky.down = False
    clock.advance(1.0)
    await asyncio.wait_for(flusher, 5)
    assert await MemoryBackend.get(flaky, "tf:2:test-detail:t1") == ("tf:2:test-detail:t1", None)
    assert await cache.read(DETAIL, "t1", db.load) == b"live"


async def test_invalidations_outlived_by_every_ttl_are_dropped_in_a_long_outage(cache, flaky, clock):
    flaky.down = True
    await cache.read(DETAIL, "t0", Database().load)  # finds the store down
    cache.invalidate(DETAIL, [f"t{i}" for i in range(100)])
    flusher = asyncio.create_task(cache.settled())
    await asyncio.sleep(0)
    clock.advance(60 * 1.15 + 1)  # every entry stored before the invalidation has expired by now
    await asyncio.wait_for(flusher, 5)
    assert flaky.calls == 1, "nothing was sent: it would have deleted only what had expired"
