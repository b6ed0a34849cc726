"""The embedded Solana chain: LiteSVM in-process, with its state kept in SQLite.

LiteSVM (``solders.litesvm``) executes real transactions against the real SPL Token,
Token-2022 and associated-token-account programs, but keeps everything in memory and has
no blocks. :class:`EmbeddedSolanaChain` adds what TokenForge relies on:

* **Persistence.** After every included transaction (and every airdrop) the post-state of
  the transaction's writable accounts, the signature record (slot, fee, error), the
  transaction's details (its bytes, block time, balances before and after, logs, compute
  units, inner instructions) and the current slot are written to
  ``state_dir/solana.sqlite3`` in one SQLite transaction (WAL,
  ``synchronous=NORMAL``: survives a process crash). On open, every stored account is put
  back with ``set_account``; programs and sysvars come from LiteSVM itself. Without a
  ``state_dir`` the same tables live in an in-memory database. The database is opened
  with an exclusive lock: one process owns a state dir (a second one gets
  ``TransientError(code=ErrorCode.CHAIN_IN_USE)``).
* **Slots and blockhashes with Solana's semantics.** The slot advances with wall time
  (one slot per ``slot_duration_s``, 400 ms by default as on Solana, never backwards,
  continued across restarts; slot 0 is genesis, a new chain starts at 1); block height
  equals the slot. Each slot has its own blockhash, valid for 150 slots. LiteSVM's own check only
  accepts the single latest blockhash, which would fail every in-flight transaction each
  time it changed, so it is switched off and the 150-slot window is enforced here.
  :meth:`expire_blockhash` jumps past the window (for tests of the re-sign path).
* **Signature records.** Duplicates are recognised from the stored records (also after a
  restart), and :meth:`signatures_for_address` answers from an index of the accounts each
  transaction references (fee payer included, program ids not). Errors are also kept in
  the JSON form Solana's RPC uses (``{"InstructionError": [0, {"Custom": 1}]}``).
* **Preflight.** ``send_raw_transaction(..., preflight=True)`` simulates first, as an RPC
  node does before forwarding, and raises :class:`TransactionRejected` without including
  the transaction when it would fail.
* **Airdrops** are real transfers from a faucet account of this chain (derived from its
  genesis), recorded like any transaction, so they have a signature.

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
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from solders.account import Account
from solders.hash import Hash
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from solders.system_program import TransferParams, transfer
from solders.transaction import Transaction
from solders.transaction_metadata import FailedTransactionMetadata
from solders.transaction_status import (
    TransactionErrorFieldless,
    TransactionErrorInstructionError,
    TransactionErrorInsufficientFundsForRent,
    TransactionStatus,
)

from tokenforge.chains.solana.transport import AccountInfo, SendOutcome, TxStatus
from tokenforge.errors import ErrorCode, PermanentError, TokenForgeError, TransientError

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
CREATE TABLE IF NOT EXISTS tx_details (
    signature BLOB PRIMARY KEY, block_time INTEGER NOT NULL, err_json TEXT, raw_tx BLOB NOT NULL, meta BLOB NOT NULL);
"""
_U64_MAX = 2**64 - 1
# The faucet is topped up (out of thin air, as a development chain may) to this much above
# an airdrop whenever it holds less than the airdrop plus a margin.
_FAUCET_RESERVE_LAMPORTS = 10**18
_FAUCET_MARGIN_LAMPORTS = 10**12

# Errors of executed transactions: they are included and pay their fee.
_EXECUTED_ERRORS = (TransactionErrorInstructionError, TransactionErrorInsufficientFundsForRent)
# Rejections before execution: the transaction is not included and pays no fee.
_INSUFFICIENT_FUNDS = (TransactionErrorFieldless.AccountNotFound, TransactionErrorFieldless.InsufficientFundsForFee)


def error_json(err: object) -> Any:
    """A solders ``TransactionError`` in the JSON form Solana's RPC uses."""
    return orjson.loads(TransactionStatus(0, None, err, None, None).to_json())["status"]["Err"]


