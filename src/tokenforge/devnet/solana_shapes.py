"""How the devnet's Solana face writes results: an Agave node's JSON shapes and error texts.

* :func:`transaction_error_message` / :func:`preflight_error` — Agave's Display texts of
  transaction errors and its answer to a failed preflight (-32002 with the simulation);
* :func:`status_json`, :func:`account_json`, :func:`transaction_json` — the shapes of
  ``getSignatureStatuses`` entries, accounts (base58 / base64 data, ``dataSlice``) and
  ``getTransaction`` results (``json`` or encoded).

Checked against solana-py's parsers, which are solders'.
"""

from __future__ import annotations

import base64
from typing import Any

from solders.account import Account
from solders.transaction import Transaction

from .base58 import b58encode
from .jsonrpc import INVALID_PARAMS, INVALID_REQUEST, RpcError
from .solana_history import TxDetails, TxRecord

PREFLIGHT_FAILURE = -32002
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
            "accounts": None,
            "err": err,
            "innerInstructions": None,
            "loadedAccountsDataSize": 0,
            "logs": logs or [],
            "replacementBlockhash": None,
            "returnData": None,
            "unitsConsumed": units_consumed,
        },
    )


def status_json(record: TxRecord) -> dict:
    err = record.err_json
    return {
        "confirmationStatus": "finalized",
        "confirmations": None,
        "err": err,
        "slot": record.status.slot,
        "status": {"Ok": None} if err is None else {"Err": err},
    }


def account_json(account: Account | None, config: dict) -> dict | None:
    if account is None:
        return None
    data = bytes(account.data)
    data_slice = config.get("dataSlice")
    if isinstance(data_slice, dict):
        offset, length = int(data_slice.get("offset", 0)), int(data_slice.get("length", 0))
        data = data[offset : offset + length]
    encoding = config.get("encoding")
    if encoding is None or encoding == "binary":  # the legacy default: a bare base58 string
        encoded: Any = _base58_account_data(data)
    elif encoding == "base58":
        encoded = [_base58_account_data(data), "base58"]
    elif encoding in ("base64", "jsonParsed"):
        encoded = [base64.b64encode(data).decode(), "base64"]
    else:
        raise RpcError(INVALID_PARAMS, f"Invalid params: unsupported encoding `{encoding}`")
    return {
        "data": encoded,
        "executable": account.executable,
        "lamports": account.lamports,
        "owner": str(account.owner),
        "rentEpoch": account.rent_epoch,
        "space": len(account.data),
    }


def _base58_account_data(data: bytes) -> str:
    if len(data) > MAX_BASE58_ACCOUNT_BYTES:
        raise RpcError(
            INVALID_REQUEST,
            f"Encoded binary (base 58) data should be less than "
            f"{MAX_BASE58_ACCOUNT_BYTES} bytes, please use Base64 encoding.",
        )
    return b58encode(data)


def transaction_json(details: TxDetails, encoding: str) -> dict:
    record = details.record
    if encoding == "base64":
        transaction: Any = [base64.b64encode(details.raw_tx).decode(), "base64"]
    elif encoding == "base58":
        transaction = [b58encode(details.raw_tx), "base58"]
    else:
        transaction = ui_transaction(Transaction.from_bytes(details.raw_tx))
    err = record.err_json
    meta = {
        "computeUnitsConsumed": details.compute_units_consumed,
        "err": err,
        "fee": record.status.fee_lamports,
        "innerInstructions": [
            {
                "index": group.index,
                "instructions": [
                    {
                        "accounts": list(i.accounts),
                        "data": b58encode(i.data),
                        "programIdIndex": i.program_id_index,
                        "stackHeight": i.stack_height,
                    }
                    for i in group.instructions
                ],
            }
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


def ui_transaction(tx: Transaction) -> dict:
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
                {
                    "accounts": list(ix.accounts),
                    "data": b58encode(bytes(ix.data)),
                    "programIdIndex": ix.program_id_index,
                    "stackHeight": None,
                }
                for ix in message.instructions
            ],
            "recentBlockhash": str(message.recent_blockhash),
        },
        "signatures": [str(sig) for sig in tx.signatures],
    }
