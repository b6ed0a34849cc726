"""Engine and session factory; SQLite tuned for one writer, PostgreSQL pooled."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Connection, CursorResult, Result, event, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from tokenforge.store.faults import TranslatingSession


def utcnow() -> datetime:
    return datetime.now(UTC)


def rows_matched(result: Result[Any]) -> int:
    """Rows an ``UPDATE`` or ``DELETE`` matched. ``AsyncSession.execute`` is typed to return a
    plain ``Result``; for such a statement it is a ``CursorResult``, which has ``rowcount``."""
    return cast("CursorResult[Any]", result).rowcount


def dialect_name(session: AsyncSession) -> str:
    """``"postgresql"`` or ``"sqlite"``: the dialect of the engine ``session`` is bound to."""
    return session.get_bind().dialect.name


def make_engine(url: str, *, read_only: bool = False) -> AsyncEngine:
    """The engine for ``url``. ``read_only`` (SQLite): a connection of its own that only
    reads, in deferred transactions — WAL lets it read while the process's writer writes,
    neither waiting for the other (a watcher polling the database must not take the write
    lock the indexer needs)."""
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # SQLite has one writer: one pooled connection per process serialises writers
        # in-process; BEGIN IMMEDIATE orders writers across processes.
        # A writer waits up to 5 s for another process's lock, a session up to 10 s for the
        # connection: a file locked for longer is an outage (DB_UNAVAILABLE, 503), not a hang.
        engine = create_async_engine(url, pool_size=1, max_overflow=0, pool_timeout=10)

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=5000")
            cur.execute("PRAGMA foreign_keys=ON")
            if read_only:
                cur.execute("PRAGMA query_only=ON")
            cur.close()
            # Transactions are begun explicitly below, not by the driver.
            dbapi_conn.isolation_level = None

        @event.listens_for(engine.sync_engine, "begin")
        def _begin(conn: Connection) -> None:  # pragma: no cover - trivial
            # Several processes write one file (API and worker): take the write lock up
            # front, so a read-then-write transaction waits for it (busy_timeout) instead
            # of failing on the lock upgrade.
            conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        return engine
    # A database that is down must answer quickly (DB_UNAVAILABLE), not after asyncpg's 60 s
    # connect timeout or a 30 s wait for a pooled connection.
    return create_async_engine(
        url,
        pool_size=20,
        max_overflow=20,
        pool_pre_ping=True,
        pool_timeout=10,
        connect_args={"timeout": 5} if "+asyncpg" in url else {},
    )


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions whose ``async with`` blocks raise ``DB_UNAVAILABLE`` for database outages
    (:mod:`tokenforge.store.faults`)."""
    return async_sessionmaker(engine, class_=TranslatingSession, expire_on_commit=False)
