"""SQL for quotes: the indexed curve of a TokenForge launch and the chain's indexed head.

Read-only; the indexer (:mod:`tokenforge.market.indexer`) writes these rows."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tokenforge.store.models import IndexCheckpointRow, MarketRow, TokenRow


@dataclass(frozen=True, slots=True)
class QuoteSource:
    """A launch's token row, its market row (None while the curve is not indexed yet) and
    the newest block the chain's indexer has taken in (None before its first batch)."""

    token: TokenRow
    market: MarketRow | None
    indexed_block: int | None


async def quote_source(session: AsyncSession, token_id: str) -> QuoteSource | None:
    """What a quote of launch ``token_id`` needs, or None for an unknown token id."""
    token = (await session.execute(select(TokenRow).where(TokenRow.id == token_id))).scalar_one_or_none()
    if token is None:
        return None
    market = (
        await session.execute(select(MarketRow).where(MarketRow.token_id == token_id).limit(1))
    ).scalar_one_or_none()
    indexed = (
        await session.execute(select(IndexCheckpointRow.block_number).where(IndexCheckpointRow.chain == token.chain))
    ).scalar_one_or_none()
    return QuoteSource(token, market, indexed)
