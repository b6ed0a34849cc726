"""eth-tester / web3.py glue for the embedded EVM chain: it answers JSON-RPC like a node.

* :class:`IndexedBackend` — eth-tester's py-evm backend over an existing (possibly
  persisted) chain, finding transactions through py-evm's hash index instead of scanning
  every block, and answering ``eth_feeHistory`` as geth does (``blockCount + 1`` base fees,
  the last one for the next block; reward percentiles weighted by gas used).
* :func:`build_endpoints` — eth-tester's JSON-RPC table with node behaviour where it
  differs: ``eth_getLogs`` numbers logs per block (as geth does) and reads the cached
  receipts, ``eth_chainId`` and ``net_version`` are the configured id,
  ``eth_sendRawTransaction`` admits to the chain's mempool, ``pending`` nonces and
  transactions include the mempool, calls work without ``from``, ``eth_gasPrice`` is the
  next block's base fee plus the suggested tip, and a call or estimate its sender cannot
  afford is refused in geth's words (``insufficient funds for gas * price + value: address
  0x… have N want M``), not py-evm's.
* :class:`LockedProvider` (sync) and :class:`EmbeddedAsyncProvider` (``AsyncWeb3``, runs
  each request on the chain's thread) serialize access under the chain's lock and answer
  node-side refusals as JSON-RPC errors, as a real node would.

The chain is seen through :class:`NodeChain`, the few members these need (the embedded
chain provides them); ``tokenforge devnet`` serves the same table over HTTP.
"""

from __future__ import annotations

import ast
import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from functools import partial
from typing import Any, Protocol, TypeVar

from eth.chains.base import MiningChain
from eth.exceptions import TransactionNotFound as EvmTransactionNotFound
from eth_tester import EthereumTester
from eth_tester.backends.pyevm.main import PyEVMBackend
from eth_tester.backends.pyevm.serializers import (
    serialize_transaction,
    serialize_transaction_receipt,
)
from eth_tester.exceptions import TransactionNotFound as TesterTransactionNotFound
from eth_tester.exceptions import ValidationError
from eth_tester.utils.encoding import int_to_32byte_big_endian
from eth_tester.utils.filters import check_if_log_matches
from eth_typing import BlockNumber, Hash32
from eth_utils import ValidationError as EthValidationError
from eth_utils import to_canonical_address, to_checksum_address
from web3.providers.async_base import AsyncBaseProvider
from web3.providers.eth_tester import EthereumTesterProvider
from web3.providers.eth_tester.defaults import API_ENDPOINTS, call_eth_tester
from web3.providers.eth_tester.main import AsyncEthereumTesterProvider
from web3.providers.eth_tester.middleware import (
    default_transaction_fields_middleware,
    ethereum_tester_middleware,
)

from .embedded_store import base_fee_wei
from .mempool import MempoolReject, PendingTx

T = TypeVar("T")


class NodeChain(Protocol):
    """What the JSON-RPC face needs from a chain (:class:`~.embedded.EmbeddedEvmChain`)."""

    chain_id: int
    faucet_address: str
    closed: bool

    @property
    def lock(self) -> AbstractContextManager[Any]: ...

    sync_provider: LockedProvider

    @property
    def next_base_fee_wei(self) -> int: ...

    def admit_raw_transaction(self, raw: bytes, *, known_is_error: bool = False) -> bytes: ...

    def pending_nonce(self, sender: bytes) -> int: ...

    def pending_transaction(self, tx_hash: bytes) -> PendingTx | None: ...

    async def run(self, fn: Callable[..., T], *args: Any) -> T: ...


