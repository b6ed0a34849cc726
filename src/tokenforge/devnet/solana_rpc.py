"""Solana JSON-RPC of the devnet: an :class:`EmbeddedSolanaChain` answering as an Agave node does.

:class:`SolanaRpc` answers the methods a client needs to launch and follow transactions,
in the JSON shapes of a real node (checked against solana-py's parsers, which are solders'):
``getHealth``, ``getVersion``, ``getGenesisHash``, ``getSlot``, ``getBlockHeight``,
``getLatestBlockhash``, ``isBlockhashValid``, ``sendTransaction``, ``getSignatureStatuses``,
``getTransaction``, ``getAccountInfo``, ``getMultipleAccounts``, ``getBalance``,
``getMinimumBalanceForRentExemption``, ``getSignaturesForAddress`` and ``requestAirdrop``.

Node behaviour kept:

* ``sendTransaction`` with preflight (the default) simulates first and refuses what would
  fail with code -32002 ``Transaction simulation failed: <error>`` and the simulation in
  ``data`` - also an expired or unknown blockhash (``Blockhash not found``) and an already
  processed signature (``This transaction has already been processed``). With
  ``skipPreflight`` a node only forwards: the signature is answered in every case, and a
  transaction that cannot be included (expired blockhash, unfunded payer) never lands.
* The devnet finalizes at once: every included transaction is reported ``finalized`` with
  ``confirmations: null``, for any commitment.

Limits: legacy transactions only (no v0 messages / lookup tables); ``jsonParsed`` is
answered as ``json`` (instructions) or ``base64`` (account data); ``base64+zstd`` is
refused; token balances in ``getTransaction`` metadata are empty lists; ``getTransaction``
knows the transactions included while the devnet served the chain
(:mod:`.solana_history`). Results are shaped by :mod:`.solana_shapes`. A batch runs in one
hop on the chain's own thread. The chain is seen through :class:`ServedChain`, the members
this face uses.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from solders.account import Account
from solders.hash import Hash
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import Transaction

from tokenforge.chains.solana.embedded import BLOCKHASH_VALID_SLOTS, TransactionRejected
from tokenforge.chains.solana.transport import SendOutcome
from tokenforge.errors import PermanentError, TokenForgeError

from .base58 import b58decode
from .jsonrpc import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    Call,
    RpcError,
    Wording,
)
from .solana_history import HistoryChain, TransactionHistory
from .solana_shapes import account_json, preflight_error, status_json, transaction_json

T = TypeVar("T")

log = logging.getLogger(__name__)

AGAVE_WORDING = Wording(parse_error="Parse error", invalid_request="Invalid request", empty_batch="Invalid request")
#: the Agave release whose JSON shapes the devnet follows (``getVersion``, ``context.apiVersion``)
API_VERSION = "2.2.0"
FEATURE_SET = 3_294_202_862
SIGNATURE_VERIFICATION_FAILURE = -32003
SERVER_ERROR = -32000
MAX_SIGNATURE_STATUSES = 256
MAX_MULTIPLE_ACCOUNTS = 100
MAX_SIGNATURES_FOR_ADDRESS = 1000
PACKET_DATA_SIZE = 1232


class ServedChain(HistoryChain, Protocol):
    """The chain members this face uses (:class:`~tokenforge.chains.solana.embedded.EmbeddedSolanaChain`)."""

    def genesis_hash(self) -> Hash: ...

    def slot(self) -> int: ...

    def block_height(self) -> int: ...

    def latest_blockhash(self) -> tuple[Hash, int]: ...

    def is_blockhash_valid(self, blockhash: Hash) -> bool: ...

    def send_raw_transaction(self, raw_tx: bytes, *, preflight: bool = False) -> SendOutcome: ...

    def get_raw_account(self, address: Pubkey) -> Account | None: ...

    def get_balance(self, address: Pubkey) -> int: ...

    def minimum_balance_for_rent_exemption(self, data_len: int) -> int: ...

    def airdrop(self, address: Pubkey, lamports: int) -> Signature: ...


class ChainThread(Protocol):
    """Where the chain's calls run (:class:`~tokenforge.chains.solana.embedded_transport.EmbeddedTransport`)."""

    async def run(self, fn: Callable[..., T], *args: object) -> T: ...


