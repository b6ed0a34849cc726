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
refused; token balances in ``getTransaction`` metadata are empty lists. A batch runs in one
hop on the chain's own thread.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

from solders.account import Account
from solders.hash import Hash
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import Transaction

from tokenforge.chains.solana.embedded import (
    BLOCKHASH_VALID_SLOTS,
    EmbeddedSolanaChain,
    EmbeddedTransport,
    TransactionRejected,
    TxDetails,
    TxRecord,
)
from tokenforge.chains.solana.transport import SendOutcome
from tokenforge.errors import PermanentError, TokenForgeError

from .base58 import b58decode, b58encode
from .jsonrpc import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    Call,
    RpcError,
    Wording,
)

log = logging.getLogger(__name__)

AGAVE_WORDING = Wording(parse_error="Parse error", invalid_request="Invalid request", empty_batch="Invalid request")
#: the Agave release whose JSON shapes the devnet follows (``getVersion``, ``context.apiVersion``)
API_VERSION = "2.2.0"
FEATURE_SET = 3_294_202_862
PREFLIGHT_FAILURE = -32002
SIGNATURE_VERIFICATION_FAILURE = -32003
SERVER_ERROR = -32000
MAX_SIGNATURE_STATUSES = 256
MAX_MULTIPLE_ACCOUNTS = 100
MAX_SIGNATURES_FOR_ADDRESS = 1000
PACKET_DATA_SIZE = 1232
MAX_BASE58_ACCOUNT_BYTES = 128

# Agave's Display texts of transaction and instruction errors (the rest print their name).
_TX_ERROR_TEXT = {
    "AccountInUse": "Account in use",
    "AccountLoadedTwice": "Account loaded twice",
    "AccountNotFound": "Attempt to debit an account but found no record of a prior credit.",
    "ProgramAccountNotFound": "Attempt to load a program that does not exist",
    "InsufficientFundsForFee": "Insufficient funds for fee",
    "InvalidAccountForFee": "This account may not be used to pay transaction fees",
    "AlreadyProcessed": "This transaction has already been processed",
    "BlockhashNotFound": "Blockhash not found",
    "CallChainTooDeep": "Loader call chain is too deep",
    "MissingSignatureForFee": "Transaction requires a fee but has no signature present",
    "InvalidAccountIndex": "Transaction contains an invalid account reference",
    "SignatureFailure": "Transaction did not pass signature verification",
    "InvalidProgramForExecution": "This program may not be used for executing instructions",
    "SanitizeFailure": "Transaction failed to sanitize accounts offsets correctly",
    "UnbalancedTransaction": "Sum of account balances before and after transaction do not match",
}
_INSTRUCTION_ERROR_TEXT = {
    "GenericError": "generic instruction error",
    "InvalidArgument": "invalid program argument",
    "InvalidInstructionData": "invalid instruction data",
    "InvalidAccountData": "invalid account data for instruction",
    "AccountDataTooSmall": "account data too small for instruction",
    "InsufficientFunds": "insufficient funds for instruction",
    "IncorrectProgramId": "incorrect program id for instruction",
    "MissingRequiredSignature": "missing required signature for instruction",
    "AccountAlreadyInitialized": "instruction requires an uninitialized account",
    "UninitializedAccount": "instruction requires an initialized account",
    "AccountNotRentExempt": "An account does not have enough lamports to be rent-exempt",
    "InvalidSeeds": "Provided seeds do not result in a valid address",
    "ComputationalBudgetExceeded": "Computational budget exceeded",
    "PrivilegeEscalation": "Cross-program invocation with unauthorized signer or writable account",
}