class IndexedBackend(PyEVMBackend):
    """eth-tester's py-evm backend over an already built chain, with indexed tx lookups."""

    _CACHE_BLOCKS = 16
    #: the tip ``eth_maxPriorityFeePerGas`` suggests (Hardhat's and eth-tester's default)
    SUGGESTED_TIP_WEI = 10**9
    #: geth's limit on ``eth_feeHistory``'s block count
    MAX_FEE_HISTORY_BLOCKS = 1024

    def __init__(self, chain: MiningChain) -> None:  # no genesis: the chain exists already
        self.account_keys = ()
        self.chain = chain
        # decoded (block, receipts) by number; mined blocks change only by a development revert
        self._blocks: OrderedDict[int, tuple[Any, Any]] = OrderedDict()

    def block_and_receipts(self, number: int) -> tuple[Any, Any]:
        cached = self._blocks.get(number)
        if cached is None:
            block = self.chain.get_canonical_block_by_number(BlockNumber(number))
            cached = (block, block.get_receipts(self.chain.chaindb))
            self._blocks[number] = cached
            if len(self._blocks) > self._CACHE_BLOCKS:
                self._blocks.popitem(last=False)
        return cached

    def forget_blocks(self) -> None:
        """Drops the decoded blocks (after a development revert replaced blocks)."""
        self._blocks.clear()

    def _locate(self, tx_hash: bytes) -> tuple[Any, Any, int]:
        try:
            number, index = self.chain.chaindb.get_transaction_index(Hash32(tx_hash))
        except EvmTransactionNotFound as exc:
            raise TesterTransactionNotFound(f"unknown transaction 0x{tx_hash.hex()}") from exc
        block, _ = self.block_and_receipts(number)
        return block, block.transactions[index], index

    def get_transaction_by_hash(self, transaction_hash: bytes) -> Any:
        block, tx, index = self._locate(transaction_hash)
        return serialize_transaction(block, tx, index, False)

    def get_transaction_receipt(self, transaction_hash: bytes) -> Any:
        """The receipt, its logs' ``logIndex`` counted across the block as nodes count it
        (and as ``eth_getLogs`` answers; eth-tester restarts it in every transaction)."""
        block, tx, index = self._locate(transaction_hash)
        _, receipts = self.block_and_receipts(block.number)
        receipt = serialize_transaction_receipt(block, receipts, tx, index, False, None)
        offset = sum(len(r.logs) for r in receipts[:index])
        if offset:
            receipt["logs"] = [{**entry, "log_index": entry["log_index"] + offset} for entry in receipt["logs"]]
        return receipt

    def get_fee_history(
        self, block_count: int = 1, newest_block: int | str = "latest", reward_percentiles: Sequence[float] = ()
    ) -> dict:
        """geth's ``eth_feeHistory``: base fees of ``block_count`` blocks up to ``newest_block``
        plus the next one, their gas-used ratios, and per block the effective tips at
        ``reward_percentiles`` of gas used."""
        head = self.chain.get_canonical_head().block_number
        newest: int
        if newest_block in ("latest", "pending", "safe", "finalized"):
            newest = head
        elif newest_block == "earliest":
            newest = 0
        elif isinstance(newest_block, int):
            newest = newest_block
        else:
            raise ValidationError(f"invalid block number {newest_block!r}")
        if newest > head:
            raise ValidationError(f"request beyond head block: requested {newest}, head {head}")
        percentiles = [float(p) for p in reward_percentiles or ()]
        for i, p in enumerate(percentiles):
            if not 0 <= p <= 100 or (i and p < percentiles[i - 1]):
                raise ValidationError(f"invalid reward percentile: {p}")
        if block_count < 1:
            return {"oldest_block": 0, "base_fee_per_gas": [], "gas_used_ratio": [], "reward": []}
        block_count = min(block_count, self.MAX_FEE_HISTORY_BLOCKS)
        oldest = max(0, newest - block_count + 1)
        base_fees: list[int] = []
        ratios: list[float] = []
        rewards: list[list[int]] = []
        chaindb = self.chain.chaindb
        for number in range(oldest, newest + 1):
            header = chaindb.get_canonical_block_header_by_number(BlockNumber(number))
            base_fees.append(base_fee_wei(header))
            ratios.append(header.gas_used / header.gas_limit)
            if percentiles:
                rewards.append(self._rewards(number, header, percentiles))
        if newest == head:
            base_fees.append(base_fee_wei(self.chain.header))  # the block being built
        else:
            base_fees.append(base_fee_wei(chaindb.get_canonical_block_header_by_number(BlockNumber(newest + 1))))
        result = {"oldest_block": oldest, "base_fee_per_gas": base_fees, "gas_used_ratio": ratios}
        if percentiles:
            result["reward"] = rewards
        return result

    def _rewards(self, number: int, header: Any, percentiles: list[float]) -> list[int]:
        block, receipts = self.block_and_receipts(number)
        if not block.transactions:
            return [0] * len(percentiles)
        base_fee = header.base_fee_per_gas
        used = []
        previous = 0
        for tx, receipt in zip(block.transactions, receipts, strict=True):
            max_fee = getattr(tx, "max_fee_per_gas", None)
            tip = tx.gas_price - base_fee if max_fee is None else min(tx.max_priority_fee_per_gas, max_fee - base_fee)
            used.append((tip, receipt.gas_used - previous))
            previous = receipt.gas_used
        used.sort()
        rewards = []
        i, total = 0, used[0][1]
        for p in percentiles:
            threshold = header.gas_used * p / 100
            while total < threshold and i < len(used) - 1:
                i += 1
                total += used[i][1]
            rewards.append(used[i][0])
        return rewards


