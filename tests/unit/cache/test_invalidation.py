"""Committed changes drop what they touched: the token's detail, every list page, the chain list."""

from __future__ import annotations

import pytest

from tokenforge.cache import CHAIN_LIST, TOKEN, TOKEN_LIST, install_cache_invalidation, open_cache
from tokenforge.store.feed import ChangeFeed
from tokenforge.store.group_commit import Changes


@pytest.fixture
async def cache():
    cache = open_cache("memory://", prefix="tf-test")
    yield cache
    await cache.close()


async def stored(cache, entry, key: str, body: bytes) -> bytes:
    """Read through the cache with a loader that returns ``body`` (what the database holds)."""

    async def load() -> bytes:
        return body

    return await cache.read(entry, key, load)


async def fill_all(cache) -> None:
    await stored(cache, TOKEN, "t1", b"t1 pending")
    await stored(cache, TOKEN, "t2", b"t2 pending")
    await stored(cache, TOKEN_LIST, "page", b"page 1")
    await stored(cache, CHAIN_LIST, "stored", b"chains 1")


async def test_a_token_status_change_drops_its_detail_every_page_and_the_chain_list(cache):
    feed = ChangeFeed()
    install_cache_invalidation(feed, cache)
    await fill_all(cache)
    feed.committed([Changes(tokens=[{"id": "t1", "status": "live"}])])
    assert await stored(cache, TOKEN, "t1", b"t1 live") == b"t1 live"
    assert await stored(cache, TOKEN, "t2", b"t2 changed") == b"t2 pending", "another token is not touched"
    assert await stored(cache, TOKEN_LIST, "page", b"page 2") == b"page 2"
    assert await stored(cache, CHAIN_LIST, "stored", b"chains 2") == b"chains 2"


async def test_a_new_token_drops_the_pages_and_its_id(cache):
    feed = ChangeFeed()
    install_cache_invalidation(feed, cache)
    await fill_all(cache)
    feed.committed([Changes(new_tokens=[{"id": "t3"}], new_jobs=[{"id": "j3"}])])
    assert await stored(cache, TOKEN_LIST, "page", b"page 2") == b"page 2"
    assert await stored(cache, CHAIN_LIST, "stored", b"chains 2") == b"chains 1", "no launch outcome yet"
    assert await stored(cache, TOKEN, "t1", b"t1 changed") == b"t1 pending"


async def test_job_only_changes_touch_nothing_cached(cache):
    feed = ChangeFeed()
    install_cache_invalidation(feed, cache)
    await fill_all(cache)
    feed.committed([Changes(jobs=[{"id": "j1", "status": "submitted"}], events=[{"job_id": "j1"}])])
    await cache.settled()
    assert await stored(cache, TOKEN, "t1", b"changed") == b"t1 pending"
    assert await stored(cache, TOKEN_LIST, "page", b"changed") == b"page 1"
