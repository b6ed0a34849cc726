"""Nonces per EVM signer, allocated atomically in the database for every worker process.

Several worker processes may sign with the same deployer key. Each allocation is one
``UPDATE nonce_cursors SET next_nonce = next_nonce + 1 … RETURNING`` statement, which the
database serialises per row (PostgreSQL row lock; SQLite's single writer), so no nonce is
ever handed out twice. The cursor starts at the node's ``pending`` transaction count and
only moves forward on a resync; moving it back (``rewind``) is a compare-and-set that
fails if anybody allocated meanwhile.

A nonce whose transaction was never recorded (the worker could not persist it) is given
back only when it is the latest one handed out; otherwise it stays a gap, which
:class:`tokenforge.chains.evm.keeper.NonceKeeper` fills with a no-op transaction.

Implements :class:`tokenforge.chains.evm.nonces.NonceSource`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tokenforge.domain.jobs import JobStatus
from tokenforge.store.db import dialect_name, rows_matched, utcnow
from tokenforge.store.models import JobRow, NonceCursorRow

_LIVE = [JobStatus.SUBMITTING.value, JobStatus.SUBMITTED.value]


class SqlNonceSource:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        chain: str,
        fetch_pending_count: Callable[[str], Awaitable[int]],
    ) -> None:
        self._sessions = sessions
        self._chain = chain
        self._fetch = fetch_pending_count
        self._known: set[str] = set()  # signers whose cursor row exists and was synced once

    def _row(self, signer: str) -> ColumnElement[bool]:
        return (NonceCursorRow.chain == self._chain) & (NonceCursorRow.signer == signer)

    async def _ensure(self, signer: str) -> None:
        if signer in self._known:
            return
        pending = await self._fetch(signer)
        async with self._sessions() as s, s.begin():
            insert = postgresql.insert if dialect_name(s) == "postgresql" else sqlite.insert
            await s.execute(
                insert(NonceCursorRow)
                .values(chain=self._chain, signer=signer, next_nonce=pending, updated_at=utcnow())
                .on_conflict_do_nothing()
            )
            # an existing cursor behind the node (key used elsewhere): move it forward
            await s.execute(
                update(NonceCursorRow)
                .where(self._row(signer), NonceCursorRow.next_nonce < pending)
                .values(next_nonce=pending, updated_at=utcnow())
            )
        self._known.add(signer)

    async def allocate(self, signer: str) -> int:
        await self._ensure(signer)
        async with self._sessions() as s, s.begin():
            result = await s.execute(
                update(NonceCursorRow)
                .where(self._row(signer))
                .values(next_nonce=NonceCursorRow.next_nonce + 1, updated_at=utcnow())
                .returning(NonceCursorRow.next_nonce)
            )
            return int(result.scalar_one()) - 1

    async def release(self, signer: str, nonce: int) -> None:
        async with self._sessions() as s, s.begin():
            await s.execute(
                update(NonceCursorRow)
                .where(self._row(signer), NonceCursorRow.next_nonce == nonce + 1)
                .values(next_nonce=nonce, updated_at=utcnow())
            )

    async def resync(self, signer: str) -> None:
        self._known.discard(signer)
        await self._ensure(signer)

    async def cursor(self, signer: str) -> int | None:
        async with self._sessions() as s:
            return (await s.execute(select(NonceCursorRow.next_nonce).where(self._row(signer)))).scalar_one_or_none()

    async def advance(self, signer: str, to: int) -> bool:
        async with self._sessions() as s, s.begin():
            result = await s.execute(
                update(NonceCursorRow)
                .where(self._row(signer), NonceCursorRow.next_nonce < to)
                .values(next_nonce=to, updated_at=utcnow())
            )
            return rows_matched(result) == 1

    async def rewind(self, signer: str, expected: int, to: int) -> bool:
        async with self._sessions() as s, s.begin():
            result = await s.execute(
                update(NonceCursorRow)
                .where(self._row(signer), NonceCursorRow.next_nonce == expected)
                .values(next_nonce=to, updated_at=utcnow())
            )
            return rows_matched(result) == 1

    async def held(self, signer: str, from_nonce: int) -> set[int]:
        """Nonces at or above ``from_nonce`` that recorded, unfinished launches hold."""
        async with self._sessions() as s:
            rows = await s.execute(
                select(JobRow.nonce).where(
                    JobRow.chain == self._chain,
                    JobRow.signer == signer,
                    JobRow.status.in_(_LIVE),
                    JobRow.nonce >= from_nonce,
                )
            )
            return {n for n in rows.scalars() if n is not None}  # the WHERE excludes NULL anyway
