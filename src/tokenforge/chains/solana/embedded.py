"""The embedded Solana chain: LiteSVM in-process, with its state kept in SQLite.

LiteSVM (``solders.litesvm``) executes real transactions against the real SPL Token,
Token-2022 and associated-token-account programs, but keeps everything in memory and has
no blocks. :class:`EmbeddedSolanaChain` adds what TokenForge relies on:

* **Persistence.** After every included transaction (and every airdrop) the post-state of
  the transaction's writable accounts, the signature record (slot, fee, error) and the
  current slot are written in one SQLite transaction (:mod:`.embedded_store`). On open,
  every stored account is put back with ``set_account``; programs and sysvars come from
  LiteSVM itself. Without a ``state_dir`` the same tables live in an in-memory database.
  One process owns a state dir (a second one gets ``TransientError(code=ErrorCode.CHAIN_IN_USE)``).
* **Slots and blockhashes with Solana's semantics.** The slot advances with wall time
  (one slot per ``slot_duration_s``, 400 ms by default as on Solana, never backwards,
  continued across restarts; slot 0 is genesis, a new chain starts at 1); block height
  equals the slot. Each slot has its own blockhash, valid for 150 slots. LiteSVM's own check only
  accepts the single latest blockhash, which would fail every in-flight transaction each
  time it changed, so it is switched off and the 150-slot window is enforced here.
  :meth:`expire_blockhash` jumps past the window (for tests of the re-sign path).
* **Signature records.** Duplicates are recognised from the stored records (also after a
  restart), and :meth:`signatures_for_address` answers from an index of the accounts each
  transaction references (fee payer included, program ids not).
* **Preflight.** ``send_raw_transaction(..., preflight=True)`` simulates first, as an RPC
  node does before forwarding, and raises :class:`~.embedded_errors.TransactionRejected`
  without including the transaction when it would fail.
* **Airdrops** are real transfers from a faucet account of this chain (derived from its
  genesis), recorded like any transaction, so they have a signature.
* **Observers** (:meth:`observe`) see every included transaction inside its SQLite
  transaction, with the balances of its accounts before and after (``tokenforge devnet``
  keeps what ``getTransaction`` reports this way); :meth:`read` runs a query under the
  chain's lock.

All methods are synchronous and thread-safe (one lock); :class:`~.embedded_transport.EmbeddedTransport`
runs them on one dedicated thread so the asyncio event loop never waits on LiteSVM or
SQLite. Errors are TokenForge errors only.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import pathlib
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

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
from solders.transaction_status import TransactionErrorFieldless, TransactionErrorType

from tokenforge.chains.solana.embedded_errors import (
    EXECUTED_ERRORS,
    TransactionRejected,
    err_fields,
    error_json,
    rejection,
)
from tokenforge.chains.solana.embedded_store import SolanaStore
from tokenforge.chains.solana.market import CURVE_PROGRAM_ID, program_bytes
from tokenforge.chains.solana.transport import AccountInfo, SendOutcome, TxStatus
from tokenforge.errors import ErrorCode, PermanentError, TokenForgeError, TransientError

__all__ = ["BLOCKHASH_VALID_SLOTS", "EmbeddedSolanaChain", "TransactionObserver", "TransactionRejected", "error_json"]

log = logging.getLogger(__name__)
T = TypeVar("T")

SLOT_DURATION_S = 0.4
BLOCKHASH_VALID_SLOTS = 150
_U64_MAX = 2**64 - 1
# The faucet is topped up (out of thin air, as a development chain may) to this much above
# an airdrop whenever it holds less than the airdrop plus a margin.
_FAUCET_RESERVE_LAMPORTS = 10**18
_FAUCET_MARGIN_LAMPORTS = 10**12


class TransactionObserver(Protocol):
    """Sees every included transaction, inside the SQLite transaction that records it."""

    def recorded(
        self,
        db: sqlite3.Connection,
        tx: Transaction,
        raw_tx: bytes,
        err: TransactionErrorType | None,
        meta: Any,
        pre_balances: list[int],
        post_balances: list[int],
    ) -> None:
        """``err`` is the solders transaction error (None: success), ``meta`` LiteSVM's
        transaction metadata, balances per account key in message order."""
        ...


class EmbeddedSolanaChain:
    """A LiteSVM chain whose accounts and transaction records survive a restart."""

    def __init__(self, state_dir: pathlib.Path | None, *, slot_duration_s: float | None = None) -> None:
        if slot_duration_s is not None and slot_duration_s <= 0:
            raise PermanentError("the slot duration must be positive", code=ErrorCode.INVALID_PARAMETER)
        self.state_dir = state_dir
        self._slot_duration_s = slot_duration_s  # None: the module's SLOT_DURATION_S
        self._lock = threading.RLock()
        self._closed = False
        self._observers: list[TransactionObserver] = []
        store = None
        try:
            # LiteSVM keeps no history of its own: records live in the database.
            self._svm = LiteSVM().with_blockhash_check(False).with_transaction_history(0)
            store = SolanaStore(state_dir)
            self._genesis, stored_slot = store.genesis, store.stored_slot
            self._faucet = Keypair.from_seed(hashlib.sha256(self._genesis + b"tokenforge faucet").digest())
            restored = 0
            for address, account in store.accounts():
                self._svm.set_account(address, account)
                restored += 1
            # TokenForge's curve program, at its fixed id (loaded at every start, like a
            # cluster's built-in programs; its accounts are restored above)
            self._svm.add_program(CURVE_PROGRAM_ID, program_bytes("curve"))
            restore_float_environment()
        except BaseException as exc:
            if store is not None:
                store.close()
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise TransientError(
                    f"the Solana state in {state_dir} is in use by another process", code=ErrorCode.CHAIN_IN_USE
                ) from exc
            if isinstance(exc, TokenForgeError) or not isinstance(exc, Exception):
                raise
            raise TransientError(
                f"cannot open the embedded Solana chain: {exc}", code=ErrorCode.CHAIN_UNAVAILABLE
            ) from exc
        self._store = store
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

    # ---------------------------------------------------------------- observers
    def observe(self, observer: TransactionObserver, schema: str = "") -> None:
        """Calls ``observer`` for every transaction included from now on; ``schema`` creates
        its own tables in the chain's database first."""
        with self._guard():
            if schema:
                self._store.add_schema(schema)
            self._observers.append(observer)

    def read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        """Runs ``query(db)`` on the chain's database under the chain's lock."""
        with self._guard():
            return query(self._store.db)

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
                self._store.save_slot(self._slot)  # a blockhash handed out stays valid across a restart
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
            self._store.save_slot(self._slot)

    def minimum_balance_for_rent_exemption(self, data_len: int) -> int:
        with self._guard():
            return self._svm.minimum_balance_for_rent_exemption(data_len)

    def get_account(self, address: Pubkey) -> AccountInfo | None:
        account = self.get_raw_account(address)
        if account is None:
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
            message = Message(
                [transfer(TransferParams(from_pubkey=faucet, to_pubkey=address, lamports=lamports))], faucet
            )
            for age in range(BLOCKHASH_VALID_SLOTS):
                tx = Transaction([self._faucet], message, self._blockhash_for((slot - age) % 2**64))
                if self._store.status(tx.signatures[0]) is None:
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
            if self._store.status(signature) is not None:
                return SendOutcome.ALREADY_PROCESSED
            slot = self._current_slot()
            if not self._blockhash_valid(tx.message.recent_blockhash, slot):
                return SendOutcome.BLOCKHASH_NOT_FOUND
            return self._execute(tx, raw_tx, slot, preflight=preflight)

    def get_transaction_status(self, signature: Signature) -> TxStatus | None:
        with self._guard():
            return self._store.status(signature)

    def signatures_for_address(self, address: Pubkey) -> list[TxStatus]:
        """Included transactions that reference ``address`` (as an account, not as a program),
        oldest first."""
        with self._guard():
            return self._store.statuses_for_address(address)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                try:
                    self._current_slot()
                    self._store.save_slot(self._slot)
                finally:
                    self._store.close()

    # ---------------------------------------------------------------- internals
    def _guard(self) -> _Guard:
        return _Guard(self)

    def _execute(self, tx: Transaction, raw_tx: bytes, slot: int, *, preflight: bool) -> SendOutcome:
        """Runs ``tx`` (caller holds the lock and checked signature and blockhash) and records it."""
        if preflight:
            simulated = self._svm.simulate_transaction(tx)
            restore_float_environment()
            if isinstance(simulated, FailedTransactionMetadata):
                raise rejection(simulated.err(), simulated.meta(), simulated=True)
        keys = tx.message.account_keys
        pre = [self._svm.get_balance(key) or 0 for key in keys] if self._observers else []
        result = self._svm.send_transaction(tx)
        restore_float_environment()  # before the store's SQLite writes on this thread
        if isinstance(result, FailedTransactionMetadata):
            err = result.err()
            meta = result.meta()
            if err == TransactionErrorFieldless.AlreadyProcessed:
                return SendOutcome.ALREADY_PROCESSED
            if not isinstance(err, EXECUTED_ERRORS):  # rejected before execution: no fee
                raise rejection(err, meta, simulated=False)
        else:
            err, meta = None, result
        self._record(tx, raw_tx, slot, err, meta, pre)
        return SendOutcome.ACCEPTED

    def _record(
        self, tx: Transaction, raw_tx: bytes, slot: int, err: TransactionErrorType | None, meta: Any, pre: list[int]
    ) -> None:
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
        written = []
        for address in writable:
            account = self._svm.get_account(address)
            written.append((address, None if account is None or account.lamports == 0 else account))
        text, index, custom = err_fields(err) if err is not None else (None, None, None)
        status = TxStatus(tx.signatures[0], slot, meta.fee(), text, index, custom)
        also = None
        if self._observers:
            post = [self._svm.get_balance(key) or 0 for key in keys]

            def also(db: sqlite3.Connection) -> None:
                for observer in self._observers:
                    observer.recorded(db, tx, raw_tx, err, meta, pre, post)

        self._store.record(status, referenced, written, self._slot, also)


