"""The EVM log source of the market indexer: ``eth_getLogs`` → :mod:`tokenforge.market.events`.

:class:`EvmLogSource` implements :class:`~tokenforge.market.indexer.ports.LogSource` for one
EVM chain and one TokenForge factory. :meth:`~EvmLogSource.fetch` of a block range makes:

1. one ``eth_getLogs`` with ``topics=[[TokenCreated, Trade, Graduated]]`` over the range
   (no address filter: curves are clones, and the range may create new ones). Only the
   factory's ``TokenCreated`` and the ``Trade``/``Graduated`` of known curves (including
   curves created earlier in the same range) are kept; anyone can emit those topics;
2. ``eth_getLogs`` of ERC-20 ``Transfer`` with ``address=[known tokens]``, the address list
   in chunks of :data:`ADDRESS_CHUNK`;
3. the headers of every block that has records and of ``to_block`` (timestamps, parent
   hashes). A log whose ``blockHash`` differs from its block's header, or a ``to_block``
   whose hash differs from the one read before the logs (its hash commits to every block
   below it), means the chain changed between the reads: TransientError
   ``rpc_incomplete``, the caller reads again.

Records come out in chain order (block, then log index). Decoding reads the ABI words
with ``eth_abi`` directly (no web3 contract event machinery); it is a few microseconds a log.
Every vendor error leaves as a TokenForge error (:mod:`tokenforge.chains.evm.rpc_errors`).
Addresses are EIP-55 checksummed; hashes 0x-prefixed lowercase hex.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from eth_abi import decode as abi_decode
from eth_utils import keccak, to_checksum_address
from web3.exceptions import BlockNotFound

from tokenforge.chains.evm import codec
from tokenforge.chains.evm.node import EvmNode, checksummed
from tokenforge.chains.evm.rpc_errors import translating
from tokenforge.errors import ErrorCode, TokenForgeError, TransientError
from tokenforge.market.events import (
    Batch,
    BlockRef,
    Graduated,
    Launched,
    MarketRecord,
    Position,
    Traded,
    Transferred,
)
from tokenforge.market.indexer.runner import StepRead, read_step

if TYPE_CHECKING:
    from tokenforge.chains.evm.embedded import EmbeddedEvmChain

log = logging.getLogger(__name__)

TRADE_TOPIC = keccak(text="Trade(address,bool,uint256,uint256,uint256,uint256,uint256)")
GRADUATED_TOPIC = keccak(text="Graduated(address,uint256,uint256,uint256,uint256)")
TRANSFER_TOPIC = keccak(text="Transfer(address,address,uint256)")
TOKEN_CREATED_TOPIC = codec.TOKEN_CREATED_TOPIC
#: Token addresses per ``Transfer`` ``eth_getLogs`` call.
ADDRESS_CHUNK = 500
#: Header reads in flight at once.
HEADER_CONCURRENCY = 16

_TRADE_DATA = ("bool", "uint256", "uint256", "uint256", "uint256", "uint256")
_GRADUATED_DATA = ("uint256", "uint256", "uint256", "uint256")


def _hex(value: Any) -> str:
    """0x-prefixed lowercase hex of bytes / HexBytes / hex str."""
    if isinstance(value, str):
        return value.lower() if value.startswith("0x") else "0x" + value.lower()
    return "0x" + bytes(value).hex()


def _bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return bytes.fromhex(value.removeprefix("0x"))
    return bytes(value)


def _topic_address(topic: Any) -> str:
    return to_checksum_address(_bytes(topic)[-20:])


class EvmLogSource:
    """One EVM chain's TokenForge markets as indexer records. See the module docstring.

    ``w3`` is a web3.py ``AsyncWeb3`` (over an RPC pool, an HTTP endpoint or the embedded
    chain's provider) or an :class:`EvmNode` around one. ``batch_blocks`` is the most blocks
    one ``eth_getLogs`` call asks for (a longer :meth:`fetch` range is split)."""

    def __init__(self, chain: str, w3: Any, factory_address: str, *, batch_blocks: int = 2000) -> None:
        self.chain = chain
        self.node = w3 if isinstance(w3, EvmNode) else EvmNode(w3)
        self.w3 = self.node.w3
        self.factory = to_checksum_address(factory_address)
        self.batch_blocks = max(1, batch_blocks)
        self._curves: dict[str, str] = {}  # curve (checksummed) -> token
        self._tokens: set[str] = set()

    # ------------------------------------------------------------------ LogSource

    async def head(self) -> int:
        with translating("read block number"):
            return int(await self.w3.eth.block_number)

    async def block(self, number: int) -> BlockRef | None:
        header = await self._header(number)
        return None if header is None else _block_ref(header)

    def know(self, markets: Iterable[tuple[str, str]]) -> None:
        for token, curve in markets:
            token, curve = to_checksum_address(token), to_checksum_address(curve)
            self._curves[curve] = token
            self._tokens.add(token)

    @property
    def known_tokens(self) -> frozenset[str]:
        return frozenset(self._tokens)

    async def fetch(self, from_block: int, to_block: int) -> Batch:
        if to_block < from_block:
            raise ValueError(f"empty range {from_block}..{to_block}")
        kept: list[_Kept] = []
        log_hashes: dict[int, str] = {}
        times: dict[int, int] = {}
        before = await self._header(to_block)  # its hash commits to every block below it
        if before is None:
            raise TransientError(f"{self.chain}: block {to_block} is not available yet", code=ErrorCode.RPC_INCOMPLETE)
        start = from_block
        while start <= to_block:
            end = min(to_block, start + self.batch_blocks - 1)
            market_logs = await self._logs(
                {"fromBlock": start, "toBlock": end, "topics": [[TOKEN_CREATED_TOPIC, TRADE_TOPIC, GRADUATED_TOPIC]]}
            )
            market_logs.sort(key=_log_order)
            for entry in market_logs:
                decode = self._market_decoder(entry)
                if decode is not None:
                    kept.append(_Kept(int(entry["blockNumber"]), int(entry["logIndex"]), entry, decode))
            tokens = sorted(self._tokens)
            for i in range(0, len(tokens), ADDRESS_CHUNK):
                chunk = [checksummed(t) for t in tokens[i : i + ADDRESS_CHUNK]]
                transfers = await self._logs(
                    {"fromBlock": start, "toBlock": end, "address": chunk, "topics": [TRANSFER_TOPIC]}
                )
                kept.extend(  # ERC-20's Transfer has 3 topics (an ERC-721-shaped one 4)
                    _Kept(int(e["blockNumber"]), int(e["logIndex"]), e, _transfer)
                    for e in transfers
                    if len(e["topics"]) == 3
                )
            start = end + 1
        for k in kept:
            block_hash = _hex(k.entry["blockHash"])
            if log_hashes.setdefault(k.block_number, block_hash) != block_hash:
                raise _changed(k.block_number)
        numbers = sorted({*log_hashes, to_block})
        headers = await self._headers(numbers)
        refs: list[BlockRef] = []
        for number in numbers:
            header = headers.get(number)
            if header is None:
                raise TransientError(
                    f"{self.chain}: block {number} is not available yet", code=ErrorCode.RPC_INCOMPLETE
                )
            ref = _block_ref(header)
            if (number in log_hashes and log_hashes[number] != ref.hash) or (
                number == to_block and ref.hash != _hex(before["hash"])
            ):
                raise _changed(number)
            times[number] = ref.timestamp
            refs.append(ref)
        kept.sort(key=lambda k: (k.block_number, k.log_index))
        out: list[MarketRecord] = []
        for k in kept:
            n = k.block_number
            at = Position(n, log_hashes[n], times[n], _hex(k.entry["transactionHash"]), k.log_index)
            out.append(k.decode(k.entry, at))
        return Batch(tuple(refs), tuple(out))

    async def close(self) -> None:
        await self.node.close()

    # ------------------------------------------------------------------ other reads

    async def code_at(self, address: str, block_number: int) -> bytes:
        """``eth_getCode(address, block_number)``; a node without that block's state raises."""
        with translating("read code"):
            return bytes(await self.w3.eth.get_code(checksummed(to_checksum_address(address)), block_number))

    async def first_block(self) -> int:
        """The factory's deployment block (the first with code at its address), found by
        binary search on ``eth_getCode(factory, n)``; 0 when the node keeps no state that
        old (it answers an error) or the factory has no code at the head yet."""
        head = await self.head()
        try:
            if not await self.code_at(self.factory, head):
                return 0
            low, high = 0, head  # code at high; find the lowest such block
            while low < high:
                middle = (low + high) // 2
                if await self.code_at(self.factory, middle):
                    high = middle
                else:
                    low = middle + 1
        except TokenForgeError as err:
            log.info("%s: the node has no state history (%s): indexing from block 0", self.chain, err)
            return 0
        return low

    # ------------------------------------------------------------------ decoding

    def _market_decoder(self, entry: Mapping[str, Any]) -> Decoder | None:
        """The decoder of a market log worth keeping (registering a new market), else None."""
        topics = entry["topics"]
        if not topics:
            return None
        topic0 = _bytes(topics[0])
        address = to_checksum_address(entry["address"])
        if topic0 == TOKEN_CREATED_TOPIC:
            if address != self.factory or len(topics) < 4:
                return None
            token = _topic_address(topics[1])
            curve = to_checksum_address(_bytes(entry["data"])[12:32])
            self._curves[curve] = token
            self._tokens.add(token)
            return _launched
        if address not in self._curves:
            return None
        if topic0 == TRADE_TOPIC and len(topics) >= 2:
            return _traded
        if topic0 == GRADUATED_TOPIC and len(topics) >= 2:
            return _graduated
        return None

    async def _logs(self, log_filter: Any) -> list[Any]:
        with translating("read logs"):
            return list(await self.w3.eth.get_logs(log_filter))

    async def _header(self, number: int) -> Any:
        """The block's header fields, None above the head."""
        try:
            with translating("read block"):
                try:
                    return await self.w3.eth.get_block(number)
                except BlockNotFound:
                    return None
        except TransientError as err:
            if "not found" in err.message.lower():  # some nodes answer an error instead of null
                return None
            raise

    async def _headers(self, numbers: Sequence[int]) -> dict[int, Any]:
        limit = asyncio.Semaphore(HEADER_CONCURRENCY)

        async def one(n: int) -> tuple[int, Any]:
            async with limit:
                return n, await self._header(n)

        return dict(await asyncio.gather(*(one(n) for n in numbers)))


Decoder = Callable[[Mapping[str, Any], Position], MarketRecord]


@dataclass(frozen=True, slots=True)
class _Kept:
    block_number: int
    log_index: int
    entry: Mapping[str, Any]
    decode: Decoder


def _log_order(entry: Mapping[str, Any]) -> tuple[int, int]:
    return int(entry["blockNumber"]), int(entry["logIndex"])


def _changed(number: int) -> TransientError:
    return TransientError(
        f"block {number} changed while its logs were read (a reorg): read again", code=ErrorCode.RPC_INCOMPLETE
    )


def _block_ref(header: Mapping[str, Any]) -> BlockRef:
    return BlockRef(int(header["number"]), _hex(header["hash"]), _hex(header["parentHash"]), int(header["timestamp"]))


def _launched(entry: Mapping[str, Any], at: Position) -> Launched:
    topics = entry["topics"]
    curve, supply, vn0, pf, cf, lf, window, in_blocks, migration, launched_at = abi_decode(
        codec.TOKEN_CREATED_DATA, _bytes(entry["data"])
    )
    return Launched(
        at=at,
        token=_topic_address(topics[1]),
        curve=to_checksum_address(curve),
        creator=_topic_address(topics[2]),
        supply=supply,
        virtual_native0=vn0,
        platform_fee_bps=pf,
        creator_fee_bps=cf,
        launch_fee_bps=lf,
        launch_window=window,
        window_in_blocks=bool(in_blocks),
        migration_fee=migration,
        launched_at=launched_at,
    )


def _traded(entry: Mapping[str, Any], at: Position) -> Traded:
    is_buy, native, tokens, fee, vn, vt = abi_decode(_TRADE_DATA, _bytes(entry["data"]))
    return Traded(
        at=at,
        curve=to_checksum_address(entry["address"]),
        trader=_topic_address(entry["topics"][1]),
        is_buy=bool(is_buy),
        native_amount=native,
        token_amount=tokens,
        fee=fee,
        virtual_native=vn,
        virtual_token=vt,
    )


def _graduated(entry: Mapping[str, Any], at: Position) -> Graduated:
    native, tokens, burnt, migration = abi_decode(_GRADUATED_DATA, _bytes(entry["data"]))
    return Graduated(
        at=at,
        curve=to_checksum_address(entry["address"]),
        pool=_topic_address(entry["topics"][1]),
        native_liquidity=native,
        token_liquidity=tokens,
        liquidity_burnt=burnt,
        migration_fee=migration,
    )


def _transfer(entry: Mapping[str, Any], at: Position) -> Transferred:
    topics = entry["topics"]
    return Transferred(
        at=at,
        token=to_checksum_address(entry["address"]),
        sender=_topic_address(topics[1]),
        recipient=_topic_address(topics[2]),
        amount=int.from_bytes(_bytes(entry["data"])[:32], "big"),
    )


class EmbeddedLogSource:
    """An :class:`EvmLogSource` over an embedded chain whose every read, and each indexer
    step's reads as a whole (:meth:`read_step`), run in one
    :meth:`~tokenforge.chains.evm.embedded.EmbeddedEvmChain.read_locked` call: a step waits
    for a block being mined once, not once per request (py-evm mines under the chain lock)."""

    def __init__(self, chain: str, embedded: EmbeddedEvmChain, factory_address: str, *, batch_blocks: int) -> None:
        self.chain = chain
        self._embedded = embedded
        self._inner = EvmLogSource(chain, embedded.locked_web3(), factory_address, batch_blocks=batch_blocks)

    async def head(self) -> int:
        return await self._embedded.read_locked(self._inner.head)

    async def block(self, number: int) -> BlockRef | None:
        return await self._embedded.read_locked(partial(self._inner.block, number))

    def know(self, markets: Iterable[tuple[str, str]]) -> None:
        self._inner.know(markets)

    @property
    def known_tokens(self) -> frozenset[str]:
        return self._inner.known_tokens

    async def fetch(self, from_block: int, to_block: int) -> Batch:
        return await self._embedded.read_locked(partial(self._inner.fetch, from_block, to_block))

    async def read_step(self, checkpoint: BlockRef | None, first: int, confirmations: int, max_blocks: int) -> StepRead:
        return await self._embedded.read_locked(
            partial(read_step, self._inner, checkpoint, first, confirmations, max_blocks)
        )

    async def first_block(self) -> int:
        return await self._embedded.read_locked(self._inner.first_block)

    async def close(self) -> None:
        """Nothing to close: the chain belongs to the deployer that opened it."""
