"""The embedded Solana chain: LiteSVM in-process, with its state kept in SQLite.

LiteSVM (``solders.litesvm``) executes real transactions against the real SPL Token,
Token-2022 and associated-token-account programs, but keeps everything in memory and has
no blocks. :class:`EmbeddedSolanaChain` adds what TokenForge relies on:

* **Persistence.** After every included transaction (and every airdrop) the post-state of
  the transaction's writable accounts, the signature record (slot, fee, error) and the
  current slot are written to ``state_dir/solana.sqlite3`` in one SQLite transaction (WAL,
  ``synchronous=NORMAL``: survives a process crash). On open, every stored account is put
  back with ``set_account``; programs and sysvars come from LiteSVM itself. Without a
  ``state_dir`` the same tables live in an in-memory database. The database is opened
  with an exclusive lock: one process owns a state dir (a second one gets
  ``TransientError(code="chain_in_use")``).
* **Slots and blockhashes with Solana's semantics.** The slot advances with wall time
  (one slot per 400 ms, never backwards, continued across restarts); block height equals
  the slot. Each slot has its own blockhash, valid for 150 slots. LiteSVM's own check only
  accepts the single latest blockhash, which would fail every in-flight transaction each
  time it changed, so it is switched off and the 150-slot window is enforced here.
  :meth:`expire_blockhash` jumps past the window (for tests of the re-sign path).
* **Signature records.** Duplicates are recognised from the stored records (also after a
  restart), and :meth:`signatures_for_address` answers from an index of written accounts.

All methods are synchronous and thread-safe (one lock); :class:`EmbeddedTransport` runs
them on one dedicated thread so the asyncio event loop never waits on LiteSVM or SQLite.
Errors are TokenForge errors only.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import pathlib
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from solders.account import Account
from solders.hash import Hash
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import Transaction
from solders.transaction_metadata import FailedTransactionMetadata
from solders.transaction_status import (
    TransactionErrorFieldless,
    TransactionErrorInstructionError,
    TransactionErrorInsufficientFundsForRent,
)

from tokenforge.chains.solana.transport import AccountInfo, SendOutcome, TxStatus
from tokenforge.errors import PermanentError, TokenForgeError, TransientError

log = logging.getLogger(__name__)
T = TypeVar("T")

SLOT_DURATION_S = 0.4
BLOCKHASH_VALID_SLOTS = 150
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

# Errors of executed transactions: they are included and pay their fee.
_EXECUTED_ERRORS = (TransactionErrorInstructionError, TransactionErrorInsufficientFundsForRent)
# Rejections before execution: the transaction is not included and pays no fee.
_INSUFFICIENT_FUNDS = (TransactionErrorFieldless.AccountNotFound, TransactionErrorFieldless.InsufficientFundsForFee)


def _err_fields(err: object) -> tuple[str, int | None, int | None]:
    if isinstance(err, TransactionErrorInstructionError):
        inner = err.err
        return f"instruction {err.index} failed: {inner}", err.index, getattr(inner, "code", None)
    return str(err), None, None


class EmbeddedSolanaChain:
    """A LiteSVM chain whose accounts and transaction records survive a restart."""

    def __init__(self, state_dir: pathlib.Path | None) -> None:
        self.state_dir = state_dir
        self._db: sqlite3.Connection | None = None
        self._lock = threading.RLock()
        self._closed = False
        try:
            # LiteSVM keeps no history of its own: records live in the database below.
            self._svm = LiteSVM().with_blockhash_check(False).with_transaction_history(0)
            if state_dir is None:
                self._db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
            else:
                state_dir.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(
                    state_dir / DB_FILENAME, check_same_thread=False, isolation_level=None, timeout=0.5
                )
                # One process owns a state dir: the first write below takes a lock kept until close.
                self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._genesis, stored_slot = self._load_meta()
            restored = self._restore_accounts()
        except BaseException as exc:
            if self._db is not None:
                self._db.close()
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise TransientError(
                    f"the Solana state in {state_dir} is in use by another process", code="chain_in_use"
                ) from exc
            if isinstance(exc, TokenForgeError) or not isinstance(exc, Exception):
                raise
            raise TransientError(f"cannot open the embedded Solana chain: {exc}", code="chain_unavailable") from exc
        # The slot clock continues after the last stored slot.
        self._slot = stored_slot
        self._slot_origin = stored_slot + 1 if (restored or stored_slot) else 0
        self._t0 = time.monotonic()
        self._blockhashes: dict[Hash, int] = {}
        now = self._current_slot()
        for slot in range(max(0, now - BLOCKHASH_VALID_SLOTS), now + 1):  # still valid after a restart
            self._blockhashes[self._blockhash_for(slot)] = slot
        log.info("embedded solana chain opened", extra={"state_dir": str(state_dir), "accounts": restored})

    # ---------------------------------------------------------------- state loading
    def _load_meta(self) -> tuple[bytes, int]:
        rows = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        genesis = rows.get("genesis")
        if genesis is None:
            genesis = os.urandom(32)
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('genesis', ?)", (genesis,))
        return bytes(genesis), int(rows.get("slot", 0))

    def _restore_accounts(self) -> int:
        count = 0
        for address, blob in self._db.execute("SELECT address, account FROM accounts"):
            self._svm.set_account(Pubkey.from_bytes(address), Account.from_bytes(blob))
            count += 1
        return count

    # ---------------------------------------------------------------- clock
    def _current_slot(self) -> int:
        slot = self._slot_origin + int((time.monotonic() - self._t0) / SLOT_DURATION_S)
        if slot > self._slot:
            self._slot = slot
            self._svm.warp_to_slot(slot)
        return self._slot

    def _blockhash_for(self, slot: int) -> Hash:
        return Hash(hashlib.sha256(self._genesis + slot.to_bytes(8, "little")).digest())

    def _blockhash_valid(self, blockhash: Hash, slot: int) -> bool:
        issued = self._blockhashes.get(blockhash)
        return issued is not None and issued + BLOCKHASH_VALID_SLOTS >= slot

    # ---------------------------------------------------------------- public API (sync)
    def slot(self) -> int:
        """The current slot (monotonic, also across restarts)."""
        with self._guard():
            return self._current_slot()

    def block_height(self) -> int:
        """Block height; the embedded chain skips no slots, so it equals the slot."""
        return self.slot()

    def latest_blockhash(self) -> tuple[Hash, int]:
        """The current slot's blockhash and its last valid block height (slot + 150)."""
        with self._guard():
            slot = self._current_slot()
            blockhash = self._blockhash_for(slot)
            if blockhash not in self._blockhashes:
                self._blockhashes[blockhash] = slot
                self._save_slot()  # a blockhash handed out stays valid across a restart
                if len(self._blockhashes) > 4 * BLOCKHASH_VALID_SLOTS:
                    self._blockhashes = {
                        h: s for h, s in self._blockhashes.items() if s + BLOCKHASH_VALID_SLOTS >= slot
                    }
            return blockhash, slot + BLOCKHASH_VALID_SLOTS

    def is_blockhash_valid(self, blockhash: Hash) -> bool:
        with self._guard():
            return self._blockhash_valid(blockhash, self._current_slot())

    def expire_blockhash(self) -> None:
        """Advance the chain past the validity window of every blockhash handed out so far."""
        with self._guard():
            self._slot_origin += BLOCKHASH_VALID_SLOTS + 1
            self._current_slot()
            self._save_slot()

    def minimum_balance_for_rent_exemption(self, data_len: int) -> int:
        with self._guard():
            return self._svm.minimum_balance_for_rent_exemption(data_len)

    def get_account(self, address: Pubkey) -> AccountInfo | None:
        with self._guard():
            account = self._svm.get_account(address)
        if account is None or account.lamports == 0:
            return None
        return AccountInfo(lamports=account.lamports, owner=account.owner, data=bytes(account.data))

    def get_balance(self, address: Pubkey) -> int:
        with self._guard():
            return self._svm.get_balance(address) or 0

    def airdrop(self, address: Pubkey, lamports: int) -> None:
        """Fund ``address`` from LiteSVM's faucet (persisted like any transaction)."""
        with self._guard():
            self._svm.expire_blockhash()  # a fresh faucet transaction each time
            result = self._svm.airdrop(address, lamports)
            if isinstance(result, FailedTransactionMetadata):
                raise PermanentError(f"airdrop failed: {result.err()}", code="airdrop_failed")
            with self._db:
                self._db.execute("BEGIN")
                self._store_accounts([address])

    def send_raw_transaction(self, raw_tx: bytes) -> SendOutcome:
        """Execute a serialized transaction now (it is final at once when included).

        Returns ``ALREADY_PROCESSED`` for a known signature and ``BLOCKHASH_NOT_FOUND`` for
        an expired or unknown blockhash (nothing happens then). Raises ``PermanentError``
        for rejections before execution (bad bytes or signatures, payer without funds).
        A transaction that fails during execution is included: it pays its fee and its
        record carries the error.
        """
        try:
            tx = Transaction.from_bytes(raw_tx)
        except Exception as exc:
            raise PermanentError(f"not a serialized transaction: {exc}", code="invalid_transaction") from exc
        signature = tx.signatures[0]
        with self._guard():
            if self._status(signature) is not None:
                return SendOutcome.ALREADY_PROCESSED
            slot = self._current_slot()
            if not self._blockhash_valid(tx.message.recent_blockhash, slot):
                return SendOutcome.BLOCKHASH_NOT_FOUND
            result = self._svm.send_transaction(tx)
            if isinstance(result, FailedTransactionMetadata):
                err = result.err()
                fee = result.meta().fee()
                if err == TransactionErrorFieldless.AlreadyProcessed:
                    return SendOutcome.ALREADY_PROCESSED
                if not isinstance(err, _EXECUTED_ERRORS):  # rejected before execution: no fee
                    if any(err == e for e in _INSUFFICIENT_FUNDS):
                        raise PermanentError(f"fee payer cannot pay: {err}", code="insufficient_funds")
                    raise PermanentError(f"transaction rejected: {err}", code="tx_rejected")
                text, index, custom = _err_fields(err)
            else:
                fee, text, index, custom = result.fee(), None, None, None
            self._record(tx, signature, slot, fee, text, index, custom)
            return SendOutcome.ACCEPTED

    def get_transaction_status(self, signature: Signature) -> TxStatus | None:
        with self._guard():
            return self._status(signature)

    def signatures_for_address(self, address: Pubkey) -> list[TxStatus]:
        """Included transactions that wrote ``address`` (fee payer excluded), oldest first."""
        with self._guard():
            rows = self._db.execute(
                "SELECT t.signature, t.slot, t.fee_lamports, t.err, t.instruction_index, t.custom_code "
                "FROM address_txs a JOIN txs t ON t.signature = a.signature "
                "WHERE a.address = ? ORDER BY t.slot, a.rowid",
                (bytes(address),),
            ).fetchall()
        return [self._row_to_status(row) for row in rows]

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                try:
                    self._current_slot()
                    self._save_slot()
                finally:
                    self._db.close()

    # ---------------------------------------------------------------- internals
    def _guard(self) -> _Guard:
        return _Guard(self)

    def _status(self, signature: Signature) -> TxStatus | None:
        row = self._db.execute(
            "SELECT signature, slot, fee_lamports, err, instruction_index, custom_code FROM txs WHERE signature = ?",
            (bytes(signature),),
        ).fetchone()
        return None if row is None else self._row_to_status(row)

    @staticmethod
    def _row_to_status(row: tuple) -> TxStatus:
        sig, slot, fee, err, index, custom = row
        return TxStatus(Signature.from_bytes(sig), slot, fee, err, index, custom)

    def _record(
        self, tx: Transaction, signature: Signature, slot: int, fee: int, err: str | None, index: int | None, custom: int | None
    ) -> None:
        message = tx.message
        header = message.header
        keys = message.account_keys
        n_signed, n_ro_signed, n_ro_unsigned = (
            header.num_required_signatures,
            header.num_readonly_signed_accounts,
            header.num_readonly_unsigned_accounts,
        )
        writable = [
            key
            for i, key in enumerate(keys)
            if (i < n_signed - n_ro_signed or n_signed <= i < len(keys) - n_ro_unsigned)
            and not message.is_key_called_as_program(i)
        ]
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "INSERT INTO txs (signature, slot, fee_lamports, err, instruction_index, custom_code) VALUES (?,?,?,?,?,?)",
                (bytes(signature), slot, fee, err, index, custom),
            )
            self._db.executemany(
                "INSERT INTO address_txs (address, signature) VALUES (?, ?)",
                [(bytes(key), bytes(signature)) for key in writable[1:]],  # [0] is the fee payer
            )
            self._store_accounts(writable)

    def _store_accounts(self, addresses: list[Pubkey]) -> None:
        for address in addresses:
            account = self._svm.get_account(address)
            if account is None or account.lamports == 0:
                self._db.execute("DELETE FROM accounts WHERE address = ?", (bytes(address),))
            else:
                self._db.execute(
                    "INSERT OR REPLACE INTO accounts (address, account) VALUES (?, ?)", (bytes(address), bytes(account))
                )
        self._save_slot()

    def _save_slot(self) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('slot', ?)", (self._slot,))


