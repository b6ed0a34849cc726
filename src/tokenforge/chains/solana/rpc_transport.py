"""The Solana JSON-RPC transport: :class:`SolanaTransport` over solana-py's ``AsyncClient``.

:class:`RpcSolanaTransport` speaks to one RPC endpoint through ``AsyncClient.send_rpc_request``
(plain JSON-RPC; the typed helpers of solana-py turn error codes they do not know into bare
integers and drop the node's message). Every node answer is read at one commitment level,
``"confirmed"`` unless configured otherwise; ``getTransaction`` and
``getSignaturesForAddress`` do not serve ``"processed"``, so they are asked at
``"confirmed"`` then.

Per call:

* ``send_raw_transaction`` sends with ``skipPreflight`` (the launch is deterministic; a
  preflight would cost a simulation per launch). ``ACCEPTED`` when the node takes it,
  ``ALREADY_PROCESSED`` / ``BLOCKHASH_NOT_FOUND`` when the node says so (structured preflight
  error or the message text).
* ``get_transaction_status`` is ``None`` until the signature has reached the commitment,
  then one ``getTransaction`` supplies the fee and the error (failed instruction index,
  custom program error code). ``None`` too while ``getTransaction`` still answers null
  (the node indexes the transaction a moment after its status).
* ``signatures_for_address`` returns the address's transactions oldest first, ending with
  the first successful one (the creating transaction, which is what the deployer looks
  for): each entry costs a ``getTransaction`` for its fee, so later ones are not fetched.
  Empty when the address has more than ``SIGNATURES_MAX_PAGES`` pages of history.

Errors: TokenForge errors raised by the client's HTTP layer pass through unchanged;
everything else is translated (see :func:`translate_rpc_failure`). Transport trouble,
rate limits, unhealthy or lagging nodes are :class:`TransientError`; definite rejections
(bad signature, undecodable transaction, payer cannot pay, malformed request) are
:class:`PermanentError`. Messages carry the RPC method and the node's own message, never the
endpoint URL (it may hold an API key), and vendor exceptions that carry the URL are not chained.
"""

from __future__ import annotations

import base64
import contextlib
import logging
from collections.abc import Iterator
from typing import Any, Literal

import httpx2
from solana.exceptions import SolanaRpcException
from solana.rpc.async_api import AsyncClient
from solana.rpc.core import RPCException
from solana.rpc.jsonrpc import JsonRpcRequest, SolanaJsonRpcError
from solders.hash import Hash
from solders.pubkey import Pubkey
from solders.signature import Signature

from tokenforge.chains.solana.transport import AccountInfo, SendOutcome, TxStatus
from tokenforge.errors import ErrorCode, PermanentError, TokenForgeError, TransientError

log = logging.getLogger(__name__)

Commitment = Literal["processed", "confirmed", "finalized"]
_COMMITMENT_RANK: dict[str, int] = {"processed": 0, "confirmed": 1, "finalized": 2}

SIGNATURES_PAGE_LIMIT = 1000  # the node's maximum for getSignaturesForAddress
SIGNATURES_MAX_PAGES = 10
_MESSAGE_MAX_CHARS = 300