class LockedProvider(EthereumTesterProvider):
    """eth-tester provider that serializes access and answers node errors as JSON-RPC errors."""

    def __init__(self, chain: NodeChain, tester: EthereumTester) -> None:
        super().__init__(tester, api_endpoints=build_endpoints(chain))
        self._chain = chain

    def make_request(self, method: Any, params: Any) -> Any:
        with self._chain.lock:
            if self._chain.closed:
                return _rpc_error(-32000, "embedded chain is closed")
            try:
                return super().make_request(method, params)
            except MempoolReject as exc:
                return _rpc_error(-32000, str(exc))
            except Exception as exc:  # noqa: BLE001 - eth-tester validation / revert: a node answers with an error
                return _rpc_error(-32000, f"{type(exc).__name__}: {exc}")


class EmbeddedAsyncProvider(AsyncBaseProvider):
    """An ``AsyncWeb3`` provider running each request on the chain's own thread (``inline``:
    on the calling thread, for :meth:`EmbeddedEvmChain.read_locked`)."""

    _middleware = (default_transaction_fields_middleware, ethereum_tester_middleware)
    request_func = AsyncEthereumTesterProvider.request_func  # adds eth-tester's formatters

    def __init__(self, chain: NodeChain, *, inline: bool = False) -> None:
        super().__init__()
        self._chain = chain
        self._inline = inline  # True: answer on the calling thread (one that holds the chain lock)

    async def make_request(self, method: Any, params: Any) -> Any:
        if self._inline:
            return self._chain.sync_provider.make_request(method, params)
        return await self._chain.run(self._chain.sync_provider.make_request, method, params)

    async def is_connected(self, show_traceback: bool = False) -> bool:
        return not self._chain.closed


def _with_default_from(delegate: Callable[..., Any], payer: str, tester: Any, params: Any) -> Any:
    tx = params[0]
    if isinstance(tx, dict) and not tx.get("from"):
        # eth-tester charges calls for gas; the faucet can afford any call
        params = [{**tx, "from": payer}, *params[1:]]
    try:
        return delegate(tester, params)
    except EthValidationError as exc:
        refusal = unaffordable(str(exc))
        if refusal is None:
            raise
        raise MempoolReject(refusal) from None


_CANNOT_AFFORD = re.compile(
    r"^Sender (b'.*'|b\".*\") cannot afford txn gas (\d+) with account balance (\d+)$", re.DOTALL
)


def unaffordable(message: str) -> str | None:
    """geth's refusal for py-evm's "Sender b'…' cannot afford txn gas N with account balance
    M" (sender as a checksummed address), or None for any other message."""
    match = _CANNOT_AFFORD.match(message)
    if match is None:
        return None
    try:
        sender = to_checksum_address(ast.literal_eval(match.group(1)))
    except (ValueError, SyntaxError):
        return None
    return f"insufficient funds for gas * price + value: address {sender} have {match.group(3)} want {match.group(2)}"


def _with_hex_topics(delegate: Callable[..., Any], tester: Any, params: Any) -> Any:
    def as_hex(topic: Any) -> Any:
        if isinstance(topic, (bytes, bytearray)):
            return "0x" + bytes(topic).hex()
        if isinstance(topic, (list, tuple)):
            return [as_hex(t) for t in topic]
        return topic

    flt = params[0]
    if isinstance(flt, dict) and flt.get("topics"):
        params = [{**flt, "topics": as_hex(flt["topics"])}, *params[1:]]
    return delegate(tester, params)


