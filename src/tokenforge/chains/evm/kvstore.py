"""A SQLite file as py-evm's key-value database, so an embedded chain survives restarts.

py-evm keeps everything (headers, blocks, receipts, trie nodes, code) in a flat
``bytes -> bytes`` store. :class:`SqliteKV` is that store over one table. Writes are grouped
with :meth:`SqliteKV.transaction` (one SQLite transaction per mined block), so a crash in the
middle of a block leaves the previous block's state intact.

Reads go through a write-through in-memory cache: most keys are trie nodes addressed by
their hash, and every write passes through this object (one process owns a state file),
so a cached value is never stale; a rolled-back transaction drops the cache.

Not thread-safe on its own: the embedded chain serializes every access with its lock.
"""

from __future__ import annotations

import fcntl
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from eth.db.backends.base import BaseDB

from tokenforge.errors import ErrorCode, TransientError


class SqliteKV(BaseDB):
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # One process owns a state file: a second writer would fork the chain's history.
        self._lock_file = open(path.with_suffix(".lock"), "a+b")  # noqa: SIM115 - held until close()
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise TransientError(
                f"the EVM chain state in {path.parent} is in use by another process", code=ErrorCode.CHAIN_IN_USE
            ) from None
        # isolation_level=None: no implicit transactions; we BEGIN/COMMIT explicitly.
        self._conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID")
        self._depth = 0
        self._cache: dict[bytes, bytes] = {}

    #: Entries kept before the cache starts over (a few hundred bytes each).
    CACHE_MAX_ENTRIES = 300_000

    def _remember(self, key: bytes, value: bytes) -> None:
        if len(self._cache) >= self.CACHE_MAX_ENTRIES:
            self._cache.clear()
        self._cache[key] = value

    def __getitem__(self, key: bytes) -> bytes:
        value = self._cache.get(key)
        if value is not None:
            return value
        row = self._conn.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
        if row is None:
            raise KeyError(key)
        self._remember(key, row[0])
        return row[0]

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._conn.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", (key, value))
        self._remember(key, value)

    def __delitem__(self, key: bytes) -> None:
        self._cache.pop(key, None)
        cur = self._conn.execute("DELETE FROM kv WHERE k = ?", (key,))
        if cur.rowcount == 0:
            raise KeyError(key)

    def _exists(self, key: bytes) -> bool:
        if key in self._cache:
            return True
        return self._conn.execute("SELECT 1 FROM kv WHERE k = ?", (key,)).fetchone() is not None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together or not at all. Re-entrant (outermost wins)."""
        if self._depth == 0:
            self._conn.execute("BEGIN")
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            if self._depth == 0:
                self._conn.execute("ROLLBACK")
                self._cache.clear()  # it may hold values written by the rolled-back transaction
            raise
        self._depth -= 1
        if self._depth == 0:
            self._conn.execute("COMMIT")

    def close(self) -> None:
        self._conn.close()
        if not self._lock_file.closed:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
