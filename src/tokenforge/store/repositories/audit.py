"""SQL that reads the audit log (``audit_log``); appending is :func:`tokenforge.audit.log.append`'s
alone, so that every entry is chained under the chain's lock.

Entries are addressed by ``seq`` (1, 2, 3, ...), which is also the keyset of every page:
an entry appended meanwhile never shifts a page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tokenforge.store.models import AuditRow


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which entries a page holds: each given field must match exactly; ``since`` is
    inclusive and ``until`` exclusive (entry time ``at``)."""

    action: str | None = None
    actor: str | None = None
    subject: str | None = None
    since: datetime | None = None
    until: datetime | None = None


#: The filter every entry matches.
EVERY_ENTRY = AuditFilter()


async def head(session: AsyncSession) -> tuple[int, str] | None:
    """The newest entry's ``(seq, hash)``; None while the log is empty."""
    row = (await session.execute(select(AuditRow.seq, AuditRow.hash).order_by(AuditRow.seq.desc()).limit(1))).first()
    return None if row is None else (int(row[0]), str(row[1]))


async def batch(session: AsyncSession, *, after_seq: int, limit: int, upto_seq: int | None = None) -> list[AuditRow]:
    """Up to ``limit`` entries with ``after_seq < seq <= upto_seq``, in ``seq`` order."""
    stmt = select(AuditRow).where(AuditRow.seq > after_seq).order_by(AuditRow.seq).limit(limit)
    if upto_seq is not None:
        stmt = stmt.where(AuditRow.seq <= upto_seq)
    return list((await session.execute(stmt)).scalars())


async def page(
    session: AsyncSession,
    *,
    limit: int,
    newest_first: bool = True,
    after_seq: int | None = None,
    where: AuditFilter = EVERY_ENTRY,
) -> list[AuditRow]:
    """Up to ``limit`` entries matching ``where``, newest (highest ``seq``) first or oldest
    first, continuing past ``after_seq`` (exclusive) in that order."""
    stmt = select(AuditRow)
    if newest_first:
        stmt = stmt.order_by(AuditRow.seq.desc())
        if after_seq is not None:
            stmt = stmt.where(AuditRow.seq < after_seq)
    else:
        stmt = stmt.order_by(AuditRow.seq)
        if after_seq is not None:
            stmt = stmt.where(AuditRow.seq > after_seq)
    if where.action is not None:
        stmt = stmt.where(AuditRow.action == where.action)
    if where.actor is not None:
        stmt = stmt.where(AuditRow.actor == where.actor)
    if where.subject is not None:
        stmt = stmt.where(AuditRow.subject == where.subject)
    if where.since is not None:  # SQLite compares the stored UTC text: bind UTC too
        stmt = stmt.where(AuditRow.at >= where.since.astimezone(UTC))
    if where.until is not None:
        stmt = stmt.where(AuditRow.at < where.until.astimezone(UTC))
    return list((await session.execute(stmt.limit(limit))).scalars())
