"""How the embedded Solana chain reports what it refuses or what failed.

* :class:`TransactionRejected` — a transaction refused before inclusion (nothing was
  charged), with its error in Solana's RPC JSON form and, for a preflight, its logs;
* :func:`error_json` — a solders transaction error in that JSON form;
* :func:`err_fields` — the readable text, failed instruction and custom code of an
  executed transaction's error, as its signature record keeps them.
"""

from __future__ import annotations

from typing import Any

import orjson
from solders.transaction_status import (
    TransactionErrorFieldless,
    TransactionErrorInstructionError,
    TransactionErrorInsufficientFundsForRent,
    TransactionErrorType,
    TransactionStatus,
)

from tokenforge.errors import ErrorCode, PermanentError

#: Errors of executed transactions: they are included and pay their fee.
EXECUTED_ERRORS = (TransactionErrorInstructionError, TransactionErrorInsufficientFundsForRent)
# Rejections before execution: the transaction is not included and pays no fee.
_INSUFFICIENT_FUNDS = (TransactionErrorFieldless.AccountNotFound, TransactionErrorFieldless.InsufficientFundsForFee)


def error_json(err: TransactionErrorType) -> Any:
    """A solders ``TransactionError`` in the JSON form Solana's RPC uses."""
    return orjson.loads(TransactionStatus(0, None, err, None, None).to_json())["status"]["Err"]


class TransactionRejected(PermanentError):
    """The chain refused a transaction before including it; nothing was charged.

    ``err_json`` is the error in Solana's RPC JSON form. ``simulated`` is True when the
    refusal came from a preflight simulation, whose ``logs`` and ``units_consumed`` are kept."""

    def __init__(
        self,
        message: str,
        *,
        code: ErrorCode,
        err_json: Any,
        simulated: bool = False,
        logs: list[str] | None = None,
        units_consumed: int = 0,
    ) -> None:
        super().__init__(message, code=code)
        self.err_json = err_json
        self.simulated = simulated
        self.logs = logs or []
        self.units_consumed = units_consumed


def err_fields(err: TransactionErrorType) -> tuple[str, int | None, int | None]:
    """(readable text, failed instruction index, custom program error code) of a transaction error."""
    if isinstance(err, TransactionErrorInstructionError):
        inner = err.err
        return f"instruction {err.index} failed: {inner}", err.index, getattr(inner, "code", None)
    return str(err), None, None


def rejection(err: TransactionErrorType, meta: Any, *, simulated: bool) -> TransactionRejected:
    """The refusal of a transaction LiteSVM would not include (``meta``: its metadata)."""
    if any(err == e for e in _INSUFFICIENT_FUNDS):
        message, code = f"fee payer cannot pay: {err}", ErrorCode.INSUFFICIENT_FUNDS
    elif isinstance(err, EXECUTED_ERRORS):
        message, code = f"transaction simulation failed: {err_fields(err)[0]}", ErrorCode.PREFLIGHT_FAILED
    else:
        message, code = f"transaction rejected: {err}", ErrorCode.TX_REJECTED
    return TransactionRejected(
        message,
        code=code,
        err_json=error_json(err),
        simulated=simulated,
        logs=list(meta.logs()) if simulated else [],
        units_consumed=meta.compute_units_consumed() if simulated else 0,
    )
