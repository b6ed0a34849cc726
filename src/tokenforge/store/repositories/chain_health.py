"""SQL for ``chain_health``: the last reported state of each RPC endpoint and deployer key.

One row per (chain, kind, name); each report overwrites the row (upsert), so with several
worker processes a row holds the view of the process that reported it last (``reporter``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from tokenforge.store.db import dialect_name
from tokenforge.store.models import ChainHealthRow

#: ``kind`` of an RPC endpoint's row and of a deployer key's (or Solana payer's) row
ENDPOINT, KEY = "endpoint", "key"


async def upsert(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert or overwrite rows (chain, kind, name, state, reporter, updated_at)."""
    if not rows:
        return
    insert = postgresql.insert if dialect_name(session) == "postgresql" else sqlite.insert
    stmt = insert(ChainHealthRow)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["chain", "kind", "name"],
            set_={
                "state": stmt.excluded.state,
                "reporter": stmt.excluded.reporter,
                "updated_at": stmt.excluded.updated_at,
            },
        ),
        rows,
    )


async def purge_missing(session: AsyncSession, chain: str, kind: str, keep: list[str], *, older_than: datetime) -> None:
    """Delete the ``chain``/``kind`` rows not named in ``keep`` that nobody reported since
    ``older_than`` (an endpoint or key taken out of the configuration)."""
    await session.execute(
        delete(ChainHealthRow).where(
            ChainHealthRow.chain == chain,
            ChainHealthRow.kind == kind,
            ChainHealthRow.name.not_in(keep),
            ChainHealthRow.updated_at < older_than,
        )
    )


async def all_rows(session: AsyncSession) -> list[ChainHealthRow]:
    stmt = select(ChainHealthRow).order_by(ChainHealthRow.chain, ChainHealthRow.kind, ChainHealthRow.name)
    return list((await session.execute(stmt)).scalars())