def transaction_error_message(err: Any) -> str:
    """Agave's text for a transaction error given in RPC JSON form."""
    if isinstance(err, str):
        return _TX_ERROR_TEXT.get(err, err)
    if isinstance(err, dict) and "InstructionError" in err:
        index, inner = err["InstructionError"]
        if isinstance(inner, dict) and "Custom" in inner:
            text = f"custom program error: {inner['Custom']:#x}"
        elif isinstance(inner, str):
            text = _INSTRUCTION_ERROR_TEXT.get(inner, inner)
        else:
            text = str(inner)
        return f"Error processing Instruction {index}: {text}"
    if isinstance(err, dict) and "InsufficientFundsForRent" in err:
        index = err["InsufficientFundsForRent"].get("account_index")
        return f"Transaction results in an account ({index}) with insufficient funds for rent"
    if isinstance(err, dict) and "DuplicateInstruction" in err:
        return f"Transaction contains a duplicate instruction ({err['DuplicateInstruction']}) that is not allowed"
    return str(err)


def preflight_error(err: Any, logs: list[str] | None = None, units_consumed: int = 0) -> RpcError:
    """A node's answer to a ``sendTransaction`` whose preflight simulation failed."""
    return RpcError(
        PREFLIGHT_FAILURE,
        f"Transaction simulation failed: {transaction_error_message(err)}",
        {
            "accounts": None, "err": err, "innerInstructions": None, "loadedAccountsDataSize": 0,
            "logs": logs or [], "replacementBlockhash": None, "returnData": None, "unitsConsumed": units_consumed,
        },
    )


