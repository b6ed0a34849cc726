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

Reading: :func:`verify` walks the chain in the database and :func:`verify_export` an
exported copy (one :func:`row_out` JSON object per line) with the same rules
(:class:`ChainCheck`); :func:`page` serves operators' pages. The SQL is in
:mod:`tokenforge.store.repositories.audit`; this module is the only one that appends.

``details`` must never hold a secret: it is meant to be read by operators and exported.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tokenforge.errors import ValidationFailed
from tokenforge.store.db import dialect_name, utcnow
from tokenforge.store.models import AuditRow, table
from tokenforge.store.repositories import audit as audit_repo
from tokenforge.store.repositories.audit import AuditFilter

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


def chain_rows(events: Sequence[AuditEvent], *, after_seq: int, prev_hash: str, at: datetime) -> list[dict[str, Any]]:
    """The ``audit_log`` rows of ``events`` chained after entry ``after_seq`` whose hash is
    ``prev_hash``, all at ``at`` (both databases keep microseconds: the hash covers what is
    stored)."""
    rows = []
    for seq, event in enumerate(events, after_seq + 1):
        details = orjson.loads(orjson.dumps(event.details))  # as stored and read back (JSON)
        digest = entry_hash(prev_hash, seq, at, event.actor, event.action, event.subject, details)
        rows.append(
            dict(
                seq=seq,
                at=at,
                actor=event.actor,
                action=event.action,
                subject=event.subject,
                details=details,
                prev_hash=prev_hash,
                hash=digest,
            )
        )
        prev_hash = digest
    return rows


async def append(session: AsyncSession, events: Sequence[AuditEvent], *, now: datetime | None = None) -> list[int]:
    """Append ``events`` in order inside the caller's transaction; returns their ``seq``.
    Call it as late in the transaction as possible: on PostgreSQL it holds the chain's
    lock until the commit."""
    if not events:
        return []
    if dialect_name(session) == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
    seq, prev = await audit_repo.head(session) or (0, GENESIS)
    rows = chain_rows(events, after_seq=seq, prev_hash=prev, at=now or utcnow())
    await session.execute(insert(table(AuditRow)), rows)
    return [r["seq"] for r in rows]


async def record(sessions: async_sessionmaker[AsyncSession], *events: AuditEvent) -> None:
    """Append ``events`` in a transaction of their own (for actions with no other write)."""
    async with sessions() as session:
        await append(session, events)
        await session.commit()


# -- reading and checking ----------------------------------------------------------------