class SolanaRpc:
    """The JSON-RPC endpoint of the embedded Solana chain; calls run on ``thread``.

    It keeps the details of every transaction included from now on
    (:class:`~.solana_history.TransactionHistory`) to answer ``getTransaction``."""

    wording = AGAVE_WORDING

    def __init__(self, chain: ServedChain, thread: ChainThread) -> None:
        self._chain = chain
        self._transport = thread
        self._history = TransactionHistory(chain)
        self._methods = {
            "getHealth": lambda _p: "ok",
            "getVersion": lambda _p: {"feature-set": FEATURE_SET, "solana-core": API_VERSION},
            "getGenesisHash": lambda _p: str(chain.genesis_hash()),
            "getSlot": lambda _p: chain.slot(),
            "getBlockHeight": lambda _p: chain.block_height(),
            "getLatestBlockhash": self._latest_blockhash,
            "isBlockhashValid": self._is_blockhash_valid,
            "sendTransaction": self._send_transaction,
            "getSignatureStatuses": self._signature_statuses,
            "getTransaction": self._transaction,
            "getAccountInfo": self._account_info,
            "getMultipleAccounts": self._multiple_accounts,
            "getBalance": lambda p: self._with_context(chain.get_balance(_pubkey(p, 0))),
            "getMinimumBalanceForRentExemption": lambda p: chain.minimum_balance_for_rent_exemption(_int(p, 0)),
            "getSignaturesForAddress": self._signatures_for_address,
            "requestAirdrop": self._request_airdrop,
        }

    async def run_calls(self, calls: list[Call]) -> list[Any]:
        try:
            return await self._transport.run(self._run_all, calls)
        except TokenForgeError as exc:  # the chain closed (shutdown)
            return [RpcError(SERVER_ERROR, exc.message)] * len(calls)

    # ------------------------------------------------------------------ dispatch (chain thread)

    def _run_all(self, calls: list[Call]) -> list[Any]:
        return [self._run_one(call) for call in calls]

    def _run_one(self, call: Call) -> Any:
        method = self._methods.get(call.method)
        if method is None:
            return RpcError(METHOD_NOT_FOUND, "Method not found")
        if not isinstance(call.params, list):
            return RpcError(INVALID_PARAMS, "Invalid params: expected an array of parameters")
        try:
            return method(call.params)
        except RpcError as exc:
            return exc
        except PermanentError as exc:
            return RpcError(INVALID_PARAMS, f"Invalid params: {exc.message}")
        except TokenForgeError as exc:
            return RpcError(SERVER_ERROR, exc.message)
        except Exception as exc:
            log.warning("devnet Solana call %s failed", call.method, exc_info=True)
            return RpcError(INTERNAL_ERROR, f"Internal error: {type(exc).__name__}: {exc}")

    def _with_context(self, value: Any, slot: int | None = None) -> dict:
        return {
            "context": {"apiVersion": API_VERSION, "slot": self._chain.slot() if slot is None else slot},
            "value": value,
        }

    # ------------------------------------------------------------------ methods

    def _latest_blockhash(self, _params: list) -> dict:
        blockhash, last_valid_block_height = self._chain.latest_blockhash()
        value = {"blockhash": str(blockhash), "lastValidBlockHeight": last_valid_block_height}
        return self._with_context(value, last_valid_block_height - BLOCKHASH_VALID_SLOTS)

    def _is_blockhash_valid(self, params: list) -> dict:
        try:
            blockhash = Hash.from_string(_str(params, 0))
        except ValueError:
            raise RpcError(INVALID_PARAMS, "Invalid param: Invalid") from None
        return self._with_context(self._chain.is_blockhash_valid(blockhash))

    def _send_transaction(self, params: list) -> str:
        config = _config(params, 1)
        raw = _decode_wire(_str(params, 0), config.get("encoding") or "base58")
        try:
            signature = Transaction.from_bytes(raw).signatures[0]
        except (ValueError, IndexError) as exc:
            raise RpcError(INVALID_PARAMS, f"failed to deserialize solana_transaction::Transaction: {exc}") from None
        preflight = not config.get("skipPreflight", False)
        try:
            outcome = self._chain.send_raw_transaction(raw, preflight=preflight)
        except TransactionRejected as exc:
            if not preflight:
                return str(signature)  # forwarded; the leader drops it and it never lands
            if exc.err_json == "SignatureFailure":
                raise RpcError(SIGNATURE_VERIFICATION_FAILURE, "Transaction signature verification failure") from None
            raise preflight_error(exc.err_json, exc.logs, exc.units_consumed) from None
        if preflight and outcome is SendOutcome.ALREADY_PROCESSED:
            raise preflight_error("AlreadyProcessed")
        if preflight and outcome is SendOutcome.BLOCKHASH_NOT_FOUND:
            raise preflight_error("BlockhashNotFound")
        return str(signature)

    def _signature_statuses(self, params: list) -> dict:
        texts = params[0] if params and isinstance(params[0], list) else None
        if texts is None:
            raise RpcError(INVALID_PARAMS, "Invalid params: expected an array of signatures")
        if len(texts) > MAX_SIGNATURE_STATUSES:
            raise RpcError(INVALID_PARAMS, f"Too many inputs provided; max {MAX_SIGNATURE_STATUSES}")
        signatures = [_signature(text) for text in texts]
        records = self._history.records(signatures)
        return self._with_context([None if r is None else status_json(r) for r in records])

    def _transaction(self, params: list) -> dict | None:
        signature = _signature(_str(params, 0))
        config = params[1] if len(params) > 1 else None
        if isinstance(config, str):
            config = {"encoding": config}
        config = config or {}
        if not isinstance(config, dict):
            raise RpcError(INVALID_PARAMS, "Invalid params: invalid configuration")
        if config.get("commitment") == "processed":
            raise RpcError(INVALID_PARAMS, "Method does not support commitment below `confirmed`")
        encoding = config.get("encoding") or "json"
        if encoding not in ("json", "jsonParsed", "base64", "base58"):
            raise RpcError(INVALID_PARAMS, f"Invalid params: unknown variant `{encoding}`")
        details = self._history.details(signature)
        if details is None:
            return None
        result = transaction_json(details, encoding)
        if config.get("maxSupportedTransactionVersion") is not None:
            result["version"] = "legacy"
        return result

    def _account_info(self, params: list) -> dict:
        config = _config(params, 1)
        return self._with_context(account_json(self._chain.get_raw_account(_pubkey(params, 0)), config))

    def _multiple_accounts(self, params: list) -> dict:
        texts = params[0] if params and isinstance(params[0], list) else None
        if texts is None:
            raise RpcError(INVALID_PARAMS, "Invalid params: expected an array of addresses")
        if len(texts) > MAX_MULTIPLE_ACCOUNTS:
            raise RpcError(INVALID_PARAMS, f"Too many inputs provided; max {MAX_MULTIPLE_ACCOUNTS}")
        config = _config(params, 1)
        keys = [_pubkey([text], 0) for text in texts]
        return self._with_context([account_json(self._chain.get_raw_account(key), config) for key in keys])

    def _signatures_for_address(self, params: list) -> list[dict]:
        address = _pubkey(params, 0)
        config = _config(params, 1)
        limit = config.get("limit") or MAX_SIGNATURES_FOR_ADDRESS
        if not isinstance(limit, int) or not 1 <= limit <= MAX_SIGNATURES_FOR_ADDRESS:
            raise RpcError(INVALID_PARAMS, f"Invalid limit; max {MAX_SIGNATURES_FOR_ADDRESS}")
        before = _signature(config["before"]) if config.get("before") else None
        until = _signature(config["until"]) if config.get("until") else None
        records = self._history.recent_records(address, limit=limit, before=before, until=until)
        return [
            {
                "blockTime": r.block_time_s,
                "confirmationStatus": "finalized",
                "err": r.err_json,
                "memo": None,
                "signature": str(r.status.signature),
                "slot": r.status.slot,
            }
            for r in records
        ]

    def _request_airdrop(self, params: list) -> str:
        address = _pubkey(params, 0)
        lamports = _int(params, 1)
        return str(self._chain.airdrop(address, lamports))


