"""SQL for webhooks, their deliveries and the dispatcher's cursor over job events."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from tokenforge.store.db import dialect_name
from tokenforge.store.models import (
    CursorRow,
    JobEventRow,
    JobRow,
    TokenRow,
    WebhookDeliveryRow,
    WebhookRow,
    table,
)

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


# -- webhooks --------------------------------------------------------------------------


async def get_owned(session: AsyncSession, webhook_id: str, owner: str) -> WebhookRow | None:
    """The active webhook ``webhook_id`` if ``owner`` owns it (None otherwise: unknown,
    deleted or another owner's look the same)."""
    stmt = select(WebhookRow).where(
        WebhookRow.id == webhook_id, WebhookRow.owner == owner, WebhookRow.disabled_at.is_(None)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def get(session: AsyncSession, webhook_id: str) -> WebhookRow | None:
    return (await session.execute(select(WebhookRow).where(WebhookRow.id == webhook_id))).scalar_one_or_none()


async def list_owned(session: AsyncSession, owner: str) -> list[WebhookRow]:
    stmt = (
        select(WebhookRow)
        .where(WebhookRow.owner == owner, WebhookRow.disabled_at.is_(None))
        .order_by(WebhookRow.created_at.desc(), WebhookRow.id.desc())
    )
    return list((await session.execute(stmt)).scalars())


async def active(session: AsyncSession) -> list[WebhookRow]:
    stmt = select(WebhookRow).where(WebhookRow.disabled_at.is_(None))
    return list((await session.execute(stmt)).scalars())


async def disable(session: AsyncSession, webhook_id: str, *, now: datetime) -> None:
    """Delete (disable) a webhook; its pending deliveries fail with the reason."""
    await session.execute(update(WebhookRow).where(WebhookRow.id == webhook_id).values(disabled_at=now))
    await session.execute(
        update(WebhookDeliveryRow)
        .where(WebhookDeliveryRow.webhook_id == webhook_id, WebhookDeliveryRow.status == PENDING)
        .values(status=FAILED, last_error="the webhook was deleted", updated_at=now)
    )


# -- the dispatcher's cursor and its reads ---------------------------------------------------


async def lock_cursor(session: AsyncSession, name: str, *, initial: int, now: datetime) -> int:
    """The cursor's position, locked until the transaction ends (PostgreSQL: ``FOR
    UPDATE``, so dispatchers of several processes take turns; SQLite: the write lock
    taken by creating the row). A missing cursor starts at ``initial``."""
    values = {"name": name, "position": initial, "updated_at": now}
    if dialect_name(session) == "postgresql":
        await session.execute(pg_insert(table(CursorRow)).values(values).on_conflict_do_nothing())
        stmt = select(CursorRow.position).where(CursorRow.name == name).with_for_update()
    else:
        await session.execute(sqlite_insert(table(CursorRow)).values(values).on_conflict_do_nothing())
        stmt = select(CursorRow.position).where(CursorRow.name == name)
    return int((await session.execute(stmt)).scalar_one())


async def set_cursor(session: AsyncSession, name: str, position: int, *, now: datetime) -> None:
    await session.execute(update(CursorRow).where(CursorRow.name == name).values(position=position, updated_at=now))


async def max_event_id(session: AsyncSession) -> int:
    return int((await session.execute(select(func.coalesce(func.max(JobEventRow.id), 0)))).scalar_one())


def _owner_matches(owners: Iterable[str]) -> Any:
    """Tokens owned by any of ``owners``: a wallet is the creator; ``api_key:<id>`` (a key
    without a wallet) asked for the launch (``requested_by`` is that key's actor)."""
    wallets = [o for o in owners if ":" not in o]
    keys = [o for o in owners if ":" in o]
    clauses: list[ColumnElement[bool]] = [TokenRow.creator.in_(wallets)] if wallets else []
    for key in keys:
        clauses += [TokenRow.requested_by == key, TokenRow.requested_by.startswith(key + "/", autoescape=True)]
    return or_(*clauses)


async def events_of_owners(
    session: AsyncSession, *, after_id: int, up_to_id: int, owners: Sequence[str]
) -> list[tuple[JobEventRow, JobRow, TokenRow]]:
    """Job events with ``after_id < id <= up_to_id`` of launches owned by ``owners``, in id
    order, with their job and token."""
    if not owners:
        return []
    stmt = (
        select(JobEventRow, JobRow, TokenRow)
        .join(JobRow, JobRow.id == JobEventRow.job_id)
        .join(TokenRow, TokenRow.id == JobRow.token_id)
        .where(JobEventRow.id > after_id, JobEventRow.id <= up_to_id, _owner_matches(owners))
        .order_by(JobEventRow.id)
    )
    return [(e, j, t) for e, j, t in (await session.execute(stmt)).all()]


async def delivered_events(
    session: AsyncSession, webhook_ids: Sequence[str], event_ids: Sequence[int]
) -> set[tuple[str, int]]:
    """The (webhook id, event id) pairs that already have a delivery."""
    if not webhook_ids or not event_ids:
        return set()
    stmt = select(WebhookDeliveryRow.webhook_id, WebhookDeliveryRow.event_id).where(
        WebhookDeliveryRow.webhook_id.in_(list(webhook_ids)), WebhookDeliveryRow.event_id.in_(list(event_ids))
    )
    return {(w, int(e)) for w, e in (await session.execute(stmt)).all() if e is not None}


async def add_deliveries(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(table(WebhookDeliveryRow)), rows)


# -- deliveries ----------------------------------------------------------------------------


async def get_delivery(
    session: AsyncSession, delivery_id: str, *, webhook_id: str | None = None
) -> WebhookDeliveryRow | None:
    stmt = select(WebhookDeliveryRow).where(WebhookDeliveryRow.id == delivery_id)
    if webhook_id is not None:
        stmt = stmt.where(WebhookDeliveryRow.webhook_id == webhook_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def deliveries_page(
    session: AsyncSession, webhook_id: str, *, limit: int, before: tuple[datetime, str] | None = None
) -> list[WebhookDeliveryRow]:
    """Deliveries of ``webhook_id``, newest first, older than ``before`` (created_at, id)."""
    stmt = select(WebhookDeliveryRow).where(WebhookDeliveryRow.webhook_id == webhook_id)
    if before is not None:
        at, last_id = before
        stmt = stmt.where(
            or_(
                WebhookDeliveryRow.created_at < at,
                and_(WebhookDeliveryRow.created_at == at, WebhookDeliveryRow.id < last_id),
            )
        )
    stmt = stmt.order_by(WebhookDeliveryRow.created_at.desc(), WebhookDeliveryRow.id.desc()).limit(limit)
    return list((await session.execute(stmt)).scalars())


async def record_attempt(session: AsyncSession, delivery_id: str, attempt: int, values: dict[str, Any]) -> bool:
    """Write the outcome of attempt ``attempt`` (1-based) of a pending delivery that has
    ``attempt - 1`` attempts recorded; False (nothing written) otherwise: a duplicate
    message recorded it first, or the delivery was settled meanwhile."""
    result = await session.execute(
        update(WebhookDeliveryRow)
        .where(
            WebhookDeliveryRow.id == delivery_id,
            WebhookDeliveryRow.status == PENDING,
            WebhookDeliveryRow.attempts == attempt - 1,
        )
        .values(**values)
    )
    return bool(getattr(result, "rowcount", 0))


async def pending(session: AsyncSession) -> list[tuple[str, str, int]]:
    """(delivery id, webhook id, attempts) of every pending delivery."""
    stmt = select(WebhookDeliveryRow.id, WebhookDeliveryRow.webhook_id, WebhookDeliveryRow.attempts).where(
        WebhookDeliveryRow.status == PENDING
    )
    return [(d, w, int(a)) for d, w, a in (await session.execute(stmt)).all()]
