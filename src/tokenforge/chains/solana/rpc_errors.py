"""Translation of solana-py / node / HTTP failures into TokenForge errors (Solana JSON-RPC).

:func:`translate_rpc_failure` is the one place where whatever solana-py raises becomes a
:class:`~tokenforge.errors.TokenForgeError`; :func:`send_outcome` reads the two
``sendTransaction`` refusals that are outcomes rather than failures, and
:func:`parse_transaction_error` a transaction's ``meta.err``. Node codes are Agave's
(``rpc-client-api`` ``custom_error.rs``) and JSON-RPC 2.0's; each maps to one
:class:`~tokenforge.errors.ErrorCode` below. Messages carry the RPC method and the node's
own message, never the endpoint URL (it may hold an API key), and vendor exceptions that
carry the URL are not chained (:func:`chainable`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import httpx2
from solana.exceptions import SolanaRpcException
from solana.rpc.core import RPCException
from solana.rpc.jsonrpc import SolanaJsonRpcError
from solders.transaction_status import TransactionErrorInstructionError

from tokenforge.chains.solana.transport import SendOutcome
from tokenforge.errors import ErrorCode, PermanentError, TokenForgeError, TransientError

MESSAGE_MAX_CHARS = 300

# --- JSON-RPC error codes (agave rpc-client-api custom_error.rs, JSON-RPC 2.0) ---------------
_PARSE_ERROR, _INVALID_REQUEST, _METHOD_NOT_FOUND, _INVALID_PARAMS, _INTERNAL_ERROR = (
    -32700,
    -32600,
    -32601,
    -32602,
    -32603,
)
_PREFLIGHT_FAILURE = -32002
_SIGNATURE_VERIFICATION_FAILURE = -32003
_NODE_UNHEALTHY = -32005
_PRECOMPILE_VERIFICATION_FAILURE = -32006
_SIGNATURE_LEN_MISMATCH = -32013
_UNSUPPORTED_TRANSACTION_VERSION = -32015
# Answers that another moment (or another node) can change.
_TRANSIENT_CODES: dict[int, ErrorCode] = {
    _INTERNAL_ERROR: ErrorCode.RPC_INTERNAL_ERROR,
    -32001: ErrorCode.RPC_BLOCK_CLEANED_UP,
    -32004: ErrorCode.RPC_BLOCK_NOT_AVAILABLE,
    _NODE_UNHEALTHY: ErrorCode.RPC_NODE_UNHEALTHY,
    -32007: ErrorCode.RPC_SLOT_SKIPPED,
    -32008: ErrorCode.RPC_NO_SNAPSHOT,
    -32011: ErrorCode.RPC_HISTORY_UNAVAILABLE,
    -32014: ErrorCode.RPC_BLOCK_STATUS_NOT_AVAILABLE,
    -32016: ErrorCode.RPC_MIN_CONTEXT_SLOT_NOT_REACHED,
    -32017: ErrorCode.RPC_EPOCH_REWARDS_PERIOD,
    -32019: ErrorCode.RPC_LONG_TERM_STORAGE_UNREACHABLE,
    429: ErrorCode.RATE_LIMITED,
    -32429: ErrorCode.RATE_LIMITED,
}
# Definite rejections of the request itself.
_PERMANENT_CODES: dict[int, ErrorCode] = {
    _SIGNATURE_VERIFICATION_FAILURE: ErrorCode.INVALID_SIGNATURE,
    _SIGNATURE_LEN_MISMATCH: ErrorCode.INVALID_SIGNATURE,
    _PRECOMPILE_VERIFICATION_FAILURE: ErrorCode.TX_REJECTED,
    _UNSUPPORTED_TRANSACTION_VERSION: ErrorCode.TX_REJECTED,
    _PARSE_ERROR: ErrorCode.RPC_REQUEST_REJECTED,
    _INVALID_REQUEST: ErrorCode.RPC_REQUEST_REJECTED,
    _METHOD_NOT_FOUND: ErrorCode.RPC_METHOD_UNSUPPORTED,
    _INVALID_PARAMS: ErrorCode.RPC_REQUEST_REJECTED,
}
# solders error objects (raised inside solana.rpc.core.RPCException by the typed helpers).
_SOLDERS_ERROR_CODES = {
    "ParseErrorMessage": _PARSE_ERROR,
    "InvalidRequestMessage": _INVALID_REQUEST,
    "MethodNotFoundMessage": _METHOD_NOT_FOUND,
    "InvalidParamsMessage": _INVALID_PARAMS,
    "InternalErrorMessage": _INTERNAL_ERROR,
    "BlockCleanedUpMessage": -32001,
    "SendTransactionPreflightFailureMessage": _PREFLIGHT_FAILURE,
    "BlockNotAvailableMessage": -32004,
    "NodeUnhealthyMessage": _NODE_UNHEALTHY,
    "TransactionPrecompileVerificationFailureMessage": _PRECOMPILE_VERIFICATION_FAILURE,
    "SlotSkippedMessage": -32007,
    "BlockStatusNotAvailableYetMessage": -32014,
    "MinContextSlotNotReachedMessage": -32016,
    "UnsupportedTransactionVersionMessage": _UNSUPPORTED_TRANSACTION_VERSION,
}
# solders' fieldless custom errors, by name.
_FIELDLESS_ERROR_CODES = {
    "TransactionSignatureVerificationFailure": _SIGNATURE_VERIFICATION_FAILURE,
    "NoSnapshot": -32008,
    "TransactionHistoryNotAvailable": -32011,
    "TransactionSignatureLenMismatch": _SIGNATURE_LEN_MISMATCH,
}
# Transaction errors (preflight ``data.err``) that say nothing about the transaction itself.
_TRANSIENT_TX_ERRORS = {
    "AccountInUse",
    "ClusterMaintenance",
    "ProgramCacheHitMaxLimit",
    "WouldExceedAccountDataBlockLimit",
    "WouldExceedAccountDataTotalLimit",
    "WouldExceedMaxAccountCostLimit",
    "WouldExceedMaxBlockCostLimit",
    "WouldExceedMaxVoteCostLimit",
}
_PAYER_CANNOT_PAY_TX_ERRORS = {"AccountNotFound", "InsufficientFundsForFee", "InsufficientFundsForRent"}


# ---------------------------------------------------------------------- answers
def parse_transaction_error(err: Any) -> tuple[str | None, int | None, int | None]:
    """``meta.err`` of a JSON-encoded transaction -> (readable text, instruction index, custom code)."""
    if err is None:
        return None, None, None
    if isinstance(err, dict) and "InstructionError" in err:
        index, inner = err["InstructionError"]
        custom = inner.get("Custom") if isinstance(inner, dict) else None
        if custom is not None:
            return f"instruction {index} failed: custom program error {custom}", int(index), int(custom)
        return f"instruction {index} failed: {_error_text(inner)}", int(index), None
    return _error_text(err), None, None


def _error_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((name, detail),) = value.items()
        return f"{name}: {detail}"
    return str(value)


def _tx_error_name(data: Any) -> str | None:
    """The transaction error's name in a preflight failure's ``data.err``."""
    err = data.get("err") if isinstance(data, dict) else None
    if isinstance(err, str):
        return err
    if isinstance(err, dict) and len(err) == 1:
        return next(iter(err))
    return None


def send_outcome(exc: BaseException) -> SendOutcome | None:
    """The ``sendTransaction`` refusals that are outcomes rather than failures: an already
    processed signature, an expired or unknown blockhash. None for anything else."""
    fields = _rpc_error_fields(exc)
    if fields is None:
        return None
    _, message, data = fields
    name, text = _tx_error_name(data), message.lower()
    if name == "AlreadyProcessed" or "already been processed" in text:
        return SendOutcome.ALREADY_PROCESSED
    if name == "BlockhashNotFound" or "blockhash not found" in text:
        return SendOutcome.BLOCKHASH_NOT_FOUND
    return None


def _rpc_error(method: str, code: int, message: str, data: Any) -> TokenForgeError:
    shown = message[:MESSAGE_MAX_CHARS]
    text = f"{method}: node answered {code} {shown}"
    lowered = message.lower()
    if code == _PREFLIGHT_FAILURE:
        name = _tx_error_name(data)
        if name in _TRANSIENT_TX_ERRORS:
            return TransientError(text, code=ErrorCode.RPC_BUSY)
        if name in _PAYER_CANNOT_PAY_TX_ERRORS or "insufficient funds" in lowered:
            return PermanentError(text, code=ErrorCode.INSUFFICIENT_FUNDS)
        return PermanentError(text, code=ErrorCode.TX_FAILED if name == "InstructionError" else ErrorCode.TX_REJECTED)
    if code == _INVALID_PARAMS and method == "sendTransaction":
        return PermanentError(text, code=ErrorCode.INVALID_TRANSACTION)
    if code in _PERMANENT_CODES:
        return PermanentError(text, code=_PERMANENT_CODES[code])
    if code in _TRANSIENT_CODES:
        return TransientError(text, code=_TRANSIENT_CODES[code])
    # Server-defined codes (-32000 and friends): the message is all there is.
    if "insufficient funds" in lowered:
        return PermanentError(text, code=ErrorCode.INSUFFICIENT_FUNDS)
    if "rate limit" in lowered or "too many requests" in lowered:
        return TransientError(text, code=ErrorCode.RATE_LIMITED)
    return TransientError(text, code=ErrorCode.RPC_ERROR)


def _rpc_error_fields(exc: BaseException) -> tuple[int, str, Any] | None:
    """(code, message, data) of a JSON-RPC error answer, whichever way solana-py raised it."""
    if isinstance(exc, SolanaJsonRpcError):
        return exc.code, exc.message, exc.data
    if isinstance(exc, RPCException) and exc.args:
        error = exc.args[0]
        name = type(error).__name__
        if name == "RpcCustomErrorFieldless":
            label = str(error).rsplit(".", 1)[-1]
            return _FIELDLESS_ERROR_CODES.get(label, _INTERNAL_ERROR), label, None
        data = getattr(error, "data", None)
        err = getattr(data, "err", None)
        if isinstance(err, TransactionErrorInstructionError):
            data_dict: dict[str, Any] | None = {"err": {"InstructionError": [err.index, str(err.err)]}}
        else:
            data_dict = {"err": str(err).rsplit(".", 1)[-1]} if err is not None else None
        return _SOLDERS_ERROR_CODES.get(name, _INTERNAL_ERROR), str(getattr(error, "message", name)), data_dict
    return None


def _http_failure(exc: httpx2.HTTPError, method: str) -> TransientError:
    if isinstance(exc, httpx2.HTTPStatusError):
        status = exc.response.status_code
        text = f"{method}: HTTP {status} {exc.response.reason_phrase}"
        if status == 429:
            return TransientError(text, code=ErrorCode.RATE_LIMITED, retry_after_s=_retry_after_s(exc.response))
        if status >= 500 or status == 408:
            return TransientError(text, code=ErrorCode.RPC_UNAVAILABLE, retry_after_s=_retry_after_s(exc.response))
        # Other 4xx (auth, routing): not a verdict on the transaction; an operator can fix it.
        return TransientError(text, code=ErrorCode.RPC_HTTP_ERROR)
    if isinstance(exc, httpx2.TimeoutException):
        return TransientError(f"{method}: {type(exc).__name__}", code=ErrorCode.RPC_TIMEOUT)
    if isinstance(exc, httpx2.TransportError):
        return TransientError(f"{method}: {type(exc).__name__}", code=ErrorCode.RPC_UNAVAILABLE)
    return TransientError(f"{method}: {type(exc).__name__}", code=ErrorCode.RPC_ERROR)


def _retry_after_s(response: httpx2.Response) -> float | None:
    try:
        value = float(response.headers.get("retry-after", ""))
    except ValueError:
        return None
    return value if value >= 0 else None


def translate_rpc_failure(exc: BaseException, method: str) -> TokenForgeError:
    """The TokenForge error for anything solana-py raised during ``method``.

    ============================================  ===========================================
    solana-py / node answer                       TokenForge error (code)
    ============================================  ===========================================
    TokenForgeError from the client's HTTP layer  unchanged
    HTTP 429                                      Transient ``rate_limited`` (Retry-After)
    HTTP 5xx, 408                                 Transient ``rpc_unavailable``
    other HTTP 4xx                                Transient ``rpc_http_error``
    timeout                                       Transient ``rpc_timeout``
    connection refused/reset, protocol errors     Transient ``rpc_unavailable``
    unparseable answer                            Transient ``rpc_bad_response``
    -32005 unhealthy / behind, -32603, 429, ...   Transient (``rpc_node_unhealthy``, ...)
    -32003 / -32013 signature failure             Permanent ``invalid_signature``
    -32602 on sendTransaction (undecodable tx)    Permanent ``invalid_transaction``
    -32600 / -32601 / -32602 / -32700             Permanent ``rpc_request_rejected`` /
                                                  ``rpc_method_unsupported``
    -32002 preflight: payer cannot pay            Permanent ``insufficient_funds``
    -32002 preflight: block/account limits        Transient ``rpc_busy``
    -32002 preflight: other                       Permanent ``tx_failed`` / ``tx_rejected``
    other codes ("insufficient funds" in text)    Permanent ``insufficient_funds``
    other codes                                   Transient ``rpc_error``
    ============================================  ===========================================
    """
    if isinstance(exc, TokenForgeError):
        return exc
    fields = _rpc_error_fields(exc)
    if fields is not None:
        return _rpc_error(method, *fields)
    if isinstance(exc, SolanaRpcException):
        cause = exc.__cause__
        if isinstance(cause, TokenForgeError):
            return cause
        if isinstance(cause, httpx2.HTTPError):
            return _http_failure(cause, method)
        return TransientError(f"{method}: {type(cause).__name__} in the RPC client", code=ErrorCode.RPC_ERROR)
    if isinstance(exc, httpx2.HTTPError):
        return _http_failure(exc, method)
    if isinstance(exc, ValueError):  # pydantic: not a JSON-RPC answer
        return TransientError(f"{method}: the node's answer is not valid JSON-RPC", code=ErrorCode.RPC_BAD_RESPONSE)
    return TransientError(f"{method}: {type(exc).__name__} in the RPC client", code=ErrorCode.RPC_ERROR)


def chainable(exc: BaseException) -> BaseException | None:
    """The exception to chain: not the HTTP-layer ones, whose text holds the endpoint URL."""
    if isinstance(exc, (SolanaRpcException, httpx2.HTTPError)):
        return None
    return exc


@contextlib.contextmanager
def reading(method: str) -> Iterator[None]:
    """Turns a node answer of an unexpected shape into a TransientError."""
    try:
        yield
    except TokenForgeError:
        raise
    except Exception as exc:  # KeyError, TypeError, ValueError, solders' ParseHashError, ...
        raise TransientError(
            f"{method}: unexpected answer from the node ({type(exc).__name__}: {str(exc)[:MESSAGE_MAX_CHARS]})",
            code=ErrorCode.RPC_BAD_RESPONSE,
        ) from exc
