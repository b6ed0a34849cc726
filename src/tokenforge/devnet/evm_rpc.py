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
* ``eth_pendingTransactions`` lists the mempool (queued future nonces included), as
  Hardhat does.
* Development methods under Hardhat's names (:mod:`.evm_dev`): ``hardhat_setBalance``
  (alias ``anvil_setBalance``), ``hardhat_dropTransaction``, ``evm_mine``,
  ``evm_setAutomine``, ``hardhat_getAutomine``, ``evm_snapshot`` and ``evm_revert``.

Results are shaped by :mod:`.evm_shapes`. Filters and eth-tester's local
accounts are not served: they are not part of what a node offers here. A batch runs in
one hop on the chain's thread, under its lock. The chain is seen through
:class:`ServedChain`, the members this face uses.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol, TypeVar

from eth_tester.exceptions import BlockNotFound, TransactionFailed
from eth_tester.exceptions import ValidationError as TesterValidationError
from web3.providers.eth_tester.middleware import request_formatters, result_formatters
from web3.types import RPCEndpoint

import tokenforge
from tokenforge.chains.evm.mempool import MempoolReject
from tokenforge.errors import ErrorCode, TokenForgeError

from .evm_dev import DevChain, dev_methods
from .evm_shapes import SERVER_ERROR, SHAPES, call_params, hex_bytes_param, quantities, revert_error
from .jsonrpc import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    Call,
    RpcError,
    Wording,
)

T = TypeVar("T")

log = logging.getLogger(__name__)

GETH_WORDING = Wording(parse_error="parse error", invalid_request="invalid request", empty_batch="empty batch")
#: Refusals a node answers as an invalid parameter rather than a server error.
_PARAMETER_CODES = frozenset({ErrorCode.INVALID_PARAMETER, ErrorCode.ALREADY_MINED})
#: eth-tester's result formatters (web3.py types the table as optional; it is always set).
_RESULT_FORMATTERS: Mapping[RPCEndpoint, Callable[..., Any]] = result_formatters or {}

# Served through eth-tester's endpoint table (with the embedded chain's node behaviour).
_TESTER_METHODS = frozenset(
    {
        "web3_sha3",
        "net_version",
        "net_peerCount",
        "eth_chainId",
        "eth_syncing",
        "eth_protocolVersion",
        "eth_accounts",
        "eth_blockNumber",
        "eth_getBlockByNumber",
        "eth_getBlockByHash",
        "eth_getBlockTransactionCountByNumber",
        "eth_getBlockTransactionCountByHash",
        "eth_feeHistory",
        "eth_maxPriorityFeePerGas",
        "eth_gasPrice",
        "eth_getBalance",
        "eth_getCode",
        "eth_getStorageAt",
        "eth_getTransactionCount",
        "eth_call",
        "eth_estimateGas",
        "eth_getTransactionByHash",
        "eth_getTransactionByBlockHashAndIndex",
        "eth_getTransactionByBlockNumberAndIndex",
        "eth_getTransactionReceipt",
        "eth_getLogs",
    }
)


class ServedChain(DevChain, Protocol):
    """The chain members this face uses (:class:`~tokenforge.chains.evm.embedded.EmbeddedEvmChain`)."""

    closed: bool

    @property
    def lock(self) -> AbstractContextManager[Any]: ...

    sync_provider: Any  # an eth-tester provider: ``ethereum_tester``, ``api_endpoints``

    async def run(self, fn: Callable[..., T], *args: Any) -> T: ...

    def admit_raw_transaction(self, raw: bytes, *, known_is_error: bool = False) -> bytes: ...


class EvmRpc:
    """The JSON-RPC endpoint of one embedded EVM chain (the chain stays owned by the caller)."""

    wording = GETH_WORDING

    def __init__(self, chain: ServedChain) -> None:
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
            "eth_pendingTransactions": self._pending_transactions,
            **dev_methods(chain),
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
            return revert_error(exc)
        except BlockNotFound:
            return RpcError(SERVER_ERROR, "header not found")
        except TokenForgeError as exc:
            return RpcError(INVALID_PARAMS if exc.code in _PARAMETER_CODES else SERVER_ERROR, exc.message)
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
            params = call_params(method, params)
        elif method == "eth_getLogs" and params and isinstance(params[0], dict) and "blockHash" in params[0]:
            params = [self._block_hash_filter(params[0]), *params[1:]]
        namespace, _, name = method.partition("_")
        request_format = request_formatters.get(RPCEndpoint(method))
        result = self._endpoints[namespace][name](self._tester, request_format(params) if request_format else params)
        result_format = _RESULT_FORMATTERS.get(RPCEndpoint(method))
        if result_format is not None:
            result = result_format(result)
        shape = SHAPES.get(method)
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

    # ------------------------------------------------------------------ node methods

    def _send_raw_transaction(self, params: list) -> str:
        raw = hex_bytes_param(params[0], 0)
        return "0x" + self._chain.admit_raw_transaction(raw, known_is_error=True).hex()

    def _pending_transactions(self, _params: list) -> list:
        return [self._via_tester("eth_getTransactionByHash", ["0x" + ptx.hash.hex()]) for ptx in self._chain.mempool]
