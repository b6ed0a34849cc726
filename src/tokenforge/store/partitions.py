"""Monthly partitions of the ``trades`` table on PostgreSQL (native range partitioning).

``trades`` is ``PARTITION BY RANGE (block_time)`` on PostgreSQL (migration 0007); a row
whose month has no partition cannot be inserted, so the indexer calls
:func:`ensure_trade_partitions` for the months of every batch before writing it (each
partition is created once, ``IF NOT EXISTS``; the set of months known to exist is cached
per process). SQLite has one plain table and nothing to do.

Why our own few lines and not pg_partman: one table, one rule (a partition per calendar
month), created on demand by the only writer; pg_partman would be a server extension to
install and schedule for that.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_known: set[tuple[str, int, int]] = set()


def month_of(moment: datetime) -> tuple[int, int]:
    moment = moment.astimezone(UTC)
    return moment.year, moment.month


def partition_ddl(year: int, month: int) -> str:
    """``CREATE TABLE IF NOT EXISTS trades_pYYYYMM PARTITION OF trades FOR VALUES …``."""
    next_year, next_month = (year + 1, 1) if month == 12 else (year, month + 1)
    start = f"{year:04d}-{month:02d}-01 00:00:00+00"
    end = f"{next_year:04d}-{next_month:02d}-01 00:00:00+00"
    return (
        f"CREATE TABLE IF NOT EXISTS trades_p{year:04d}{month:02d} PARTITION OF trades "
        f"FOR VALUES FROM ('{start}') TO ('{end}')"
    )


async def ensure_trade_partitions(db: AsyncSession, moments: Iterable[datetime]) -> None:
    """Creates the monthly partitions ``moments`` fall in (PostgreSQL; no-op on SQLite)."""
    bind = db.get_bind()
    if bind.dialect.name != "postgresql":
        return
    url = str(bind.engine.url)
    for year, month in sorted({month_of(m) for m in moments}):
        if (url, year, month) in _known:
            continue
        await db.execute(text(partition_ddl(year, month)))
        _known.add((url, year, month))