# ---------------------------------------------------------------------- parameters


def _str(params: list, index: int) -> str:
    if len(params) <= index or not isinstance(params[index], str):
        raise RpcError(INVALID_PARAMS, f"Invalid params: expected a string at position {index}")
    return params[index]


def _int(params: list, index: int) -> int:
    if (
        len(params) <= index
        or not isinstance(params[index], int)
        or isinstance(params[index], bool)
        or params[index] < 0
    ):
        raise RpcError(INVALID_PARAMS, f"Invalid params: expected an unsigned integer at position {index}")
    return params[index]


def _config(params: list, index: int) -> dict:
    config = params[index] if len(params) > index else None
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise RpcError(INVALID_PARAMS, "Invalid params: invalid configuration")
    return config


def _pubkey(params: list, index: int) -> Pubkey:
    try:
        return Pubkey.from_string(_str(params, index))
    except ValueError:
        raise RpcError(INVALID_PARAMS, "Invalid param: Invalid") from None


def _signature(text: Any) -> Signature:
    try:
        return Signature.from_string(text)
    except (ValueError, TypeError):
        raise RpcError(INVALID_PARAMS, "Invalid param: Invalid") from None


def _decode_wire(text: str, encoding: str) -> bytes:
    if encoding == "base64":
        try:
            raw = base64.b64decode(text, validate=True)
        except ValueError as exc:
            raise RpcError(INVALID_PARAMS, f"invalid base64 encoding: {exc}") from None
    elif encoding == "base58":
        try:
            raw = b58decode(text)
        except ValueError as exc:
            raise RpcError(INVALID_PARAMS, f"invalid base58 encoding: {exc}") from None
    else:
        raise RpcError(INVALID_PARAMS, f"unsupported encoding: {encoding}. Supported encodings: base58, base64")
    if len(raw) > PACKET_DATA_SIZE:
        raise RpcError(
            INVALID_PARAMS,
            f"{encoding} encoded solana_transaction::Transaction too large: "
            f"{len(raw)} bytes (max: {PACKET_DATA_SIZE} bytes)",
        )
    return raw
