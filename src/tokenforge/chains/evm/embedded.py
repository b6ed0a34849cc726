"""An in-process EVM chain (py-evm through eth-tester) that behaves like a small node.

:class:`EmbeddedEvmChain` is the embedded default behind the EVM deployer and the chain
``tokenforge devnet`` serves:

* **Persistence.** With a ``state_dir``, py-evm's key-value database is a SQLite file
  (``<state_dir>/chain.sqlite``, see :mod:`.embedded_store` and :mod:`.kvstore`); blocks,
  balances, code and storage survive a process restart, one SQLite transaction per mined
  block. ``state_dir=None`` keeps everything in memory. The pending-transaction pool is in memory only, as on a
  node restart; a deployer re-broadcasts what it still waits for.
* **Mempool and miner.** ``eth_sendRawTransaction`` only admits a transaction (checks
  signature, chain id, nonce, balance, like a node would) into a pool ordered by
  (sender, nonce) (:mod:`.mempool`); future nonces wait until the gap is filled. While
  :attr:`automine` is on (the default) a miner thread packs every executable transaction
  into blocks (up to the block gas limit and ``max_block_txs``) shortly after they
  arrive, so one py-evm block carries many launches. :meth:`mine_block` mines one block
  at once, whatever the mode.
* **State edits.** :meth:`fund` pays from the chain's faucet (a development-only key);
  :meth:`seal_state_change` applies a direct edit of the head state sealed in a new empty
  block (py-evm keeps state per block), which is how a development node sets a balance.
  :meth:`snapshot` / :meth:`revert` (Hardhat's ``evm_snapshot`` / ``evm_revert``, served
  by ``tokenforge devnet`` only) re-point the canonical head to an earlier block, so the
  blocks mined next replace the ones above it: a reorg on demand, for tests.
* **Threads.** All chain work happens under one lock, either on the miner thread or on a
  one-thread executor used by the async provider; the asyncio event loop only awaits.
  Block listeners (:meth:`add_block_listener`) are called on the thread that mined.
* **Clients.** :meth:`async_provider` feeds ``web3.AsyncWeb3`` (the deployer uses the same
  JSON-RPC methods it uses against real nodes); :meth:`web3` returns a plain synchronous
  ``web3.Web3`` over the same chain, e.g. as an independent reader in tests. Both answer
  through :mod:`.embedded_rpc`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from eth.db.atomic import AtomicDB
from eth.db.chain import ChainDB
from eth.db.schema import SchemaV1
from eth.exceptions import TransactionNotFound as EvmTransactionNotFound
from eth_account import Account
from eth_tester import EthereumTester
from eth_typing import Address, BlockNumber, Hash32
from eth_utils import to_canonical_address, to_checksum_address
from web3 import AsyncWeb3, Web3

from tokenforge.errors import ErrorCode, TransientError

from .embedded_rpc import EmbeddedAsyncProvider, IndexedBackend, LockedProvider
from .embedded_store import FAUCET_ADDRESS, FAUCET_KEY, base_fee_wei, chain_class, open_kv, open_or_create
from .mempool import Mempool, MempoolReject, PendingTx

log = logging.getLogger(__name__)
T = TypeVar("T")

# py-evm's per-transaction cost grows with the number of accounts a block already touched
# (its journal checkpoints every dirty account), so blocks are capped by count as well.
MAX_BLOCK_TXS = 64


class EmbeddedEvmChain:
    """One in-process EVM chain. See the module docstring."""

    def __init__(
        self,
        state_dir: Path | None,
        chain_id: int,
        *,
        block_time_s: float = 0.02,
        max_block_txs: int = MAX_BLOCK_TXS,
    ) -> None:
        self.chain_id = chain_id
        self._max_block_txs = max_block_txs
        self.state_dir = state_dir
        self.closed = False
        self._block_time_s = block_time_s
        self._automine = True
        self.lock = threading.RLock()  # every access to the chain holds it
        self.faucet_address = FAUCET_ADDRESS
        self._db = open_kv(state_dir)
        self._atomic = AtomicDB(self._db)
        self._chain_cls = chain_class(chain_id)
        try:
            with self._db.transaction():
                self._chain = open_or_create(self._chain_cls, self._db, self._atomic, chain_id, state_dir)
        except BaseException:
            self._db.close()
            raise
        self._backend = IndexedBackend(self._chain)
        #: pending transactions; callers hold :attr:`lock`
        self.mempool = Mempool()
        self.sync_provider = LockedProvider(self, EthereumTester(self._backend, auto_mine_transactions=False))
        self._inline_web3 = AsyncWeb3(EmbeddedAsyncProvider(self, inline=True))  # for read_locked
        self._head = self._chain.get_canonical_head().block_number
        self._listeners: list[Callable[[int], None]] = []
        self._snapshots: list[Any] = []  # heads saved by snapshot() (development only)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"evm-chain-{chain_id}")
        self._reader_executor = ThreadPoolExecutor(1, thread_name_prefix=f"evm-reader-{chain_id}")
        self._wake = threading.Event()
        self._miner = threading.Thread(target=self._miner_loop, name=f"evm-miner-{chain_id}", daemon=True)
        self._miner.start()

    # ------------------------------------------------------------------ clients

    def web3(self) -> Web3:
        """A synchronous web3.py client over this chain (thread-safe)."""
        return Web3(self.sync_provider)

    def async_provider(self) -> EmbeddedAsyncProvider:
        return EmbeddedAsyncProvider(self)

    def async_web3(self) -> AsyncWeb3:
        return AsyncWeb3(self.async_provider())

    def locked_web3(self) -> AsyncWeb3:
        """An ``AsyncWeb3`` that answers each request on the calling thread: only for use in
        a :meth:`read_locked` read, which holds the chain lock."""
        return self._inline_web3

    async def read_locked(self, read: Callable[[], Awaitable[T]]) -> T:
        """Runs the coroutine ``read()`` to its end on a reader thread of its own, holding the
        chain lock throughout, for a reader making several requests in a row (the market
        indexer's step, through :meth:`locked_web3`): it waits for a block being mined once
        rather than once per request, does not queue behind the deployer's and traders'
        calls on the chain's thread, and sees one unchanging chain. ``read`` runs in an event
        loop of that thread, so it must not await anything of the caller's loop. A caller
        cancelled meanwhile stops waiting; the read still ends and releases the lock."""
        if self.closed:
            raise TransientError("embedded chain is closed", code=ErrorCode.RPC_UNAVAILABLE)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reader_executor, self._read_locked, read)

    def _read_locked(self, read: Callable[[], Awaitable[T]]) -> T:
        async def main() -> T:
            return await read()

        with self.lock:
            return asyncio.run(main())

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Runs ``fn(*args)`` on the chain's thread without blocking the event loop."""
        if self.closed:
            raise TransientError("embedded chain is closed", code=ErrorCode.RPC_UNAVAILABLE)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(fn, *args))

    # ------------------------------------------------------------------ state

    @property
    def head_number(self) -> int:
        """The number of the newest mined block."""
        return self._head

    @property
    def next_base_fee_wei(self) -> int:
        """The base fee of the block being built (caller holds the lock)."""
        return base_fee_wei(self._chain.header)

    def add_block_listener(self, listener: Callable[[int], None]) -> None:
        """Calls ``listener(head_number)`` after every block, on the thread that mined it
        (under the chain lock: it must return quickly and not call into the chain)."""
        self._listeners.append(listener)

    def remove_block_listener(self, listener: Callable[[int], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    # The synchronous methods below take the chain lock (they may wait for a block being
    # mined): from async code call them through ``await chain.run(chain.fund, ...)``.

    def fund(self, address: str, amount_wei: int) -> None:
        """Tops ``address`` up to at least ``amount_wei`` from the faucet and mines it (blocking)."""
        with self.lock:
            vm = self._chain.get_vm()
            missing = amount_wei - vm.state.get_balance(to_canonical_address(address))
            if missing <= 0:
                return
            faucet = to_canonical_address(FAUCET_ADDRESS)
            nonce = self.mempool.next_nonce(faucet, vm.state.get_nonce(faucet))
            base_fee = base_fee_wei(self._chain.header)
            tx = {
                "type": 2,
                "chainId": self.chain_id,
                "nonce": nonce,
                "to": to_checksum_address(address),
                "value": missing,
                "gas": 21_000,
                "maxFeePerGas": 2 * base_fee + 10**9,
                "maxPriorityFeePerGas": 10**9,
            }
            raw = Account.sign_transaction(tx, FAUCET_KEY).raw_transaction
            tx_hash = self.admit_raw_transaction(bytes(raw))
            for _ in range(64):
                if self.is_mined(tx_hash):
                    return
                self._mine_ready()
            raise TransientError("funding transaction was not mined", code=ErrorCode.FUND_FAILED)

    def seal_state_change(self, change: Callable[[Any], None]) -> None:
        """Applies ``change(state)`` to the head state (a py-evm ``StateAPI``) and seals it
        in an empty block mined at once, so ``latest`` shows it. For development edits such
        as setting a balance; queued transactions the edit makes executable are mined next."""
        with self.lock:
            self._check_open()
            try:
                with self._db.transaction():
                    state = self._chain.get_vm().state
                    change(state)
                    state.persist()
                    parent = self._chain.get_canonical_head()
                    self._chain.header = self._chain.header.copy(
                        state_root=state.state_root, timestamp=max(int(time.time()), parent.timestamp + 1)
                    )
                    self._chain.mine_all([], mix_hash=os.urandom(32))
            except BaseException:
                self._reload_chain()  # the in-memory header may hold the rolled-back state root
                raise
            self._after_block()
            self._wake.set()

    def snapshot(self) -> int:
        """Remembers the current head (Hardhat's ``evm_snapshot``); returns the snapshot's id
        (1, 2, …). Development only."""
        with self.lock:
            self._check_open()
            self._snapshots.append(self._chain.get_canonical_head())
            return len(self._snapshots)

    def revert(self, snapshot_id: int) -> bool:
        """Sets the canonical head back to snapshot ``snapshot_id``'s block (Hardhat's
        ``evm_revert``): the blocks above it stop being canonical, so the next blocks mined
        replace them (with other hashes) and their transactions are no longer mined. The
        pending pool is emptied, and that snapshot and later ones are used up, as on
        Hardhat. False for an unknown id. Development only: a node never does this."""
        with self.lock:
            self._check_open()
            if not 1 <= snapshot_id <= len(self._snapshots):
                return False
            header = self._snapshots[snapshot_id - 1]
            del self._snapshots[snapshot_id - 1 :]
            old_head = self._chain.get_canonical_head().block_number
            with self._db.transaction():
                # their transactions stop being found; their number lookups stay until the
                # replacement blocks overwrite them (reads above the head are refused anyway)
                orphaned = [BlockNumber(n) for n in range(header.block_number + 1, old_head + 1)]
                ChainDB._decanonicalize_old_headers(self._atomic, orphaned)
                self._atomic.set(SchemaV1.make_canonical_head_hash_lookup_key(), header.hash)
            for pending in list(self.mempool):
                self.mempool.remove(pending)
            self._reload_chain()
            self._backend.forget_blocks()
            self._after_block()
            return True

    # ------------------------------------------------------------------ node behaviour

    def is_mined(self, tx_hash: bytes) -> bool:
        """True when ``tx_hash`` is in a block (caller holds the lock)."""
        try:
            self._chain.chaindb.get_transaction_index(Hash32(tx_hash))
        except EvmTransactionNotFound:
            return False
        return True

    def pending_nonce(self, sender: bytes) -> int:
        """The next nonce for ``sender`` counting its queued transactions (caller holds the lock)."""
        return self.mempool.next_nonce(sender, self._chain.get_vm().state.get_nonce(Address(sender)))

    def pending_transaction(self, tx_hash: bytes) -> PendingTx | None:
        return self.mempool.get(tx_hash)

    def admit_raw_transaction(self, raw: bytes, *, known_is_error: bool = False) -> bytes:
        """Admits a raw signed transaction to the pool (caller holds the lock); returns its hash.

        Raises :class:`MempoolReject` with a node's wording for what a node would refuse.
        A transaction already pending or mined is accepted again (its hash is returned),
        unless ``known_is_error``: then, as geth answers, a pending one is refused with
        ``already known`` and a mined one with ``nonce too low``."""
        vm = self._chain.get_vm()
        try:
            tx = vm.get_transaction_builder().decode(raw)
        except Exception as exc:  # noqa: BLE001 - py-evm cannot decode it: a node refuses it
            raise MempoolReject(f"invalid transaction: {type(exc).__name__}") from None
        if self.mempool.get(tx.hash) is not None:
            if known_is_error:
                raise MempoolReject("already known")
            return tx.hash
        if not known_is_error and self.is_mined(tx.hash):
            return tx.hash
        try:
            sender = tx.sender
            tx.validate()
        except Exception as exc:  # noqa: BLE001 - py-evm's validation failed: a node refuses it
            raise MempoolReject(f"invalid transaction: {exc}") from None
        tx_chain_id = getattr(tx, "chain_id", None)
        if tx_chain_id is not None and tx_chain_id != self.chain_id:
            raise MempoolReject(f"invalid chain id {tx_chain_id}, expected {self.chain_id}")
        state = vm.state
        state_nonce = state.get_nonce(sender)
        if tx.nonce < state_nonce:
            raise MempoolReject(f"nonce too low: next nonce {state_nonce}, tx nonce {tx.nonce}")
        header = self._chain.header
        if tx.gas > header.gas_limit:
            raise MempoolReject("exceeds block gas limit")
        max_fee, tip = _fee_fields(tx)
        cost = tx.gas * max_fee + tx.value
        balance = state.get_balance(sender)
        if balance < cost:
            raise MempoolReject(f"insufficient funds for gas * price + value: balance {balance}, tx cost {cost}")
        self.mempool.add(PendingTx(tx, sender, tx.nonce, tx.hash, max_fee, tip, tx.gas))
        if self._automine:
            self._wake.set()
        return tx.hash

    def _check_open(self) -> None:
        if self.closed:
            raise TransientError("embedded chain is closed", code=ErrorCode.RPC_UNAVAILABLE)

    # ------------------------------------------------------------------ mining

    @property
    def automine(self) -> bool:
        """Whether the miner thread mines what arrives (Hardhat's ``evm_setAutomine``)."""
        return self._automine

    @automine.setter
    def automine(self, enabled: bool) -> None:
        self._automine = bool(enabled)
        if self._automine:
            self._wake.set()  # what waited meanwhile is mined now

    def mine_block(self) -> int:
        """Mines exactly one block now, empty if nothing is executable (``evm_mine``);
        returns how many transactions it holds."""
        with self.lock:
            self._check_open()
            return self._mine_ready(allow_empty=True)

    def _mine_ready(self, *, allow_empty: bool = False) -> int:
        """Mines one block of executable transactions (caller holds the lock).

        Without ``allow_empty`` nothing is mined when nothing is executable."""
        header = self._chain.header
        state = self._chain.get_vm().state
        chosen = self.mempool.executable(state.get_nonce, base_fee_wei(header), header.gas_limit)
        chosen = chosen[: self._max_block_txs]
        if not chosen and not allow_empty:
            return 0
        parent = self._chain.get_canonical_head()
        timestamp = max(int(time.time()), parent.timestamp + 1)
        included: list[PendingTx]
        dropped: list[PendingTx]
        try:
            with self._db.transaction():
                self._chain.header = header.copy(timestamp=timestamp)
                self._chain.mine_all([p.tx for p in chosen], mix_hash=os.urandom(32))
            included, dropped = chosen, []
        except Exception as exc:  # noqa: BLE001 - an invalid tx slipped past admission: include tx by tx
            log.warning("embedded block failed as a whole (%s); retrying tx by tx", type(exc).__name__)
            included, dropped = self._mine_one_by_one(chosen, timestamp)
        for ptx in (*included, *dropped):
            self.mempool.remove(ptx)
        state = self._chain.get_vm().state
        for sender in {p.sender for p in chosen}:
            self.mempool.prune(sender, state.get_nonce(Address(sender)))
        self._after_block()
        return len(included)

    def _after_block(self) -> None:
        self._head = self._chain.get_canonical_head().block_number
        for listener in list(self._listeners):
            try:
                listener(self._head)
            except Exception:
                log.exception("embedded chain block listener failed")

    def _mine_one_by_one(self, chosen: list[PendingTx], timestamp: int) -> tuple[list[PendingTx], list[PendingTx]]:
        """Includes what executes; returns (included, dropped). A dropped tx's later nonces stay pending."""
        self._reload_chain()
        included: list[PendingTx] = []
        dropped: list[PendingTx] = []
        broken: set[bytes] = set()
        with self._db.transaction():
            self._chain.header = self._chain.header.copy(timestamp=timestamp)
            for ptx in chosen:
                if ptx.sender in broken:
                    continue
                try:
                    self._chain.apply_transaction(ptx.tx)
                except Exception as exc:  # noqa: BLE001 - py-evm refused this transaction
                    log.warning("embedded chain dropped tx 0x%s: %s", ptx.hash.hex(), type(exc).__name__)
                    broken.add(ptx.sender)
                    dropped.append(ptx)
                    continue
                included.append(ptx)
            self._chain.mine_block(mix_hash=os.urandom(32))
        return included, dropped

    def _reload_chain(self) -> None:
        self._chain = self._chain_cls(self._atomic)
        self._backend.chain = self._chain

    def _miner_loop(self) -> None:
        while True:
            self._wake.wait()
            if self.closed:
                return
            if self._block_time_s:
                time.sleep(self._block_time_s)  # block time: let a batch of txs arrive
            with self.lock:
                self._wake.clear()
                if self.closed:
                    return
                if not self._automine:
                    continue  # blocks come from mine_block only
                try:
                    mined = self._mine_ready()
                except Exception:
                    log.exception("embedded miner failed")
                    self._reload_chain()
                    mined = 0
                if mined and len(self.mempool):
                    self._wake.set()

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Stops the miner and the chain thread and closes the state file. Idempotent."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            self._listeners.clear()
            self._wake.set()
        self._miner.join(timeout=30)
        self._executor.shutdown(wait=True)
        self._reader_executor.shutdown(wait=True)
        with self.lock:
            self._db.close()


def _fee_fields(tx: Any) -> tuple[int, int]:
    """(max fee per gas, max priority fee per gas) of a py-evm transaction; legacy: gas price twice."""
    max_fee = getattr(tx, "max_fee_per_gas", None)
    if max_fee is None:
        return tx.gas_price, tx.gas_price
    return max_fee, tx.max_priority_fee_per_gas