class TransactionRejected(PermanentError):
    """The chain refused a transaction before including it; nothing was charged.

    ``err_json`` is the error in Solana's RPC JSON form. ``simulated`` is True when the
    refusal came from a preflight simulation, whose ``logs`` and ``units_consumed`` are kept."""

    def __init__(
        self, message: str, *, code: str, err_json: Any, simulated: bool = False,
        logs: list[str] | None = None, units_consumed: int = 0,
    ) -> None:
        super().__init__(message, code=code)
        self.err_json = err_json
        self.simulated = simulated
        self.logs = logs or []
        self.units_consumed = units_consumed


@dataclass(frozen=True, slots=True)
class TxRecord:
    """An included transaction's status, its error in RPC JSON form and its block time."""

    status: TxStatus
    err_json: Any = None  # None = success
    block_time_s: int | None = None  # None for records kept before block times were


@dataclass(frozen=True, slots=True)
class CompiledInner:
    """One instruction a program invoked (indexes point into the message's account keys)."""

    program_id_index: int
    accounts: list[int]
    data: bytes
    stack_height: int | None


@dataclass(frozen=True, slots=True)
class InnerInstructions:
    """The instructions invoked while top-level instruction ``index`` ran."""

    index: int
    instructions: list[CompiledInner]


@dataclass(frozen=True, slots=True)
class TxDetails:
    """What ``getTransaction`` reports: the transaction's bytes and its execution metadata
    (balances per account key in message order, before and after)."""

    record: TxRecord
    raw_tx: bytes
    pre_balances: list[int] = field(default_factory=list)
    post_balances: list[int] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    compute_units_consumed: int = 0
    inner_instructions: list[InnerInstructions] = field(default_factory=list)


def _err_fields(err: object) -> tuple[str, int | None, int | None]:
    if isinstance(err, TransactionErrorInstructionError):
        inner = err.err
        return f"instruction {err.index} failed: {inner}", err.index, getattr(inner, "code", None)
    return str(err), None, None


