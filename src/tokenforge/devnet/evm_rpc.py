"""EVM JSON-RPC of the devnet: an :class:`EmbeddedEvmChain` answering as geth and Hardhat do.

:class:`EvmRpc` takes JSON-RPC calls as they arrive over HTTP and answers them from the
embedded chain through the same eth-tester endpoint table the in-process provider uses
(:func:`~tokenforge.chains.evm.embedded_rpc.build_endpoints`), then writes the results the
way geth does: quantities as hex strings, camelCase fields, receipts with ``logsBloom``,
logs with ``removed``. Differences from eth-tester that a node client notices:

* ``eth_sendRawTransaction`` goes into the chain's mempool with geth's refusals: a pending
  duplicate is ``already known``, a mined one ``nonce too low``, a same-nonce replacement
  without 10 % higher fees ``replacement transaction underpriced``, all code -32000.
* A revert is code 3, ``execution reverted[: reason]``, with the revert bytes as ``data``;
  an unknown method is -32601 ``the method X does not exist/is not available``.
* Development methods under Hardhat's names: ``hardhat_setBalance`` (alias
  ``anvil_setBalance``; the balance is sealed in a new empty block), ``hardhat_dropTransaction``
  and ``evm_mine`` (one block, empty if nothing is executable).

Filters, snapshots and eth-tester's local accounts are not served: they are not part of
what a node offers here. A batch runs in one hop on the chain's thread, under its lock.
"""

from __future__ import annotations

import ast
import logging
import sys
from collections.abc import Callable
from typing import Any

from eth_abi import abi
from eth_abi.exceptions import DecodingError
from eth_tester.exceptions import BlockNotFound, TransactionFailed
from eth_tester.exceptions import ValidationError as TesterValidationError
from eth_utils import keccak, to_checksum_address
from web3.providers.eth_tester.middleware import (
    request_formatters,
    result_formatters,
    transaction_result_formatter,
    transaction_result_remapper,
)

import tokenforge
from tokenforge.chains.evm.embedded import EmbeddedEvmChain
from tokenforge.chains.evm.mempool import MempoolReject
from tokenforge.errors import TokenForgeError

from .jsonrpc import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    Call,
    RpcError,
    Wording,
)

log = logging.getLogger(__name__)

GETH_WORDING = Wording(parse_error="parse error", invalid_request="invalid request", empty_batch="empty batch")
SERVER_ERROR = -32000  # geth's code for refusals and failed state lookups
REVERT_ERROR = 3  # geth's code for a revert with data
_ERROR_SELECTOR = keccak(text="Error(string)")[:4]
_BLOOM_BYTES = 256

# Served through eth-tester's endpoint table (with the embedded chain's node behaviour).
_TESTER_METHODS = frozenset({
    "web3_sha3", "net_version", "net_peerCount",
    "eth_chainId", "eth_syncing", "eth_protocolVersion", "eth_accounts",
    "eth_blockNumber", "eth_getBlockByNumber", "eth_getBlockByHash",
    "eth_getBlockTransactionCountByNumber", "eth_getBlockTransactionCountByHash",
    "eth_feeHistory", "eth_maxPriorityFeePerGas", "eth_gasPrice",
    "eth_getBalance", "eth_getCode", "eth_getStorageAt", "eth_getTransactionCount",
    "eth_call", "eth_estimateGas",
    "eth_getTransactionByHash", "eth_getTransactionByBlockHashAndIndex",
    "eth_getTransactionByBlockNumberAndIndex", "eth_getTransactionReceipt", "eth_getLogs",
})


