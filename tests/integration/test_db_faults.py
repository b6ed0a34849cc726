"""What the store boundary calls an outage, on a real PostgreSQL server."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import text

from tests.conftest import PG_HOST, PG_PORT
from tokenforge.errors import ErrorCode, TransientError
from tokenforge.store.db import make_engine, make_sessionmaker


async def terminate_own_backend(session) -> None:
    pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user="postgres", database="postgres")
    try:
        await conn.execute("SELECT pg_terminate_backend($1)", pid)
    finally:
        await conn.close()


async def killed_then_committed(sessions) -> None:
    async with sessions() as s:
        await terminate_own_backend(s)
        await s.commit()


async def killed_inside_begin(sessions) -> None:
    async with sessions() as s, s.begin():  # the commit runs when the begin() block ends
        await terminate_own_backend(s)


async def statement(sessions, *sql: str) -> None:
    async with sessions() as s:
        for line in sql:
            await s.execute(text(line))


@pytest.fixture
async def sessions(postgres_url):
    engine = make_engine(postgres_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def test_a_connection_killed_before_commit_is_an_outage_in_every_block_shape(sessions):
    with pytest.raises(TransientError) as explicit:
        await killed_then_committed(sessions)
    with pytest.raises(TransientError) as begun:
        await killed_inside_begin(sessions)
    assert explicit.value.code is begun.value.code is ErrorCode.DB_UNAVAILABLE


async def test_a_statement_timeout_or_a_sql_mistake_is_not_an_outage(sessions):
    with pytest.raises(Exception, match="canceling statement") as timeout:
        await statement(sessions, "SET statement_timeout = 50", "SELECT pg_sleep(1)")
    assert not isinstance(timeout.value, TransientError)
    with pytest.raises(Exception, match="nope") as mistake:
        await statement(sessions, "SELECT nope")
    assert not isinstance(mistake.value, TransientError)
