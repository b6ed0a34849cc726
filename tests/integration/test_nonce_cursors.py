"""Nonce cursors in the database: several worker processes sharing a deployer key never
get the same nonce, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio

from tokenforge.store.db import make_engine, make_sessionmaker
from tokenforge.store.migrate import upgrade_to_head
from tokenforge.store.nonce_cursors import SqlNonceSource

SIGNER = "0x" + "ab" * 20


async def _node_count(_signer: str) -> int:
    return 7  # the node says nonces 0..6 are used


async def test_concurrent_allocations_from_separate_engines_are_distinct_and_contiguous(any_db_settings):
    url = any_db_settings.resolved_database_url
    engines = [make_engine(url) for _ in range(3)]  # as three worker processes would have
    try:
        await upgrade_to_head(engines[0])
        sources = [SqlNonceSource(make_sessionmaker(e), "ethereum", _node_count) for e in engines]
        nonces = await asyncio.gather(*(sources[i % 3].allocate(SIGNER) for i in range(90)))
        assert sorted(nonces) == list(range(7, 97))
        assert await sources[0].cursor(SIGNER) == 97
    finally:
        for e in engines:
            await e.dispose()


async def test_release_only_takes_back_the_latest_and_rewind_is_compare_and_set(any_db_settings):
    engine = make_engine(any_db_settings.resolved_database_url)
    try:
        await upgrade_to_head(engine)
        source = SqlNonceSource(make_sessionmaker(engine), "ethereum", _node_count)
        a, b = await source.allocate(SIGNER), await source.allocate(SIGNER)
        await source.release(SIGNER, a)  # not the latest: stays a gap for the keeper
        assert await source.cursor(SIGNER) == b + 1
        await source.release(SIGNER, b)
        assert await source.cursor(SIGNER) == b
        assert not await source.rewind(SIGNER, expected=b + 5, to=a)
        assert await source.rewind(SIGNER, expected=b, to=a)
        assert await source.allocate(SIGNER) == a
        assert await source.advance(SIGNER, 50) and not await source.advance(SIGNER, 40)
        assert await source.allocate(SIGNER) == 50
    finally:
        await engine.dispose()


async def test_cursor_behind_the_node_moves_forward_on_first_use(any_db_settings):
    engine = make_engine(any_db_settings.resolved_database_url)
    try:
        await upgrade_to_head(engine)
        sessions = make_sessionmaker(engine)
        first = SqlNonceSource(sessions, "ethereum", _node_count)
        assert await first.allocate(SIGNER) == 7

        async def moved_on(_signer: str) -> int:
            return 20  # the key sent 13 transactions elsewhere meanwhile

        assert await SqlNonceSource(sessions, "ethereum", moved_on).allocate(SIGNER) == 20
    finally:
        await engine.dispose()
