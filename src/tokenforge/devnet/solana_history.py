"""What the devnet's Solana face reports about past transactions beyond their signature records.

``getTransaction``, ``getSignatureStatuses`` and ``getSignaturesForAddress`` report each
included transaction's bytes, block time, balances before and after, logs, compute units,
inner instructions and its error in Solana's RPC JSON form. The embedded chain keeps only
signature records (what launches need); :class:`TransactionHistory` observes the chain
(:meth:`~tokenforge.chains.solana.embedded.EmbeddedSolanaChain.observe`) and keeps the rest
in the chain's own database, table ``tx_details``, written in the same SQLite transaction
as the record, so it survives restarts with the chain. Its reads join the chain's ``txs``
and ``address_txs`` tables (:mod:`tokenforge.chains.solana.embedded_store`).

Transactions recorded while no history observed the chain (e.g. by the in-process
deployer) have no details: ``details`` answers None for them, and their error comes from
the signature record.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import orjson
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import Transaction
from solders.transaction_status import TransactionErrorType

from tokenforge.chains.solana.embedded import TransactionObserver, error_json
from tokenforge.chains.solana.embedded_store import status_from_row
from tokenforge.chains.solana.transport import TxStatus

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS tx_details (
    signature BLOB PRIMARY KEY, block_time INTEGER NOT NULL, err_json TEXT, raw_tx BLOB NOT NULL, meta BLOB NOT NULL);
"""


class HistoryChain(Protocol):
    """The chain members the history uses (:class:`~tokenforge.chains.solana.embedded.EmbeddedSolanaChain`)."""

    def observe(self, observer: TransactionObserver, schema: str = "") -> None: ...

    def read(self, query: Callable[[sqlite3.Connection], T]) -> T: ...


@dataclass(frozen=True, slots=True)
class TxRecord:
    """An included transaction's status, its error in RPC JSON form and its block time."""

    status: TxStatus
    err_json: Any = None  # None = success
    block_time_s: int | None = None  # None for records kept without details


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


#: a signature record (``txs``, in :func:`status_from_row`'s order) and its details' error and time
_RECORD_COLUMNS = (
    "t.signature, t.slot, t.fee_lamports, t.err, t.instruction_index, t.custom_code, d.err_json, d.block_time"
)


class TransactionHistory:
    """Keeps and answers the details of every transaction the chain includes from now on."""

    def __init__(self, chain: HistoryChain) -> None:
        self._chain = chain
        chain.observe(self, SCHEMA)

    # ---------------------------------------------------------------- writing (chain thread, chain lock)
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
        details = orjson.dumps(
            {
                "pre": pre_balances,
                "post": post_balances,
                "logs": list(meta.logs()),
                "cu": meta.compute_units_consumed(),
                "inner": _inner_instructions(meta.inner_instructions()),
            }
        )
        db.execute(
            "INSERT INTO tx_details (signature, block_time, err_json, raw_tx, meta) VALUES (?,?,?,?,?)",
            (
                bytes(tx.signatures[0]),
                int(time.time()),
                None if err is None else orjson.dumps(error_json(err)).decode(),
                raw_tx,
                details,
            ),
        )

    # ---------------------------------------------------------------- reading
    def records(self, signatures: list[Signature]) -> list[TxRecord | None]:
        """The record of each signature, None where it is unknown (``getSignatureStatuses``)."""
        return self._chain.read(lambda db: [_record_of(db, signature) for signature in signatures])

    def details(self, signature: Signature) -> TxDetails | None:
        """The included transaction and its execution metadata (``getTransaction``); None
        when unknown or recorded without details."""

        def query(db: sqlite3.Connection) -> tuple[TxRecord | None, Any]:
            record = _record_of(db, signature)
            if record is None:
                return None, None
            return record, db.execute(
                "SELECT raw_tx, meta FROM tx_details WHERE signature = ?", (bytes(signature),)
            ).fetchone()

        record, row = self._chain.read(query)
        if record is None or row is None:
            return None
        meta = orjson.loads(row[1])
        inner = [
            InnerInstructions(index, [CompiledInner(p, a, bytes.fromhex(d), h) for p, a, d, h in instructions])
            for index, instructions in meta["inner"]
        ]
        return TxDetails(record, bytes(row[0]), meta["pre"], meta["post"], meta["logs"], meta["cu"], inner)

    def recent_records(
        self, address: Pubkey, *, limit: int, before: Signature | None = None, until: Signature | None = None
    ) -> list[TxRecord]:
        """Included transactions that reference ``address``, newest first, at most ``limit``,
        starting after ``before`` and stopping at ``until`` (both exclusive), as
        ``getSignaturesForAddress``."""

        def query(db: sqlite3.Connection) -> list[TxRecord]:
            bounds = []
            params: list[Any] = [bytes(address)]
            for sig, op in ((before, "<"), (until, ">")):
                if sig is None:
                    continue
                row = db.execute(
                    "SELECT rowid FROM address_txs WHERE address = ? AND signature = ?", (bytes(address), bytes(sig))
                ).fetchone()
                if row is None:
                    if op == "<":
                        return []  # an unknown starting point: nothing before it
                    continue
                bounds.append(f"a.rowid {op} ?")
                params.append(row[0])
            where = "".join(f" AND {b}" for b in bounds)
            rows = db.execute(
                f"SELECT {_RECORD_COLUMNS} FROM address_txs a JOIN txs t ON t.signature = a.signature "
                f"LEFT JOIN tx_details d ON d.signature = a.signature WHERE a.address = ?{where} "
                "ORDER BY a.rowid DESC LIMIT ?",
                (*params, limit),
            ).fetchall()
            return [_row_to_record(row) for row in rows]

        return self._chain.read(query)


def _record_of(db: sqlite3.Connection, signature: Signature) -> TxRecord | None:
    row = db.execute(
        f"SELECT {_RECORD_COLUMNS} FROM txs t LEFT JOIN tx_details d ON d.signature = t.signature "
        "WHERE t.signature = ?",
        (bytes(signature),),
    ).fetchone()
    return None if row is None else _row_to_record(row)


def _row_to_record(row: tuple) -> TxRecord:
    status = status_from_row(row[:6])
    err_json, block_time = row[6], row[7]
    if err_json is not None:
        err = orjson.loads(err_json)
    elif status.err is None:
        err = None
    elif status.instruction_index is not None and status.custom_code is not None:  # recorded without details
        err = {"InstructionError": [status.instruction_index, {"Custom": status.custom_code}]}
    else:
        err = status.err
    return TxRecord(status, err, block_time)


def _inner_instructions(inner: list) -> list:
    """LiteSVM's inner instructions (one list per top-level instruction) as stored: only the
    non-empty ones, ``[index, [[program_id_index, accounts, data_hex, stack_height], ...]]``."""
    stored = []
    for index, instructions in enumerate(inner):
        if instructions:
            compiled = [(i.instruction(), i.stack_height()) for i in instructions]
            stored.append(
                [index, [[c.program_id_index, list(c.accounts), bytes(c.data).hex(), h] for c, h in compiled]]
            )
    return stored