def _rpc_error(code: int, message: str) -> dict:
    return {"jsonrpc": "2.0", "id": 0, "error": {"code": code, "message": message}}


def build_endpoints(chain: NodeChain) -> dict:
    endpoints = {ns: dict(fns) for ns, fns in API_ENDPOINTS.items()}
    eth = endpoints["eth"]
    eth["chainId"] = lambda _tester, _params: chain.chain_id
    endpoints["net"]["version"] = lambda _tester, _params: str(chain.chain_id)
    eth["gasPrice"] = lambda _tester, _params: chain.next_base_fee_wei + IndexedBackend.SUGGESTED_TIP_WEI
    eth["maxPriorityFeePerGas"] = lambda _tester, _params: IndexedBackend.SUGGESTED_TIP_WEI
    eth["sendRawTransaction"] = partial(_send_raw, chain)
    eth["getTransactionCount"] = partial(_tx_count, chain, call_eth_tester("get_nonce"))
    eth["getTransactionByHash"] = partial(_tx_by_hash, chain, eth["getTransactionByHash"])
    for name in ("call", "estimateGas"):  # nodes accept calls without "from"
        eth[name] = partial(_with_default_from, eth[name], chain.faucet_address)
    eth["getLogs"] = _get_logs
    for name in ("getLogs", "newFilter"):  # eth-tester mis-reads HexBytes topics
        eth[name] = partial(_with_hex_topics, eth[name])
    return endpoints


def _get_logs(tester: Any, params: Any) -> list[dict]:
    """``eth_getLogs`` as a node answers it: ``logIndex`` counts the logs of the whole block
    (eth-tester restarts it in every transaction), and the logs are read from the decoded
    receipts (:meth:`IndexedBackend.block_and_receipts`), without recovering every
    transaction's sender as eth-tester's receipts do."""
    flt = params[0]
    fields = {k: flt.get(k) for k in ("from_block", "to_block", "address", "topics")}
    tester.validator.validate_inbound_filter_params(**fields)
    from_block, to_block, addresses, topics = tester.normalizer.normalize_inbound_filter_params(**fields)
    low = from_block if isinstance(from_block, int) else tester.get_block_by_number(from_block or "latest")["number"]
    high = to_block if isinstance(to_block, int) else tester.get_block_by_number(to_block or "latest")["number"]
    high = min(high, tester.get_block_by_number("latest")["number"])
    backend = tester.backend
    matched: list[dict] = []
    for number in range(low, high + 1):
        block, receipts = backend.block_and_receipts(number)
        log_index = 0
        for tx_index, (tx, receipt) in enumerate(zip(block.transactions, receipts, strict=True)):
            for entry in receipt.logs:
                raw = {
                    "type": "mined",
                    "log_index": log_index,
                    "transaction_index": tx_index,
                    "transaction_hash": tx.hash,
                    "block_hash": block.hash,
                    "block_number": block.number,
                    "address": entry.address,
                    "data": entry.data,
                    "topics": [int_to_32byte_big_endian(t) for t in entry.topics],
                }
                log_index += 1
                if check_if_log_matches(raw, from_block, to_block, addresses, topics):
                    matched.append(tester.normalizer.normalize_outbound_log_entry(raw))
    return matched


def _as_bytes(value: Any) -> bytes:
    return bytes.fromhex(value[2:]) if isinstance(value, str) else bytes(value)


def _send_raw(chain: NodeChain, _tester: Any, params: Any) -> str:
    return "0x" + chain.admit_raw_transaction(_as_bytes(params[0])).hex()


def _tx_count(chain: NodeChain, default: Any, tester: Any, params: Any) -> int:
    block = params[1] if len(params) > 1 else "latest"
    if block != "pending":
        return default(tester, params)
    return chain.pending_nonce(to_canonical_address(params[0]))


def _tx_by_hash(chain: NodeChain, default: Any, tester: Any, params: Any) -> Any:
    ptx = chain.pending_transaction(_as_bytes(params[0]))
    if ptx is None:
        return default(tester, params)
    raw = serialize_transaction(None, ptx.tx, 0, True)  # pending: the block is not consulted
    return tester.normalizer.normalize_outbound_transaction(raw)
