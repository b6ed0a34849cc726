"""Database faults become :class:`~tokenforge.errors.TransientError` ``DB_UNAVAILABLE``.

The store boundary is the session: every ``async with sessions() as s:`` block (the API's
request session, the group committer, the relay, the sweeper, nonce cursors) leaves with a
TokenForge error instead of a driver exception when the database cannot be reached, is
restarting, refuses connections or stays locked. The job machinery then waits the outage
out without using attempts and the API answers ``503`` with ``Retry-After``.

Only outages are translated. A constraint violation, a syntax error or a missing table is
a bug or a logical conflict and keeps its own exception: retrying would hide it.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncSession

from tokenforge.errors import ErrorCode, TokenForgeError, TransientError

#: SQLite's words for "the file cannot be used right now" (sqlite3.OperationalError also
#: covers SQL mistakes, which are not outages).
_SQLITE_OUTAGE_WORDS = (
    "database is locked",
    "database table is locked",
    "disk i/o error",
    "unable to open database",
    "database or disk is full",
    "readonly database",
)
#: SQLSTATEs of PostgreSQL that mean the server, not the statement, is the problem: classes
#: connection exception (08), insufficient resources (53), system error (58); shutdown,
#: crash and start-up (57P01-57P03); a read-only transaction (25006: the primary became a
#: standby in a failover). Any other SQLSTATE is an answer about the statement (a statement
#: timeout 57014 included) and is never an outage.
_PG_OUTAGE_CLASSES = ("08", "53", "58")
_PG_OUTAGE_STATES = frozenset({"57P01", "57P02", "57P03", "25006"})
#: Seconds a client should wait before trying again (the API's Retry-After).
RETRY_AFTER_S = 2.0


_DATABASE_MODULES = ("sqlalchemy", "asyncpg", "aiosqlite", "sqlite3")


def _raised_by_database(exc: BaseException) -> bool:
    """True when the database machinery is on ``exc``'s traceback (asyncpg does not wrap a
    refused connection; a broker's or a chain's ConnectionError must not count)."""
    tb = exc.__traceback__
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        if module.startswith(_DATABASE_MODULES):
            return True
        tb = tb.tb_next
    return False


def _is_outage(exc: BaseException) -> bool:
    if isinstance(exc, (sa_exc.DisconnectionError, sa_exc.TimeoutError, sa_exc.InterfaceError)):
        return True
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, (OSError, asyncio.TimeoutError)) and _raised_by_database(exc):
        return True  # refused / reset connections, connect timeouts, name resolution
    module = type(exc).__module__ or ""
    if module.startswith("asyncpg") and type(exc).__name__ in (
        "ConnectionDoesNotExistError",
        "InterfaceError",
        "InternalClientError",
        "CannotConnectNowError",
        "ConnectionFailureError",
        "TooManyConnectionsError",
        "AdminShutdownError",
        "CrashShutdownError",
    ):
        return True
    if type(exc).__name__ == "OperationalError":  # SQLAlchemy's, sqlite3's or a driver's
        text = str(exc).lower()
        if "sqlite" in text or "sqlite" in module:
            return any(word in text for word in _SQLITE_OUTAGE_WORDS)
        return True  # PostgreSQL reports SQL mistakes as ProgrammingError, not this
    return False


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it wraps (``orig``, ``__cause__``), outermost first."""
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not f for f in found) and not isinstance(current, TokenForgeError):
        found.append(current)
        current = getattr(current, "orig", None) or current.__cause__
    return found


def _sqlstate(exc: BaseException) -> str | None:
    for link in _chain(exc):
        state = getattr(link, "sqlstate", None) or getattr(link, "pgcode", None)
        if isinstance(state, str) and len(state) == 5:
            return state
    return None


def _outage(exc: BaseException) -> TransientError:
    return TransientError(
        f"the database is unavailable ({type(exc).__name__})",
        code=ErrorCode.DB_UNAVAILABLE,
        retry_after_s=RETRY_AFTER_S,
    )


def db_fault(exc: BaseException) -> TransientError | None:
    """The TokenForge error for a database outage, or None when ``exc`` is something else.

    Looks through ``__cause__``/``orig`` so a driver error wrapped by SQLAlchemy is found."""
    sqlstate = _sqlstate(exc)
    if sqlstate is not None:  # the server said what happened: that decides
        if sqlstate[:2] in _PG_OUTAGE_CLASSES or sqlstate in _PG_OUTAGE_STATES:
            return _outage(exc)
        return None
    for link in _chain(exc):
        if _is_outage(link):
            return _outage(link)
    return None


class TranslatingSession(AsyncSession):
    """An ``AsyncSession`` whose ``async with`` block raises ``DB_UNAVAILABLE`` for outages."""

    async def __aexit__(
        self, type_: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        try:
            await super().__aexit__(type_, value, traceback)
        except Exception as exc:  # closing failed too (e.g. the rollback on a dead connection)
            fault = (db_fault(value) if value is not None else None) or db_fault(exc)
            if fault is None:
                raise
            raise fault from exc
        if value is not None:
            fault = db_fault(value)
            if fault is not None:
                raise fault from value
