"""SQL for tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tokenforge.domain.jobs import TokenStatus
from tokenforge.domain.tokens import LaunchParams
from tokenforge.store.models import TokenRow


def new_token(
    params: LaunchParams, *, token_id: str, job_id: str, network: str, now: datetime, requested_by: str | None = None
) -> dict[str, Any]:
    """Column values of a new token row (every column but the autoincrement ``seq``)."""
    return dict(
        id=token_id,
        chain=params.chain,
        network=network,
        name=params.name,
        symbol=params.symbol,
        decimals=params.decimals,
        supply=str(params.supply),
        supply_base_units=str(params.supply_base_units),
        creator=params.creator,
        description=params.description,
        image_url=params.image_url,
        website=params.website,
        twitter=params.twitter,
        telegram=params.telegram,
        metadata_uri=params.metadata_uri,
        status=TokenStatus.PENDING.value,
        address=None,
        tx_id=None,
        block_number=None,
        gas_used=None,
        fee_paid_base_units=None,
        job_id=job_id,
        requested_by=requested_by,
        launch_fee_bps=params.launch_fee_bps,
        launch_fee_window=params.launch_fee_window,
        launch_fee_in_blocks=params.launch_fee_in_blocks,
        created_at=now,
        updated_at=now,
    )


async def get(session: AsyncSession, token_id: str) -> TokenRow | None:
    return (await session.execute(select(TokenRow).where(TokenRow.id == token_id))).scalar_one_or_none()


async def list_page(
    session: AsyncSession,
    *,
    limit: int,
    before_seq: int | None = None,
    chain: str | None = None,
    creator: str | None = None,
    status: str | None = None,
) -> list[TokenRow]:
    """Newest first; ``before_seq`` is the cursor (exclusive). One statement whatever
    ``limit``: a row carries everything a listed token shows (no per-row reads)."""
    stmt = select(TokenRow).order_by(TokenRow.seq.desc()).limit(limit)
    if before_seq is not None:
        stmt = stmt.where(TokenRow.seq < before_seq)
    if chain is not None:
        stmt = stmt.where(TokenRow.chain == chain)
    if creator is not None:
        stmt = stmt.where(TokenRow.creator == creator)
    if status is not None:
        stmt = stmt.where(TokenRow.status == status)
    return list((await session.execute(stmt)).scalars())
