"""Append-only, hash-chained audit log in the database.

Each entry is ``(seq, at, actor, action, subject, details, prev_hash, hash)`` where
``seq`` runs 1, 2, 3, ... and ``hash = SHA-256(prev_hash ‖ canonical JSON of the entry)``
(:func:`entry_hash`); the first entry's ``prev_hash`` is :data:`GENESIS`. Editing a row
changes its hash; deleting or inserting one breaks ``seq`` or the next ``prev_hash``:
:func:`verify` names the first entry where the chain breaks. Removing the newest entries
leaves a valid, shorter chain: compare the head :func:`verify` reports with one kept
elsewhere (``tokenforge audit verify --expect-head``).

One chain with no forks and no gaps, whatever the number of writers: :func:`append`
runs inside the caller's transaction and, on PostgreSQL, first takes a transaction-level
advisory lock, so appenders take turns between reading the head and committing; on
SQLite every write transaction already holds the database's write lock (``BEGIN
IMMEDIATE``). The primary key on ``seq`` refuses a fork even if that were bypassed.
Triggers refuse UPDATE and DELETE (migration 0005).

``details`` must never hold a secret: it is meant to be read by operators and exported.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tokenforge.store.db import dialect_name, utcnow
from tokenforge.store.models import AuditRow, table

GENESIS = "0" * 64
#: pg_advisory_xact_lock key of the audit chain (any constant unique to TokenForge).
ADVISORY_LOCK_KEY = 0x746F6B656E617564  # "tokenaud"


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """What happened: ``actor`` did ``action`` to ``subject``."""

    actor: str
    action: str
    subject: str
    details: dict[str, Any] = field(default_factory=dict)


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="microseconds").replace("+00:00", "Z")


def canonical(seq: int, at: datetime, actor: str, action: str, subject: str, details: dict[str, Any]) -> bytes:
    """The bytes an entry's hash covers (sorted keys, no spaces, UTC microseconds)."""
    return orjson.dumps(
        {"seq": seq, "at": _iso(at), "actor": actor, "action": action, "subject": subject, "details": details},
        option=orjson.OPT_SORT_KEYS,
    )


def entry_hash(prev_hash: str, seq: int, at: datetime, actor: str, action: str, subject: str, details: dict) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + canonical(seq, at, actor, action, subject, details)).hexdigest()


async def append(session: AsyncSession, events: Sequence[AuditEvent], *, now: datetime | None = None) -> list[int]:
    """Append ``events`` in order inside the caller's transaction; returns their ``seq``.
    Call it as late in the transaction as possible: on PostgreSQL it holds the chain's
    lock until the commit."""
    if not events:
        return []
    if dialect_name(session) == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
    head = (await session.execute(select(AuditRow.seq, AuditRow.hash).order_by(AuditRow.seq.desc()).limit(1))).first()
    seq, prev = (head[0], head[1]) if head is not None else (0, GENESIS)
    at = now or utcnow()  # both databases keep microseconds: the hash covers what is stored
    rows = []
    for event in events:
        seq += 1
        details = orjson.loads(orjson.dumps(event.details))  # as stored and read back (JSON)
        digest = entry_hash(prev, seq, at, event.actor, event.action, event.subject, details)
        rows.append(
            dict(
                seq=seq,
                at=at,
                actor=event.actor,
                action=event.action,
                subject=event.subject,
                details=details,
                prev_hash=prev,
                hash=digest,
            )
        )
        prev = digest
    await session.execute(insert(table(AuditRow)), rows)
    return [r["seq"] for r in rows]


async def record(sessions: async_sessionmaker[AsyncSession], *events: AuditEvent) -> None:
    """Append ``events`` in a transaction of their own (for actions with no other write)."""
    async with sessions() as session:
        await append(session, events)
        await session.commit()


@dataclass(frozen=True, slots=True)
class Verification:
    """The result of :func:`verify`: ``entries`` checked, the ``head`` hash, and the first
    broken entry (``broken_seq``, ``reason``) if any."""

    entries: int
    head: str
    broken_seq: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.broken_seq is None


async def entries(session: AsyncSession, *, batch: int = 1000) -> AsyncIterator[AuditRow]:
    """Every entry in ``seq`` order, read in batches."""
    after = 0
    while True:
        rows = (
            (await session.execute(select(AuditRow).where(AuditRow.seq > after).order_by(AuditRow.seq).limit(batch)))
            .scalars()
            .all()
        )
        if not rows:
            return
        for row in rows:
            yield row
        after = rows[-1].seq


async def verify(session: AsyncSession) -> Verification:
    """Walk the chain from the first entry; stop at the first one that does not follow."""
    expected_seq, prev, count = 1, GENESIS, 0
    async for row in entries(session):
        if row.seq != expected_seq:
            what = "missing" if row.seq > expected_seq else "duplicated"
            return Verification(count, prev, expected_seq, f"entry {expected_seq} is {what} (next is {row.seq})")
        if row.prev_hash != prev:
            return Verification(count, prev, row.seq, "prev_hash does not match the entry before it")
        digest = entry_hash(prev, row.seq, row.at, row.actor, row.action, row.subject, row.details)
        if digest != row.hash:
            return Verification(count, prev, row.seq, "the entry's content does not match its hash")
        prev, expected_seq, count = row.hash, expected_seq + 1, count + 1
    return Verification(count, prev)


def row_out(row: AuditRow) -> dict[str, Any]:
    """An entry as JSON (``audit export``, ``GET /v1/ops/audit``)."""
    return {
        "seq": row.seq,
        "at": _iso(row.at),
        "actor": row.actor,
        "action": row.action,
        "subject": row.subject,
        "details": row.details,
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    }