_LIBC = ctypes.CDLL(None) if sys.platform.startswith("linux") else None
_FE_DFL_ENV = ctypes.c_void_p(-1)  # glibc's FE_DFL_ENV: the default floating-point environment


def restore_float_environment() -> None:
    """Puts back the default floating-point environment of the calling thread. LiteSVM
    (solders 0.29) leaves it changed once it has run a program; on that thread SQLite's
    ``sum()`` of REAL values then answered NULL and SQLite databases written there were
    seen reported as malformed. Every chain operation starts and ends with this, and so does
    each run of a transaction (about a microsecond each); some of LiteSVM's objects change it
    again when they are freed, so SQLite work on a chain thread belongs inside the guard."""
    if _LIBC is not None:
        _LIBC.fesetenv(_FE_DFL_ENV)


class _Guard:
    """Holds the chain lock; maps unexpected failures to TokenForge errors."""

    __slots__ = ("_chain",)

    def __init__(self, chain: EmbeddedSolanaChain) -> None:
        self._chain = chain

    def __enter__(self) -> None:
        self._chain._lock.acquire()
        restore_float_environment()  # whatever ran on this thread since
        if self._chain._closed:
            self._chain._lock.release()
            raise TransientError("the embedded Solana chain is closed", code=ErrorCode.CHAIN_CLOSED)

    def __exit__(self, exc_type, exc, tb) -> None:
        restore_float_environment()  # before other code on this thread does arithmetic
        self._chain._lock.release()
        if exc is not None and not isinstance(exc, TokenForgeError) and _is_vendor_failure(exc):
            raise TransientError(f"embedded Solana chain failure: {exc}", code=ErrorCode.CHAIN_UNAVAILABLE) from exc


def _is_vendor_failure(exc: BaseException) -> bool:
    # A Rust panic inside LiteSVM surfaces as pyo3's PanicException, a BaseException.
    return isinstance(exc, Exception) or type(exc).__name__ == "PanicException"