class SolanaRpc:
    """The JSON-RPC endpoint of the embedded Solana chain; calls run on ``transport``'s thread."""

    wording = AGAVE_WORDING

    def __init__(self, chain: EmbeddedSolanaChain, transport: EmbeddedTransport) -> None:
        self._chain = chain
        self._transport = transport
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
        return {"context": {"apiVersion": API_VERSION, "slot": self._chain.slot() if slot is None else slot},
                "value": value}

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
        records = self._chain.transaction_records(signatures)
        return self._with_context([None if r is None else _status_json(r) for r in records])

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
        details = self._chain.transaction_details(signature)
        if details is None:
            return None
        result = _transaction_json(details, encoding)
        if config.get("maxSupportedTransactionVersion") is not None:
            result["version"] = "legacy"
        return result

    def _account_info(self, params: list) -> dict:
        config = _config(params, 1)
        return self._with_context(_account_json(self._chain.get_raw_account(_pubkey(params, 0)), config))

    def _multiple_accounts(self, params: list) -> dict:
        texts = params[0] if params and isinstance(params[0], list) else None
        if texts is None:
            raise RpcError(INVALID_PARAMS, "Invalid params: expected an array of addresses")
        if len(texts) > MAX_MULTIPLE_ACCOUNTS:
            raise RpcError(INVALID_PARAMS, f"Too many inputs provided; max {MAX_MULTIPLE_ACCOUNTS}")
        config = _config(params, 1)
        keys = [_pubkey([text], 0) for text in texts]
        return self._with_context([_account_json(self._chain.get_raw_account(key), config) for key in keys])

    def _signatures_for_address(self, params: list) -> list[dict]:
        address = _pubkey(params, 0)
        config = _config(params, 1)
        limit = config.get("limit") or MAX_SIGNATURES_FOR_ADDRESS
        if not isinstance(limit, int) or not 1 <= limit <= MAX_SIGNATURES_FOR_ADDRESS:
            raise RpcError(INVALID_PARAMS, f"Invalid limit; max {MAX_SIGNATURES_FOR_ADDRESS}")
        before = _signature(config["before"]) if config.get("before") else None
        until = _signature(config["until"]) if config.get("until") else None
        records = self._chain.recent_transaction_records(address, limit=limit, before=before, until=until)
        return [
            {"blockTime": r.block_time_s, "confirmationStatus": "finalized", "err": r.err_json, "memo": None,
             "signature": str(r.status.signature), "slot": r.status.slot}
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
    if len(params) <= index or not isinstance(params[index], int) or isinstance(params[index], bool) or params[index] < 0:
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
        raise RpcError(INVALID_PARAMS, f"{encoding} encoded solana_transaction::Transaction too large: "
                                       f"{len(raw)} bytes (max: {PACKET_DATA_SIZE} bytes)")
    return raw


# ---------------------------------------------------------------------- results


def _status_json(record: TxRecord) -> dict:
    err = record.err_json
    return {"confirmationStatus": "finalized", "confirmations": None, "err": err,
            "slot": record.status.slot, "status": {"Ok": None} if err is None else {"Err": err}}


def _account_json(account: Account | None, config: dict) -> dict | None:
    if account is None:
        return None
    data = bytes(account.data)
    data_slice = config.get("dataSlice")
    if isinstance(data_slice, dict):
        offset, length = int(data_slice.get("offset", 0)), int(data_slice.get("length", 0))
        data = data[offset:offset + length]
    encoding = config.get("encoding")
    if encoding is None or encoding == "binary":  # the legacy default: a bare base58 string
        encoded: Any = _base58_account_data(data)
    elif encoding == "base58":
        encoded = [_base58_account_data(data), "base58"]
    elif encoding in ("base64", "jsonParsed"):
        encoded = [base64.b64encode(data).decode(), "base64"]
    else:
        raise RpcError(INVALID_PARAMS, f"Invalid params: unsupported encoding `{encoding}`")
    return {"data": encoded, "executable": account.executable, "lamports": account.lamports,
            "owner": str(account.owner), "rentEpoch": account.rent_epoch, "space": len(account.data)}


def _base58_account_data(data: bytes) -> str:
    if len(data) > MAX_BASE58_ACCOUNT_BYTES:
        raise RpcError(INVALID_REQUEST, f"Encoded binary (base 58) data should be less than "
                                        f"{MAX_BASE58_ACCOUNT_BYTES} bytes, please use Base64 encoding.")
    return b58encode(data)


def _transaction_json(details: TxDetails, encoding: str) -> dict:
    record = details.record
    if encoding == "base64":
        transaction: Any = [base64.b64encode(details.raw_tx).decode(), "base64"]
    elif encoding == "base58":
        transaction = [b58encode(details.raw_tx), "base58"]
    else:
        transaction = _ui_transaction(Transaction.from_bytes(details.raw_tx))
    err = record.err_json
    meta = {
        "computeUnitsConsumed": details.compute_units_consumed,
        "err": err,
        "fee": record.status.fee_lamports,
        "innerInstructions": [
            {"index": group.index, "instructions": [
                {"accounts": list(i.accounts), "data": b58encode(i.data), "programIdIndex": i.program_id_index,
                 "stackHeight": i.stack_height}
                for i in group.instructions
            ]}
            for group in details.inner_instructions
        ],
        "loadedAddresses": {"readonly": [], "writable": []},
        "logMessages": details.logs,
        "postBalances": details.post_balances,
        "postTokenBalances": [],
        "preBalances": details.pre_balances,
        "preTokenBalances": [],
        "rewards": [],
        "status": {"Ok": None} if err is None else {"Err": err},
    }
    return {"blockTime": record.block_time_s, "meta": meta, "slot": record.status.slot, "transaction": transaction}


def _ui_transaction(tx: Transaction) -> dict:
    message = tx.message
    header = message.header
    return {
        "message": {
            "accountKeys": [str(key) for key in message.account_keys],
            "header": {
                "numReadonlySignedAccounts": header.num_readonly_signed_accounts,
                "numReadonlyUnsignedAccounts": header.num_readonly_unsigned_accounts,
                "numRequiredSignatures": header.num_required_signatures,
            },
            "instructions": [
                {"accounts": list(ix.accounts), "data": b58encode(bytes(ix.data)),
                 "programIdIndex": ix.program_id_index, "stackHeight": None}
                for ix in message.instructions
            ],
            "recentBlockhash": str(message.recent_blockhash),
        },
        "signatures": [str(sig) for sig in tx.signatures],
    }
