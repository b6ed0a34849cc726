"""Where the embedded Solana chain keeps its state: one SQLite database.

Tables (``state_dir/solana.sqlite3``, or in memory without a state dir):

* ``meta`` — the chain's genesis seed and its last slot;
* ``accounts`` — every account a transaction wrote (LiteSVM's own programs and sysvars
  are not stored: LiteSVM brings them);
* ``txs`` — one signature record per included transaction: slot, fee, error text,
  failed instruction index, custom program error code;
* ``address_txs`` — which transactions reference which address (fee payer included,
  program ids not), in inclusion order.

A file is opened with an exclusive lock (one process owns a state dir; a second one gets
``sqlite3.OperationalError`` "database is locked", which the chain reports as
``chain_in_use``), WAL and ``synchronous=NORMAL``: every write survives a process crash.
Each included transaction is one SQLite transaction (:meth:`SolanaStore.record`), in
which observers of the chain may write their own tables. Not thread-safe: the chain
holds its lock around every call.
"""

from __future__ import annotations

import os
import pathlib
import sqlite3
from collections.abc import Callable, Iterator

from solders.account import Account
from solders.pubkey import Pubkey
from solders.signature import Signature

from tokenforge.chains.solana.transport import TxStatus

DB_FILENAME = "solana.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS accounts (address BLOB PRIMARY KEY, account BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS txs (
    signature BLOB PRIMARY KEY, slot INTEGER NOT NULL, fee_lamports INTEGER NOT NULL,
    err TEXT, instruction_index INTEGER, custom_code INTEGER);
CREATE TABLE IF NOT EXISTS address_txs (address BLOB NOT NULL, signature BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS address_txs_address ON address_txs (address);
"""
#: The ``txs`` columns :func:`status_from_row` reads, in its order.
STATUS_COLUMNS = "signature, slot, fee_lamports, err, instruction_index, custom_code"


def status_from_row(row: tuple) -> TxStatus:
    sig, slot, fee, err, index, custom = row
    return TxStatus(Signature.from_bytes(sig), slot, fee, err, index, custom)


class SolanaStore:
    """The embedded chain's database. See the module docstring."""

    def __init__(self, state_dir: pathlib.Path | None) -> None:
        if state_dir is None:
            self.db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        else:
            state_dir.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(
                state_dir / DB_FILENAME, check_same_thread=False, isolation_level=None, timeout=0.5
            )
        try:
            if state_dir is not None:
                # One process owns a state dir: the first write below takes a lock kept until close.
                self.db.execute("PRAGMA locking_mode=EXCLUSIVE")
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
            self.genesis, self.stored_slot = self._load_meta()
        except BaseException:
            self.db.close()
            raise

    def add_schema(self, schema: str) -> None:
        """Creates an observer's own tables (``CREATE TABLE IF NOT EXISTS ...``)."""
        self.db.executescript(schema)

    def _load_meta(self) -> tuple[bytes, int]:
        rows = dict(self.db.execute("SELECT key, value FROM meta").fetchall())
        genesis = rows.get("genesis")
        if genesis is None:
            genesis = os.urandom(32)
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('genesis', ?)", (genesis,))
        return bytes(genesis), int(rows.get("slot", 0))

    def accounts(self) -> Iterator[tuple[Pubkey, Account]]:
        """Every stored account (to put back into LiteSVM at open)."""
        for address, blob in self.db.execute("SELECT address, account FROM accounts"):
            yield Pubkey.from_bytes(address), Account.from_bytes(blob)

    def status(self, signature: Signature) -> TxStatus | None:
        row = self.db.execute(f"SELECT {STATUS_COLUMNS} FROM txs WHERE signature = ?", (bytes(signature),)).fetchone()
        return None if row is None else status_from_row(row)

    def statuses_for_address(self, address: Pubkey) -> list[TxStatus]:
        """Included transactions that reference ``address``, oldest first."""
        rows = self.db.execute(
            "SELECT t.signature, t.slot, t.fee_lamports, t.err, t.instruction_index, t.custom_code "
            "FROM address_txs a JOIN txs t ON t.signature = a.signature "
            "WHERE a.address = ? ORDER BY t.slot, a.rowid",
            (bytes(address),),
        ).fetchall()
        return [status_from_row(row) for row in rows]

    def record(
        self,
        status: TxStatus,
        referenced: list[Pubkey],
        written: list[tuple[Pubkey, Account | None]],
        slot: int,
        also: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        """One included transaction, in one SQLite transaction: its record, the addresses it
        references, the post-state of the accounts it wrote (``None``: deleted), the slot, and
        whatever ``also`` writes."""
        sig = bytes(status.signature)
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute(
                f"INSERT INTO txs ({STATUS_COLUMNS}) VALUES (?,?,?,?,?,?)",
                (sig, status.slot, status.fee_lamports, status.err, status.instruction_index, status.custom_code),
            )
            self.db.executemany(
                "INSERT INTO address_txs (address, signature) VALUES (?, ?)", [(bytes(key), sig) for key in referenced]
            )
            for address, account in written:
                if account is None:
                    self.db.execute("DELETE FROM accounts WHERE address = ?", (bytes(address),))
                else:
                    self.db.execute(
                        "INSERT OR REPLACE INTO accounts (address, account) VALUES (?, ?)",
                        (bytes(address), bytes(account)),
                    )
            self.save_slot(slot)
            if also is not None:
                also(self.db)

    def save_slot(self, slot: int) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('slot', ?)", (slot,))

    def close(self) -> None:
        self.db.close()