class Entry(Protocol):
    """An entry as stored (an :class:`AuditRow`) or as exported (:func:`parse_line`)."""

    @property
    def seq(self) -> int: ...
    @property
    def at(self) -> datetime: ...
    @property
    def actor(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def details(self) -> dict[str, Any]: ...
    @property
    def prev_hash(self) -> str: ...
    @property
    def hash(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Verification:
    """The result of a check: ``entries`` that follow the chain from the first one, the
    ``head`` hash they end at, and the first broken entry (``broken_seq``, ``reason``) if
    any. With an expected head, ``expected_head_seq`` is the entry that has it."""

    entries: int
    head: str
    broken_seq: int | None = None
    reason: str | None = None
    expected_head_seq: int | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None


class ChainCheck:
    """The chain's rules, applied to entries fed one at a time in ``seq`` order from the
    first: ``seq`` runs 1, 2, 3, ...; each ``prev_hash`` is the hash of the entry before it
    (:data:`GENESIS` for the first); each ``hash`` is :func:`entry_hash` of its content.

    ``expect_head``: a head hash kept elsewhere (e.g. printed by an earlier verify). The
    chain must still contain the entry that has it — it may have grown since — or its
    newest entries were removed (or the chain was rewritten from some entry on)."""

    def __init__(self, *, expect_head: str | None = None) -> None:
        self._next_seq, self._prev, self._count = 1, GENESIS, 0
        self._broken: tuple[int, str] | None = None
        self._expect = expect_head
        self._expected_at: int | None = 0 if expect_head == GENESIS else None

    def add(self, entry: Entry) -> bool:
        """Check the next entry; False once the chain is broken (feed no more)."""
        if self._broken is not None:
            return False
        if entry.seq != self._next_seq:
            what = "missing" if entry.seq > self._next_seq else "duplicated or out of order"
            return self.fail(f"entry {self._next_seq} is {what} (the next entry is {entry.seq})")
        if entry.prev_hash != self._prev:
            return self.fail("prev_hash does not match the hash of the entry before it")
        digest = entry_hash(self._prev, entry.seq, entry.at, entry.actor, entry.action, entry.subject, entry.details)
        if digest != entry.hash:
            return self.fail("the entry's content does not match its hash")
        self._prev, self._next_seq, self._count = entry.hash, self._next_seq + 1, self._count + 1
        if entry.hash == self._expect:
            self._expected_at = entry.seq
        return True

    def fail(self, reason: str) -> bool:
        """Mark the next expected entry broken for ``reason``; returns False."""
        if self._broken is None:
            self._broken = (self._next_seq, reason)
        return False

    def result(self) -> Verification:
        if self._broken is not None:
            seq, reason = self._broken
            return Verification(self._count, self._prev, seq, reason, self._expected_at)
        if self._expect is not None and self._expected_at is None:
            reason = (
                f"the expected head {self._expect} is not in the chain, which ends at entry {self._count}: "
                "its newest entries were removed or the chain was rewritten"
            )
            return Verification(self._count, self._prev, self._count + 1, reason)
        return Verification(self._count, self._prev, expected_head_seq=self._expected_at)


async def batches(
    sessions: async_sessionmaker[AsyncSession], *, after_seq: int = 0, upto_seq: int | None = None, size: int = 1000
) -> AsyncIterator[list[AuditRow]]:
    """The entries after ``after_seq`` up to ``upto_seq`` in ``seq`` order, ``size`` at a
    time, each batch read in a short transaction of its own (on SQLite every transaction
    takes the write lock: a long walk must not hold it). Entries are never changed, so the
    batches together are the log as it was."""
    while True:
        async with sessions() as session:
            rows = await audit_repo.batch(session, after_seq=after_seq, limit=size, upto_seq=upto_seq)
        if not rows:
            return
        yield rows
        after_seq = rows[-1].seq


async def head(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, str]:
    """The newest entry's ``(seq, hash)``; ``(0, GENESIS)`` while the log is empty."""
    async with sessions() as session:
        return await audit_repo.head(session) or (0, GENESIS)


async def verify(
    sessions: async_sessionmaker[AsyncSession],
    *,
    expect_head: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> Verification:
    """Walk the chain in the database from the first entry up to the newest one when the
    walk starts, and stop at the first entry that does not follow (:class:`ChainCheck`).
    ``progress(n)`` is called after each batch of ``n`` entries."""
    check = ChainCheck(expect_head=expect_head)
    upto_seq, _ = await head(sessions)
    async for rows in batches(sessions, upto_seq=upto_seq):
        for row in rows:
            if not check.add(row):
                return check.result()
        if progress is not None:
            progress(len(rows))
    return check.result()


@dataclass(frozen=True, slots=True)
class ExportedEntry:
    """An entry read back from an export (a line of :func:`row_out` JSON)."""

    seq: int
    at: datetime
    actor: str
    action: str
    subject: str
    details: dict[str, Any]
    prev_hash: str
    hash: str


_EXPORT_FIELDS: dict[str, type] = {
    "seq": int,
    "at": str,
    "actor": str,
    "action": str,
    "subject": str,
    "details": dict,
    "prev_hash": str,
    "hash": str,
}
_JSON_TYPE = {int: "integer", str: "string", dict: "object"}


def parse_line(line: bytes | str) -> ExportedEntry:
    """One export line as an entry; ``ValueError`` naming what is wrong otherwise."""
    try:
        raw = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise ValueError("not JSON") from None
    if not isinstance(raw, dict):
        raise ValueError("not a JSON object")
    for name, kind in _EXPORT_FIELDS.items():
        if not isinstance(raw.get(name), kind) or isinstance(raw.get(name), bool):
            raise ValueError(f"{name} is missing or not a JSON {_JSON_TYPE[kind]}")
    try:
        at = datetime.fromisoformat(raw["at"])
    except ValueError:
        raise ValueError("at is not an ISO 8601 time") from None
    if at.tzinfo is None:
        raise ValueError("at has no UTC offset")
    return ExportedEntry(at=at, **{k: raw[k] for k in _EXPORT_FIELDS if k != "at"})


def verify_export(
    lines: Iterable[bytes], *, expect_head: str | None = None, progress: Callable[[int], None] | None = None
) -> Verification:
    """Check an export (JSON lines from the first entry on, as ``tokenforge audit export``
    writes them) with the same rules as :func:`verify`; a line that is not an entry breaks
    the chain there. ``progress(n)`` is called with each line's length in bytes."""
    check = ChainCheck(expect_head=expect_head)
    for number, line in enumerate(lines, 1):
        if progress is not None:
            progress(len(line))
        if not line.strip():
            continue
        try:
            entry = parse_line(line)
        except ValueError as exc:
            check.fail(f"line {number} is not an audit entry ({exc})")
            break
        if not check.add(entry):
            break
    return check.result()


def row_out(row: Entry) -> dict[str, Any]:
    """An entry as JSON (``audit export``, ``GET /v1/ops/audit``): ``at`` exactly as the
    hash covers it, so anyone can recompute the chain."""
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


# -- pages for operators -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Page:
    entries: list[AuditRow]
    #: pass back as ``cursor`` for the next page; None on the last page
    next_cursor: str | None


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"audit:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The ``seq`` a cursor of :func:`encode_cursor` names; ``ValidationFailed`` otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, seq = raw.partition(":")
        if prefix == "audit" and seq.isdigit() and len(seq) <= 19:
            return int(seq)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise ValidationFailed("query.cursor", "is not a cursor this API returned")


def _utc(at: datetime | None, field: str) -> datetime | None:
    try:
        return None if at is None else at.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before the first UTC moment
        raise ValidationFailed(field, "is out of range") from None


async def page(
    session: AsyncSession,
    *,
    limit: int,
    cursor: str | None = None,
    newest_first: bool = True,
    where: AuditFilter = audit_repo.EVERY_ENTRY,
) -> Page:
    """One page of entries matching ``where``, newest first (or oldest first)."""
    after = decode_cursor(cursor) if cursor else None
    where = replace(where, since=_utc(where.since, "query.since"), until=_utc(where.until, "query.until"))
    rows = await audit_repo.page(session, limit=limit + 1, newest_first=newest_first, after_seq=after, where=where)
    next_cursor = encode_cursor(rows[limit - 1].seq) if len(rows) > limit else None
    return Page(rows[:limit], next_cursor)