class EmbeddedSolanaChain:
    """A LiteSVM chain whose accounts and transaction records survive a restart."""

    def __init__(self, state_dir: pathlib.Path | None, *, slot_duration_s: float | None = None) -> None:
        if slot_duration_s is not None and slot_duration_s <= 0:
            raise PermanentError("the slot duration must be positive", code=ErrorCode.INVALID_PARAMETER)
        self.state_dir = state_dir
        self._slot_duration_s = slot_duration_s  # None: the module's SLOT_DURATION_S
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
            self._faucet = Keypair.from_seed(hashlib.sha256(self._genesis + b"tokenforge faucet").digest())
            restored = self._restore_accounts()
        except BaseException as exc:
            if self._db is not None:
                self._db.close()
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise TransientError(
                    f"the Solana state in {state_dir} is in use by another process", code=ErrorCode.CHAIN_IN_USE
                ) from exc
            if isinstance(exc, TokenForgeError) or not isinstance(exc, Exception):
                raise
            raise TransientError(f"cannot open the embedded Solana chain: {exc}", code=ErrorCode.CHAIN_UNAVAILABLE) from exc
        # The slot clock continues after the last stored slot. Slot 0 is the genesis block:
        # a new chain starts at slot 1, where a real cluster's first transactions land.
        self._slot = stored_slot
        self._slot_origin = stored_slot + 1
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
    @property
    def slot_duration_s(self) -> float:
        return SLOT_DURATION_S if self._slot_duration_s is None else self._slot_duration_s

    def _current_slot(self) -> int:
        slot = self._slot_origin + int((time.monotonic() - self._t0) / self.slot_duration_s)
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
    def genesis_hash(self) -> Hash:
        """This chain's genesis hash (random at creation, kept in the state)."""
        return Hash(self._genesis)

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

    def get_raw_account(self, address: Pubkey) -> Account | None:
        """The account with all its fields (executable, rent epoch), or None when it does not exist."""
        with self._guard():
            account = self._svm.get_account(address)
        return None if account is None or account.lamports == 0 else account

    def get_balance(self, address: Pubkey) -> int:
        with self._guard():
            return self._svm.get_balance(address) or 0

    def airdrop(self, address: Pubkey, lamports: int) -> Signature:
        """Transfer ``lamports`` to ``address`` from the chain's faucet; returns the signature.

        The transfer is an ordinary recorded transaction. Identical airdrops within one
        slot are told apart by signing them over older (still valid) blockhashes."""
        if not 0 < lamports <= _U64_MAX - _FAUCET_RESERVE_LAMPORTS:
            raise PermanentError(f"airdrop amount out of range: {lamports}", code=ErrorCode.INVALID_PARAMETER)
        with self._guard():
            faucet = self._faucet.pubkey()
            if (self._svm.get_balance(faucet) or 0) < lamports + _FAUCET_MARGIN_LAMPORTS:
                self._svm.set_account(faucet, Account(lamports + _FAUCET_RESERVE_LAMPORTS, b"", SYSTEM_PROGRAM_ID))
            slot = self._current_slot()
            message = Message([transfer(TransferParams(from_pubkey=faucet, to_pubkey=address, lamports=lamports))], faucet)
            for age in range(BLOCKHASH_VALID_SLOTS):
                tx = Transaction([self._faucet], message, self._blockhash_for((slot - age) % 2**64))
                if self._status(tx.signatures[0]) is None:
                    break
            else:
                raise TransientError("too many identical airdrops in this slot", code=ErrorCode.AIRDROP_BUSY)
            try:
                self._execute(tx, bytes(tx), slot, preflight=False)
            except TransactionRejected as exc:
                raise PermanentError(f"airdrop failed: {exc.message}", code=ErrorCode.AIRDROP_FAILED) from None
            return tx.signatures[0]

    def send_raw_transaction(self, raw_tx: bytes, *, preflight: bool = False) -> SendOutcome:
        """Execute a serialized transaction now (it is final at once when included).

        Returns ``ALREADY_PROCESSED`` for a known signature and ``BLOCKHASH_NOT_FOUND`` for
        an expired or unknown blockhash (nothing happens then). Raises
        :class:`TransactionRejected` (a ``PermanentError``) for rejections before execution
        (bad signatures, payer without funds) and, with ``preflight``, for a transaction
        whose simulation fails. Without ``preflight`` a transaction that fails during
        execution is included: it pays its fee and its record carries the error.
        """
        try:
            tx = Transaction.from_bytes(raw_tx)
        except Exception as exc:
            raise PermanentError(f"not a serialized transaction: {exc}", code=ErrorCode.INVALID_TRANSACTION) from exc
        signature = tx.signatures[0]
        with self._guard():
            if self._status(signature) is not None:
                return SendOutcome.ALREADY_PROCESSED
            slot = self._current_slot()
            if not self._blockhash_valid(tx.message.recent_blockhash, slot):
                return SendOutcome.BLOCKHASH_NOT_FOUND
            return self._execute(tx, raw_tx, slot, preflight=preflight)

    def get_transaction_status(self, signature: Signature) -> TxStatus | None:
        with self._guard():
            return self._status(signature)

    def transaction_records(self, signatures: list[Signature]) -> list[TxRecord | None]:
        """The record of each signature, None where it is unknown (``getSignatureStatuses``)."""
        with self._guard():
            return [self._record_of(signature) for signature in signatures]

    def transaction_details(self, signature: Signature) -> TxDetails | None:
        """The included transaction and its execution metadata (``getTransaction``); None
        when unknown or recorded before details were kept."""
        with self._guard():
            record = self._record_of(signature)
            if record is None:
                return None
            row = self._db.execute(
                "SELECT raw_tx, meta FROM tx_details WHERE signature = ?", (bytes(signature),)
            ).fetchone()
        if row is None:
            return None
        meta = orjson.loads(row[1])
        inner = [
            InnerInstructions(index, [CompiledInner(p, a, bytes.fromhex(d), h) for p, a, d, h in instructions])
            for index, instructions in meta["inner"]
        ]
        return TxDetails(record, bytes(row[0]), meta["pre"], meta["post"], meta["logs"], meta["cu"], inner)

    def signatures_for_address(self, address: Pubkey) -> list[TxStatus]:
        """Included transactions that reference ``address`` (as an account, not as a program),
        oldest first."""
        with self._guard():
            rows = self._db.execute(
                "SELECT t.signature, t.slot, t.fee_lamports, t.err, t.instruction_index, t.custom_code "
                "FROM address_txs a JOIN txs t ON t.signature = a.signature "
                "WHERE a.address = ? ORDER BY t.slot, a.rowid",
                (bytes(address),),
            ).fetchall()
        return [self._row_to_status(row) for row in rows]

    def recent_transaction_records(
        self, address: Pubkey, *, limit: int, before: Signature | None = None, until: Signature | None = None
    ) -> list[TxRecord]:
        """Like :meth:`signatures_for_address` but newest first, at most ``limit``, starting
        after ``before`` and stopping at ``until`` (both exclusive), as ``getSignaturesForAddress``."""
        with self._guard():
            bounds = []
            params: list[Any] = [bytes(address)]
            for sig, op in ((before, "<"), (until, ">")):
                if sig is None:
                    continue
                row = self._db.execute(
                    "SELECT rowid FROM address_txs WHERE address = ? AND signature = ?", (bytes(address), bytes(sig))
                ).fetchone()
                if row is None:
                    if op == "<":
                        return []  # an unknown starting point: nothing before it
                    continue
                bounds.append(f"a.rowid {op} ?")
                params.append(row[0])
            where = "".join(f" AND {b}" for b in bounds)
            rows = self._db.execute(
                "SELECT t.signature, t.slot, t.fee_lamports, t.err, t.instruction_index, t.custom_code, "
                "d.err_json, d.block_time FROM address_txs a JOIN txs t ON t.signature = a.signature "
                f"LEFT JOIN tx_details d ON d.signature = a.signature WHERE a.address = ?{where} "
                "ORDER BY a.rowid DESC LIMIT ?",
                (*params, limit),
            ).fetchall()
        return [self._row_to_record(row) for row in rows]

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

    def _execute(self, tx: Transaction, raw_tx: bytes, slot: int, *, preflight: bool) -> SendOutcome:
        """Runs ``tx`` (caller holds the lock and checked signature and blockhash) and records it."""
        if preflight:
            simulated = self._svm.simulate_transaction(tx)
            if isinstance(simulated, FailedTransactionMetadata):
                raise _rejection(simulated.err(), simulated.meta(), simulated=True)
        keys = tx.message.account_keys
        pre = [self._svm.get_balance(key) or 0 for key in keys]
        result = self._svm.send_transaction(tx)
        if isinstance(result, FailedTransactionMetadata):
            err = result.err()
            meta = result.meta()
            if err == TransactionErrorFieldless.AlreadyProcessed:
                return SendOutcome.ALREADY_PROCESSED
            if not isinstance(err, _EXECUTED_ERRORS):  # rejected before execution: no fee
                raise _rejection(err, meta, simulated=False)
        else:
            err, meta = None, result
        post = [self._svm.get_balance(key) or 0 for key in keys]
        self._record(tx, raw_tx, slot, err, meta, pre, post)
        return SendOutcome.ACCEPTED

    def _record_of(self, signature: Signature) -> TxRecord | None:
        row = self._db.execute(
            "SELECT t.signature, t.slot, t.fee_lamports, t.err, t.instruction_index, t.custom_code, "
            "d.err_json, d.block_time FROM txs t LEFT JOIN tx_details d ON d.signature = t.signature "
            "WHERE t.signature = ?",
            (bytes(signature),),
        ).fetchone()
        return None if row is None else self._row_to_record(row)

    @classmethod
    def _row_to_record(cls, row: tuple) -> TxRecord:
        status = cls._row_to_status(row[:6])
        err_json, block_time = row[6], row[7]
        if err_json is not None:
            err = orjson.loads(err_json)
        elif status.err is None:
            err = None
        elif status.instruction_index is not None and status.custom_code is not None:  # kept before err_json
            err = {"InstructionError": [status.instruction_index, {"Custom": status.custom_code}]}
        else:
            err = status.err
        return TxRecord(status, err, block_time)

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
        self, tx: Transaction, raw_tx: bytes, slot: int, err: object | None, meta: Any, pre: list[int], post: list[int]
    ) -> None:
        signature = tx.signatures[0]
        message = tx.message
        header = message.header
        keys = message.account_keys
        n_signed, n_ro_signed, n_ro_unsigned = (
            header.num_required_signatures,
            header.num_readonly_signed_accounts,
            header.num_readonly_unsigned_accounts,
        )
        referenced = [key for i, key in enumerate(keys) if not message.is_key_called_as_program(i)]
        writable = [
            key
            for i, key in enumerate(keys)
            if (i < n_signed - n_ro_signed or n_signed <= i < len(keys) - n_ro_unsigned)
            and not message.is_key_called_as_program(i)
        ]
        text, index, custom = _err_fields(err) if err is not None else (None, None, None)
        details = orjson.dumps({
            "pre": pre, "post": post, "logs": list(meta.logs()), "cu": meta.compute_units_consumed(),
            "inner": _inner_instructions(meta.inner_instructions()),
        })
        sig = bytes(signature)
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "INSERT INTO txs (signature, slot, fee_lamports, err, instruction_index, custom_code) VALUES (?,?,?,?,?,?)",
                (sig, slot, meta.fee(), text, index, custom),
            )
            self._db.execute(
                "INSERT INTO tx_details (signature, block_time, err_json, raw_tx, meta) VALUES (?,?,?,?,?)",
                (sig, int(time.time()), None if err is None else orjson.dumps(error_json(err)).decode(), raw_tx, details),
            )
            self._db.executemany(
                "INSERT INTO address_txs (address, signature) VALUES (?, ?)", [(bytes(key), sig) for key in referenced]
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


def _rejection(err: object, meta: Any, *, simulated: bool) -> TransactionRejected:
    if any(err == e for e in _INSUFFICIENT_FUNDS):
        message, code = f"fee payer cannot pay: {err}", "insufficient_funds"
    elif isinstance(err, _EXECUTED_ERRORS):
        message, code = f"transaction simulation failed: {_err_fields(err)[0]}", "preflight_failed"
    else:
        message, code = f"transaction rejected: {err}", "tx_rejected"
    return TransactionRejected(
        message, code=code, err_json=error_json(err), simulated=simulated,
        logs=list(meta.logs()) if simulated else [], units_consumed=meta.compute_units_consumed() if simulated else 0,
    )


def _inner_instructions(inner: list) -> list:
    """LiteSVM's inner instructions (one list per top-level instruction) as stored: only the
    non-empty ones, ``[index, [[program_id_index, accounts, data_hex, stack_height], ...]]``."""
    stored = []
    for index, instructions in enumerate(inner):
        if instructions:
            compiled = [(i.instruction(), i.stack_height()) for i in instructions]
            stored.append([index, [[c.program_id_index, list(c.accounts), bytes(c.data).hex(), h] for c, h in compiled]])
    return stored


class _Guard:
    """Holds the chain lock; maps unexpected failures to TokenForge errors."""

    __slots__ = ("_chain",)

    def __init__(self, chain: EmbeddedSolanaChain) -> None:
        self._chain = chain

    def __enter__(self) -> None:
        self._chain._lock.acquire()
        if self._chain._closed:
            self._chain._lock.release()
            raise TransientError("the embedded Solana chain is closed", code=ErrorCode.CHAIN_CLOSED)

    def __exit__(self, exc_type, exc, tb) -> None:
        self._chain._lock.release()
        if exc is not None and not isinstance(exc, TokenForgeError) and _is_vendor_failure(exc):
            raise TransientError(f"embedded Solana chain failure: {exc}", code=ErrorCode.CHAIN_UNAVAILABLE) from exc


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

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Runs ``fn(*args)`` on the transport's thread (e.g. several chain calls in one hop)."""
        return await self._run(fn, *args)

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        except RuntimeError as exc:  # executor shut down
            raise TransientError(f"embedded Solana transport unavailable: {exc}", code=ErrorCode.CHAIN_CLOSED) from exc

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
