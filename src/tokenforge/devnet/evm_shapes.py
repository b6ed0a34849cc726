"""How the devnet's EVM face reads parameters and writes results: geth's JSON shapes.

eth-tester hands back Python values in its own field names; :data:`SHAPES` (per method)
and :func:`quantities` write them as geth does: quantities as hex strings, camelCase fields,
receipts with ``logsBloom``, logs with ``removed``, transactions with ``yParity``.
:func:`revert_error` is geth's answer to a reverted call. Parameter readers raise
:class:`~.jsonrpc.RpcError` -32602 in geth's words.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import Any

from eth_abi import abi
from eth_abi.exceptions import DecodingError
from eth_tester.exceptions import TransactionFailed
from eth_utils import keccak
from web3.providers.eth_tester.middleware import transaction_result_formatter, transaction_result_remapper

from .jsonrpc import INVALID_PARAMS, RpcError

SERVER_ERROR = -32000  # geth's code for refusals and failed state lookups
REVERT_ERROR = 3  # geth's code for a revert with data
_ERROR_SELECTOR = keccak(text="Error(string)")[:4]
_BLOOM_BYTES = 256


def hex_bytes_param(value: Any, index: int) -> bytes:
    """A ``0x`` hex parameter as bytes; RpcError -32602 in geth's words otherwise."""
    if not isinstance(value, str) or not value.startswith(("0x", "0X")):
        raise RpcError(INVALID_PARAMS, f"invalid argument {index}: hex string without 0x prefix")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise RpcError(INVALID_PARAMS, f"invalid argument {index}: invalid hex string") from None


def quantity_param(value: Any, index: int) -> int:
    """A ``0x`` quantity parameter as an integer; RpcError -32602 in geth's words otherwise."""
    if not isinstance(value, str) or not value.startswith(("0x", "0X")) or len(value) < 3:
        raise RpcError(INVALID_PARAMS, f"invalid argument {index}: hex string without 0x prefix")
    try:
        return int(value, 16)
    except ValueError:
        raise RpcError(INVALID_PARAMS, f"invalid argument {index}: invalid hex string") from None


def call_params(method: str, params: list) -> list:
    """Node clients' call objects as eth-tester reads them: ``input`` is ``data``; estimates
    are made at ``latest`` (eth-tester cannot estimate against ``pending``)."""
    if not params or not isinstance(params[0], dict):
        raise RpcError(INVALID_PARAMS, "missing value for required argument 0")
    tx = dict(params[0])
    if "input" in tx:
        data = tx.pop("input")
        tx.setdefault("data", data)
    rest = list(params[1:])
    if method == "eth_estimateGas" and rest and rest[0] == "pending":
        rest[0] = "latest"
    if method == "eth_call" and not rest:
        rest = ["latest"]
    return [tx, *rest]


def quantities(value: Any) -> Any:
    """eth-tester's Python values as JSON-RPC writes them: integers as hex quantities, bytes as hex."""
    if value is None or isinstance(value, (bool, str, float)):
        return value
    if isinstance(value, int):
        return hex(value)
    if isinstance(value, dict):
        return {k: quantities(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [quantities(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    return value


def _bloom(value: Any) -> Any:
    return "0x" + value.to_bytes(_BLOOM_BYTES, "big").hex() if isinstance(value, int) else value


def _log(entry: dict) -> dict:
    entry = {k: v for k, v in entry.items() if k != "type"}
    entry["removed"] = False
    return entry


def _logs(result: list) -> list:
    return [_log(entry) for entry in result]


def _logs_bloom(logs: list[dict]) -> str:
    """The 2048-bit bloom filter of ``logs`` (yellow paper: 3 bits per address and topic)."""
    bloom = 0
    for entry in logs:
        for item in (entry["address"], *entry.get("topics", ())):
            digest = keccak(bytes.fromhex(item[2:]))
            for i in (0, 2, 4):
                bloom |= 1 << (int.from_bytes(digest[i : i + 2], "big") & 2047)
    return "0x" + bloom.to_bytes(_BLOOM_BYTES, "big").hex()


def transaction_shape(tx: Any) -> Any:
    """A transaction object as geth writes it (``yParity``, no eth-tester field names)."""
    if not isinstance(tx, dict):
        return tx  # a hash, in a block without full transactions
    tx = transaction_result_formatter(transaction_result_remapper(tx))
    if "y_parity" in tx:
        tx = {("yParity" if k == "y_parity" else k): v for k, v in tx.items()}
    return tx


def _block(block: dict) -> dict:
    block = dict(block)
    block["logsBloom"] = _bloom(block.get("logsBloom"))
    block["transactions"] = [transaction_shape(tx) for tx in block.get("transactions", ())]
    return block


def _receipt(receipt: dict) -> dict:
    receipt = {k: v for k, v in receipt.items() if k != "state_root"}  # pre-Byzantium field
    receipt["logs"] = _logs(receipt.get("logs", ()))
    receipt["logsBloom"] = _logs_bloom(receipt["logs"])
    return receipt


SHAPES: dict[str, Callable[[Any], Any]] = {
    "eth_getBlockByNumber": _block,
    "eth_getBlockByHash": _block,
    "eth_getTransactionByHash": transaction_shape,
    "eth_getTransactionByBlockHashAndIndex": transaction_shape,
    "eth_getTransactionByBlockNumberAndIndex": transaction_shape,
    "eth_getTransactionReceipt": _receipt,
    "eth_getLogs": _logs,
    "net_version": str,
}


def revert_error(exc: TransactionFailed) -> RpcError:
    """geth's answer to a reverted call: code 3, the reason if it is an ``Error(string)``,
    the revert bytes as ``data``; a revert without data is -32000 ``execution reverted``."""
    arg: Any = exc.args[0] if exc.args else b""
    if isinstance(arg, Exception):
        arg = arg.args[0] if arg.args else b""
    if isinstance(arg, str) and arg.startswith(("b'", 'b"')):
        try:
            arg = ast.literal_eval(arg)  # eth-tester hands non-string reverts over as repr(bytes)
        except (ValueError, SyntaxError):
            pass
    if isinstance(arg, str):
        reason: str | None = arg
        data = _ERROR_SELECTOR + abi.encode(["string"], [arg])
    else:
        data = bytes(arg)
        reason = None
        if data[:4] == _ERROR_SELECTOR:
            try:
                reason = abi.decode(["string"], data[4:])[0]
            except DecodingError:
                reason = None
    if not data:
        return RpcError(SERVER_ERROR, "execution reverted")
    message = f"execution reverted: {reason}" if reason else "execution reverted"
    return RpcError(REVERT_ERROR, message, "0x" + data.hex())