# --- JSON-RPC error codes (agave rpc-client-api custom_error.rs, JSON-RPC 2.0) ---------------
_PARSE_ERROR, _INVALID_REQUEST, _METHOD_NOT_FOUND, _INVALID_PARAMS, _INTERNAL_ERROR = (
    -32700, -32600, -32601, -32602, -32603,
)
_PREFLIGHT_FAILURE = -32002
_SIGNATURE_VERIFICATION_FAILURE = -32003
_NODE_UNHEALTHY = -32005
_PRECOMPILE_VERIFICATION_FAILURE = -32006
_SIGNATURE_LEN_MISMATCH = -32013
_UNSUPPORTED_TRANSACTION_VERSION = -32015
# Answers that another moment (or another node) can change.
_TRANSIENT_CODES = {
    _INTERNAL_ERROR: "rpc_internal_error",
    -32001: "rpc_block_cleaned_up",
    -32004: "rpc_block_not_available",
    _NODE_UNHEALTHY: "rpc_node_unhealthy",
    -32007: "rpc_slot_skipped",
    -32008: "rpc_no_snapshot",
    -32011: "rpc_history_unavailable",
    -32014: "rpc_block_status_not_available",
    -32016: "rpc_min_context_slot_not_reached",
    -32017: "rpc_epoch_rewards_period",
    -32019: "rpc_long_term_storage_unreachable",
    429: "rate_limited",
    -32429: "rate_limited",
}
# Definite rejections of the request itself.
_PERMANENT_CODES = {
    _SIGNATURE_VERIFICATION_FAILURE: "invalid_signature",
    _SIGNATURE_LEN_MISMATCH: "invalid_signature",
    _PRECOMPILE_VERIFICATION_FAILURE: "tx_rejected",
    _UNSUPPORTED_TRANSACTION_VERSION: "tx_rejected",
    _PARSE_ERROR: "rpc_request_rejected",
    _INVALID_REQUEST: "rpc_request_rejected",
    _METHOD_NOT_FOUND: "rpc_method_unsupported",
    _INVALID_PARAMS: "rpc_request_rejected",
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


class RpcSolanaTransport:
    """:class:`~tokenforge.chains.solana.transport.SolanaTransport` over a JSON-RPC node.

    Owns ``client``: :meth:`close` closes it. Stateless otherwise (no blockhash or rent
    cache; the deployer caches rent per data length and wants a fresh blockhash per sign).
    """

    def __init__(self, client: AsyncClient, *, commitment: Commitment = "confirmed") -> None:
        if commitment not in _COMMITMENT_RANK:
            raise PermanentError(
                f"commitment must be one of {sorted(_COMMITMENT_RANK)}, not {commitment!r}", code=ErrorCode.INVALID_COMMITMENT
            )
        self.client = client
        self.commitment: Commitment = commitment
        # getTransaction / getSignaturesForAddress accept "confirmed" at the lowest.
        self._history_commitment: Commitment = "confirmed" if commitment == "processed" else commitment

    # ------------------------------------------------------------------ SolanaTransport
    async def latest_blockhash(self) -> tuple[Hash, int]:
        result = await self._call("getLatestBlockhash", [{"commitment": self.commitment}])
        with _reading("getLatestBlockhash"):
            value = result["value"]
            return Hash.from_string(value["blockhash"]), int(value["lastValidBlockHeight"])

    async def send_raw_transaction(self, raw_tx: bytes) -> SendOutcome:
        config = {"encoding": "base64", "skipPreflight": True, "preflightCommitment": self.commitment}
        try:
            await self._request("sendTransaction", [base64.b64encode(raw_tx).decode("ascii"), config])
        except TokenForgeError:
            raise
        except Exception as exc:  # noqa: BLE001 - every vendor failure is translated here
            fields = _rpc_error_fields(exc)
            if fields is not None:
                outcome = _send_outcome(*fields)
                if outcome is not None:
                    return outcome
            raise translate_rpc_failure(exc, "sendTransaction") from _chainable(exc)
        return SendOutcome.ACCEPTED

    async def get_transaction_status(self, signature: Signature) -> TxStatus | None:
        result = await self._call("getSignatureStatuses", [[str(signature)], {"searchTransactionHistory": True}])
        with _reading("getSignatureStatuses"):
            entry = result["value"][0]
            if entry is None or not self._reached(entry):
                return None
        return await self._included(signature)

    async def block_height(self) -> int:
        result = await self._call("getBlockHeight", [{"commitment": self.commitment}])
        with _reading("getBlockHeight"):
            return int(result)

    async def get_account(self, address: Pubkey) -> AccountInfo | None:
        result = await self._call(
            "getAccountInfo", [str(address), {"encoding": "base64", "commitment": self.commitment}]
        )
        with _reading("getAccountInfo"):
            value = result["value"]
            if value is None or int(value["lamports"]) == 0:
                return None
            data, encoding = value["data"]
            if encoding != "base64":
                raise ValueError(f"account data in {encoding!r}, asked for base64")
            return AccountInfo(
                lamports=int(value["lamports"]),
                owner=Pubkey.from_string(value["owner"]),
                data=base64.b64decode(data, validate=True),
            )

    async def signatures_for_address(self, address: Pubkey) -> list[TxStatus]:
        """Transactions that wrote ``address``, oldest first, up to the first successful one."""
        newest_first: list[dict[str, Any]] = []
        before: str | None = None
        for _ in range(SIGNATURES_MAX_PAGES):
            config: dict[str, Any] = {"limit": SIGNATURES_PAGE_LIMIT, "commitment": self._history_commitment}
            if before is not None:
                config["before"] = before
            page = await self._call("getSignaturesForAddress", [str(address), config])
            with _reading("getSignaturesForAddress"):
                newest_first.extend(page)
                if len(page) < SIGNATURES_PAGE_LIMIT:
                    break
                before = page[-1]["signature"]
        else:
            log.warning(
                "solana address history too long to find its first transaction",
                extra={"address": str(address), "pages": SIGNATURES_MAX_PAGES},
            )
            return []
        statuses: list[TxStatus] = []
        for entry in reversed(newest_first):
            with _reading("getSignaturesForAddress"):
                signature = Signature.from_string(entry["signature"])
            status = await self._included(signature)
            if status is None:  # listed by the node, not yet served by getTransaction
                raise TransientError(
                    f"the node lists {signature} for {address} but does not serve it yet", code=ErrorCode.RPC_LAGGING
                )
            statuses.append(status)
            if status.err is None:
                break
        return statuses

    async def minimum_balance_for_rent_exemption(self, data_len: int) -> int:
        result = await self._call("getMinimumBalanceForRentExemption", [data_len, {"commitment": self.commitment}])
        with _reading("getMinimumBalanceForRentExemption"):
            return int(result)

    async def get_balance(self, address: Pubkey) -> int:
        result = await self._call("getBalance", [str(address), {"commitment": self.commitment}])
        with _reading("getBalance"):
            return int(result["value"])

    async def request_airdrop(self, address: Pubkey, lamports: int) -> Signature:
        """Ask the node's faucet for lamports (local and test clusters only)."""
        result = await self._call("requestAirdrop", [str(address), lamports, {"commitment": self.commitment}])
        with _reading("requestAirdrop"):
            return Signature.from_string(result)

    async def close(self) -> None:
        try:
            await self.client.close()
        except TokenForgeError:
            raise
        except Exception as exc:  # noqa: BLE001 - every vendor failure is translated here
            raise translate_rpc_failure(exc, "close") from _chainable(exc)

    # ------------------------------------------------------------------ helpers
    def _reached(self, entry: dict[str, Any]) -> bool:
        level = entry.get("confirmationStatus")
        if level is None:  # nodes before 1.5.5: null confirmations means rooted
            level = "finalized" if entry.get("confirmations", 0) is None else "processed"
        return _COMMITMENT_RANK[level] >= _COMMITMENT_RANK[self.commitment]

    async def _included(self, signature: Signature) -> TxStatus | None:
        tx = await self._call(
            "getTransaction",
            [
                str(signature),
                {"encoding": "json", "maxSupportedTransactionVersion": 0, "commitment": self._history_commitment},
            ],
        )
        if tx is None:
            return None
        with _reading("getTransaction"):
            meta = tx["meta"]
            slot = int(tx["slot"])
        if meta is None:
            raise TransientError(f"the node has no status metadata for {signature}", code=ErrorCode.RPC_INCOMPLETE)
        with _reading("getTransaction"):
            text, index, custom = parse_transaction_error(meta["err"])
            return TxStatus(signature, slot, int(meta["fee"]), text, index, custom)

    async def _request(self, method: str, params: list[Any]) -> Any:
        return await self.client.send_rpc_request(JsonRpcRequest(method=method, params=params), Any)

    async def _call(self, method: str, params: list[Any]) -> Any:
        try:
            return await self._request(method, params)
        except TokenForgeError:
            raise
        except Exception as exc:  # noqa: BLE001 - every vendor failure is translated here
            raise translate_rpc_failure(exc, method) from _chainable(exc)


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


def _send_outcome(code: int, message: str, data: Any) -> SendOutcome | None:
    """The sendTransaction errors that are outcomes rather than failures."""
    name, text = _tx_error_name(data), message.lower()
    if name == "AlreadyProcessed" or "already been processed" in text:
        return SendOutcome.ALREADY_PROCESSED
    if name == "BlockhashNotFound" or "blockhash not found" in text:
        return SendOutcome.BLOCKHASH_NOT_FOUND
    return None


def _rpc_error(method: str, code: int, message: str, data: Any) -> TokenForgeError:
    shown = message[:_MESSAGE_MAX_CHARS]
    text = f"{method}: node answered {code} {shown}"
    lowered = message.lower()
    if code == _PREFLIGHT_FAILURE:
        name = _tx_error_name(data)
        if name in _TRANSIENT_TX_ERRORS:
            return TransientError(text, code=ErrorCode.RPC_BUSY)
        if name in _PAYER_CANNOT_PAY_TX_ERRORS or "insufficient funds" in lowered:
            return PermanentError(text, code=ErrorCode.INSUFFICIENT_FUNDS)
        return PermanentError(text, code=ErrorCode.TX_FAILED if name == "InstructionError" else "tx_rejected")
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
            codes = {
                "TransactionSignatureVerificationFailure": _SIGNATURE_VERIFICATION_FAILURE,
                "NoSnapshot": -32008,
                "TransactionHistoryNotAvailable": -32011,
                "TransactionSignatureLenMismatch": _SIGNATURE_LEN_MISMATCH,
            }
            label = str(error).rsplit(".", 1)[-1]
            return codes.get(label, _INTERNAL_ERROR), label, None
        data = getattr(error, "data", None)
        err = getattr(data, "err", None)
        if type(err).__name__ == "TransactionErrorInstructionError":
            data_dict: dict | None = {"err": {"InstructionError": [err.index, str(err.err)]}}
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


def _chainable(exc: BaseException) -> BaseException | None:
    """The exception to chain: not the HTTP-layer ones, whose text holds the endpoint URL."""
    if isinstance(exc, (SolanaRpcException, httpx2.HTTPError)):
        return None
    return exc


@contextlib.contextmanager
def _reading(method: str) -> Iterator[None]:
    """Turns a node answer of an unexpected shape into a TransientError."""
    try:
        yield
    except TokenForgeError:
        raise
    except Exception as exc:  # KeyError, TypeError, ValueError, solders' ParseHashError, ...
        raise TransientError(
            f"{method}: unexpected answer from the node ({type(exc).__name__}: {str(exc)[:_MESSAGE_MAX_CHARS]})",
            code=ErrorCode.RPC_BAD_RESPONSE,
        ) from exc