class EvmRpc:
    """The JSON-RPC endpoint of one embedded EVM chain (the chain stays owned by the caller)."""

    wording = GETH_WORDING

    def __init__(self, chain: EmbeddedEvmChain) -> None:
        self._chain = chain
        provider = chain.sync_provider
        self._tester = provider.ethereum_tester
        self._endpoints = provider.api_endpoints
        version = sys.version_info
        client = f"TokenForgeDevnet/v{tokenforge.__version__}/py-evm/python{version.major}.{version.minor}"
        self._own: dict[str, Callable[[list], Any]] = {
            "web3_clientVersion": lambda _params: client,
            "net_listening": lambda _params: True,
            "eth_sendRawTransaction": self._send_raw_transaction,
            "hardhat_setBalance": lambda params: self._set_balance(params) or True,
            "anvil_setBalance": self._set_balance,
            "hardhat_dropTransaction": self._drop_transaction,
            "evm_mine": self._mine,
        }

    async def run_calls(self, calls: list[Call]) -> list[Any]:
        try:
            return await self._chain.run(self._run_all, calls)
        except TokenForgeError as exc:  # the chain closed (shutdown)
            return [RpcError(SERVER_ERROR, exc.message)] * len(calls)

    # ------------------------------------------------------------------ dispatch (chain thread)

    def _run_all(self, calls: list[Call]) -> list[Any]:
        with self._chain.lock:
            return [self._run_one(call) for call in calls]

    def _run_one(self, call: Call) -> Any:
        try:
            if self._chain.closed:
                raise RpcError(SERVER_ERROR, "embedded chain is closed")
            if not isinstance(call.params, list):
                raise RpcError(INVALID_PARAMS, "non-array args")
            own = self._own.get(call.method)
            if own is not None:
                return own(call.params)
            if call.method in _TESTER_METHODS:
                return self._via_tester(call.method, call.params)
            raise RpcError(METHOD_NOT_FOUND, f"the method {call.method} does not exist/is not available")
        except RpcError as exc:
            return exc
        except MempoolReject as exc:
            return RpcError(SERVER_ERROR, str(exc))
        except TransactionFailed as exc:
            return _revert_error(exc)
        except BlockNotFound:
            return RpcError(SERVER_ERROR, "header not found")
        except TokenForgeError as exc:
            return RpcError(INVALID_PARAMS if exc.code in ("invalid_parameter", "already_mined") else SERVER_ERROR,
                            exc.message)
        except TesterValidationError as exc:
            if call.method == "eth_feeHistory":  # geth answers its range and percentile checks with -32000
                return RpcError(SERVER_ERROR, str(exc))
            return RpcError(INVALID_PARAMS, f"invalid argument: {exc}")
        except (ValueError, TypeError, IndexError, KeyError, AttributeError) as exc:
            return RpcError(INVALID_PARAMS, f"invalid argument: {exc}")
        except NotImplementedError as exc:
            return RpcError(SERVER_ERROR, str(exc))
        except Exception as exc:
            log.warning("devnet EVM call %s failed", call.method, exc_info=True)
            return RpcError(INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")

    def _via_tester(self, method: str, params: list) -> Any:
        if method in ("eth_call", "eth_estimateGas"):
            params = _call_params(method, params)
        elif method == "eth_getLogs" and params and isinstance(params[0], dict) and "blockHash" in params[0]:
            params = [self._block_hash_filter(params[0]), *params[1:]]
        namespace, _, name = method.partition("_")
        request_format = request_formatters.get(method)
        result = self._endpoints[namespace][name](self._tester, request_format(params) if request_format else params)
        result_format = result_formatters.get(method)
        if result_format is not None:
            result = result_format(result)
        shape = _SHAPES.get(method)
        if shape is not None and result is not None:
            result = shape(result)
        return quantities(result)

    def _block_hash_filter(self, log_filter: dict) -> dict:
        """A ``blockHash`` log filter as the block range eth-tester understands."""
        if "fromBlock" in log_filter or "toBlock" in log_filter:
            raise RpcError(INVALID_PARAMS, "invalid argument 0: cannot specify both BlockHash and FromBlock/ToBlock")
        try:
            number = self._tester.get_block_by_hash(log_filter["blockHash"])["number"]
        except BlockNotFound:
            raise RpcError(SERVER_ERROR, "unknown block") from None
        rest = {k: v for k, v in log_filter.items() if k != "blockHash"}
        return {**rest, "fromBlock": number, "toBlock": number}

    # ------------------------------------------------------------------ node and development methods

    def _send_raw_transaction(self, params: list) -> str:
        raw = _hex_bytes(params[0], 0)
        return "0x" + self._chain.admit_raw_transaction(raw, known_is_error=True).hex()

    def _set_balance(self, params: list) -> None:
        address = to_checksum_address(params[0])
        self._chain.set_balance(address, _quantity(params[1], 1))

    def _drop_transaction(self, params: list) -> bool:
        tx_hash = _hex_bytes(params[0], 0)
        if len(tx_hash) != 32:
            raise RpcError(INVALID_PARAMS, "invalid argument 0: hex string has length "
                                           f"{2 * len(tx_hash)}, want 64 for a transaction hash")
        return self._chain.drop_transaction(tx_hash)

    def _mine(self, _params: list) -> str:
        self._chain.mine_block()
        return "0x0"


# ---------------------------------------------------------------------- request and result shapes


def _hex_bytes(value: Any, index: int) -> bytes:
    if not isinstance(value, str) or not value.startswith(("0x", "0X")):
        raise RpcError(INVALID_PARAMS, f"invalid argument {index}: hex string without 0x prefix")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise RpcError(INVALID_PARAMS, f"invalid argument {index}: invalid hex string") from None


def _quantity(value: Any, index: int) -> int:
    if not isinstance(value, str) or not value.startswith(("0x", "0X")) or len(value) < 3:
        raise RpcError(INVALID_PARAMS, f"invalid argument {index}: hex string without 0x prefix")
    try:
        return int(value, 16)
    except ValueError:
        raise RpcError(INVALID_PARAMS, f"invalid argument {index}: invalid hex string") from None


def _call_params(method: str, params: list) -> list:
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
                bloom |= 1 << (int.from_bytes(digest[i:i + 2], "big") & 2047)
    return "0x" + bloom.to_bytes(_BLOOM_BYTES, "big").hex()


def _transaction(tx: Any) -> Any:
    if not isinstance(tx, dict):
        return tx  # a hash, in a block without full transactions
    tx = transaction_result_formatter(transaction_result_remapper(tx))
    if "y_parity" in tx:
        tx = {("yParity" if k == "y_parity" else k): v for k, v in tx.items()}
    return tx


def _block(block: dict) -> dict:
    block = dict(block)
    block["logsBloom"] = _bloom(block.get("logsBloom"))
    block["transactions"] = [_transaction(tx) for tx in block.get("transactions", ())]
    return block


def _receipt(receipt: dict) -> dict:
    receipt = {k: v for k, v in receipt.items() if k != "state_root"}  # pre-Byzantium field
    receipt["logs"] = _logs(receipt.get("logs", ()))
    receipt["logsBloom"] = _logs_bloom(receipt["logs"])
    return receipt


_SHAPES: dict[str, Callable[[Any], Any]] = {
    "eth_getBlockByNumber": _block,
    "eth_getBlockByHash": _block,
    "eth_getTransactionByHash": _transaction,
    "eth_getTransactionByBlockHashAndIndex": _transaction,
    "eth_getTransactionByBlockNumberAndIndex": _transaction,
    "eth_getTransactionReceipt": _receipt,
    "eth_getLogs": _logs,
    "net_version": str,
}


def _revert_error(exc: TransactionFailed) -> RpcError:
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