class _Guard:
    """Holds the chain lock; maps unexpected failures to TokenForge errors."""

    __slots__ = ("_chain",)

    def __init__(self, chain: EmbeddedSolanaChain) -> None:
        self._chain = chain

    def __enter__(self) -> None:
        self._chain._lock.acquire()
        if self._chain._closed:
            self._chain._lock.release()
            raise TransientError("the embedded Solana chain is closed", code="chain_closed")

    def __exit__(self, exc_type, exc, tb) -> None:
        self._chain._lock.release()
        if exc is not None and not isinstance(exc, TokenForgeError) and _is_vendor_failure(exc):
            raise TransientError(f"embedded Solana chain failure: {exc}", code="chain_unavailable") from exc


def _is_vendor_failure(exc: BaseException) -> bool:
    # A Rust panic inside LiteSVM surfaces as pyo3's PanicException, a BaseException.
    return isinstance(exc, Exception) or type(exc).__name__ == "PanicException"


class EmbeddedTransport:
    """:class:`~tokenforge.chains.solana.transport.SolanaTransport` over an embedded chain.

    Every call runs on one dedicated thread, so LiteSVM and SQLite never block the loop.
    """

    def __init__(self, chain: EmbeddedSolanaChain, *, owns_chain: bool = True) -> None:
        self.chain = chain
        self._owns_chain = owns_chain
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenforge-solana")

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        except RuntimeError as exc:  # executor shut down
            raise TransientError(f"embedded Solana transport unavailable: {exc}", code="chain_closed") from exc

    async def latest_blockhash(self) -> tuple[Hash, int]:
        return await self._run(self.chain.latest_blockhash)

    async def send_raw_transaction(self, raw_tx: bytes) -> SendOutcome:
        return await self._run(self.chain.send_raw_transaction, raw_tx)

    async def get_transaction_status(self, signature: Signature) -> TxStatus | None:
        return await self._run(self.chain.get_transaction_status, signature)

    async def block_height(self) -> int:
        return await self._run(self.chain.block_height)

    async def get_account(self, address: Pubkey) -> AccountInfo | None:
        return await self._run(self.chain.get_account, address)

    async def signatures_for_address(self, address: Pubkey) -> list[TxStatus]:
        return await self._run(self.chain.signatures_for_address, address)

    async def minimum_balance_for_rent_exemption(self, data_len: int) -> int:
        return await self._run(self.chain.minimum_balance_for_rent_exemption, data_len)

    async def get_balance(self, address: Pubkey) -> int:
        return await self._run(self.chain.get_balance, address)

    async def airdrop(self, address: Pubkey, lamports: int) -> None:
        await self._run(self.chain.airdrop, address, lamports)

    async def close(self) -> None:
        if self._owns_chain:
            try:
                await self._run(self.chain.close)
            except TransientError:
                pass
        self._executor.shutdown(wait=True)
