"""An in-process EVM chain (py-evm through eth-tester) that behaves like a small node.

:class:`EmbeddedEvmChain` is the embedded default behind the EVM deployer:

* **Persistence.** With a ``state_dir``, py-evm's key-value database is a SQLite file
  (``<state_dir>/chain.sqlite``, see :mod:`.kvstore`); blocks, balances, code and storage
  survive a process restart, one SQLite transaction per mined block. ``state_dir=None``
  keeps everything in memory. The pending-transaction pool is in memory only, as on a
  node restart; a deployer re-broadcasts what it still waits for.
* **Mempool and miner.** ``eth_sendRawTransaction`` only admits a transaction (checks
  signature, chain id, nonce, balance, like a node would) into a pool ordered by
  (sender, nonce); future nonces wait until the gap is filled. A miner thread packs every
  executable transaction into blocks (up to the block gas limit and ``max_block_txs``) shortly after they arrive,
  so one py-evm block carries many launches.
* **Development helpers.** :meth:`set_balance`, :meth:`drop_transaction` and
  :meth:`mine_block` do what Hardhat's ``hardhat_setBalance``, ``hardhat_dropTransaction``
  and ``evm_mine`` do; ``tokenforge devnet`` serves them over JSON-RPC. py-evm keeps state
  per block, so a balance set this way is carried by a new empty block.
* **Threads.** All chain work happens under one lock, either on the miner thread or on a
  one-thread executor used by the async provider; the asyncio event loop only awaits.
* **Clients.** :meth:`async_provider` feeds ``web3.AsyncWeb3`` (the deployer uses the same
  JSON-RPC methods it uses against real nodes); :meth:`web3` returns a plain synchronous
  ``web3.Web3`` over the same chain, e.g. as an independent reader in tests.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from eth.chains.base import MiningChain
from eth.db.atomic import AtomicDB
from eth.db.backends.memory import MemoryDB
from eth.db.chain import ChainDB
from eth.exceptions import CanonicalHeadNotFound
from eth.exceptions import TransactionNotFound as EvmTransactionNotFound
from eth.vm.forks import PragueVM
from eth_account import Account
from eth_tester import EthereumTester
from eth_tester.backends.pyevm.main import get_default_genesis_params
from eth_utils import keccak, to_canonical_address, to_checksum_address
from eth_utils.toolz import assoc
from web3 import AsyncWeb3, Web3

from tokenforge.errors import ErrorCode, PermanentError, TransientError

from .embedded_rpc import EmbeddedAsyncProvider, IndexedBackend, LockedProvider
from .kvstore import SqliteKV
from .mempool import Mempool, MempoolReject, PendingTx

log = logging.getLogger(__name__)
T = TypeVar("T")

BLOCK_GAS_LIMIT = 60_000_000
# py-evm's per-transaction cost grows with the number of accounts a block already touched
# (its journal checkpoints every dirty account), so blocks are capped by count as well.
MAX_BLOCK_TXS = 64
# A development-only key that owns the embedded chain's initial ETH; it never exists
# on a real network. Funding helpers send from it.
_FAUCET_KEY = keccak(b"tokenforge embedded evm faucet")
FAUCET_ADDRESS = Account.from_key(_FAUCET_KEY).address
_FAUCET_BALANCE_WEI = 10**30
_META_CHAIN_ID = b"tokenforge:chain_id"


def _chain_class(chain_id: int) -> type[MiningChain]:
    class TokenForgeEmbeddedChain(MiningChain):
        vm_configuration = ((0, PragueVM),)

        def create_header_from_parent(self, parent_header: Any, **header_params: Any) -> Any:
            # constant gas limit, as eth-tester's chain does
            return super().create_header_from_parent(
                parent_header, **assoc(header_params, "gas_limit", parent_header.gas_limit)
            )

        def get_transaction_builder(self) -> Any:
            return self.get_vm().get_transaction_builder()

    TokenForgeEmbeddedChain.chain_id = chain_id
    return TokenForgeEmbeddedChain


class _MemoryKV(MemoryDB):
    def transaction(self) -> Any:
        return nullcontext()

    def close(self) -> None:
        pass


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
        self.lock = threading.RLock()  # every access to the chain holds it
        self.faucet_address = FAUCET_ADDRESS
        self._db: SqliteKV | _MemoryKV = SqliteKV(state_dir / "chain.sqlite") if state_dir else _MemoryKV()
        self._atomic = AtomicDB(self._db)
        self._chain_cls = _chain_class(chain_id)
        with self._db.transaction():
            self._chain = self._open_or_create()
        self._backend = IndexedBackend(self._chain)
        self._mempool = Mempool()
        self.sync_provider = LockedProvider(self, EthereumTester(self._backend, auto_mine_transactions=False))
        self._head = self._chain.get_canonical_head().block_number
        self._waiters: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future]] = []
        self._waiters_lock = threading.Lock()  # never held while the chain works
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"evm-chain-{chain_id}")
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

    def _open_or_create(self) -> MiningChain:
        try:
            ChainDB(self._atomic).get_canonical_head()
        except CanonicalHeadNotFound:
            self._db[_META_CHAIN_ID] = str(self.chain_id).encode()
            params = get_default_genesis_params({"gas_limit": BLOCK_GAS_LIMIT})
            state = {
                to_canonical_address(FAUCET_ADDRESS): {
                    "balance": _FAUCET_BALANCE_WEI,
                    "nonce": 0,
                    "code": b"",
                    "storage": {},
                }
            }
            return self._chain_cls.from_genesis(self._atomic, params, state)
        stored = self._db[_META_CHAIN_ID].decode() if _META_CHAIN_ID in self._db else None
        if stored != str(self.chain_id):
            raise PermanentError(
                f"embedded chain state in {self.state_dir} has chain id {stored}, not {self.chain_id}",
                code=ErrorCode.CHAIN_ID_MISMATCH,
            )
        return self._chain_cls(self._atomic)

    # The synchronous helpers below take the chain lock (they may wait for a block being
    # mined): from async code call them through ``await chain.run(chain.fund, ...)``.

    def fund(self, address: str, amount_wei: int) -> None:
        """Tops ``address`` up to at least ``amount_wei`` from the faucet and mines it (blocking)."""
        with self.lock:
            vm = self._chain.get_vm()
            missing = amount_wei - vm.state.get_balance(to_canonical_address(address))
            if missing <= 0:
                return
            faucet = to_canonical_address(FAUCET_ADDRESS)
            nonce = self._mempool.next_nonce(faucet, vm.state.get_nonce(faucet))
            base_fee = self._chain.header.base_fee_per_gas
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
            raw = Account.sign_transaction(tx, _FAUCET_KEY).raw_transaction
            tx_hash = self.admit_raw_transaction(bytes(raw))
            for _ in range(64):
                if self._is_mined(tx_hash):
                    return
                self._mine_ready()
            raise TransientError("funding transaction was not mined", code=ErrorCode.FUND_FAILED)

    def mine(self) -> int:
        """Mines every executable pending transaction now; returns how many were included."""
        with self.lock:
            total = 0
            while n := self._mine_ready():
                total += n
            return total

    def pending_count(self) -> int:
        with self.lock:
            return len(self._mempool)

    async def wait_for_block(self, number: int, timeout_s: float | None = None) -> int:
        """Waits until block ``number`` is mined; returns the head number then."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()
        with self._waiters_lock:  # not the chain lock: a block being mined must not stall the loop
            if self.closed:
                raise TransientError("embedded chain is closed", code=ErrorCode.RPC_UNAVAILABLE)
            if self._head >= number:
                return self._head
            self._waiters.append((number, loop, fut))
        return await asyncio.wait_for(fut, timeout_s)

    # ------------------------------------------------------------------ node behaviour

    def _is_mined(self, tx_hash: bytes) -> bool:
        try:
            self._chain.chaindb.get_transaction_index(tx_hash)
        except EvmTransactionNotFound:
            return False
        return True

    def pending_nonce(self, sender: bytes) -> int:
        """The next nonce for ``sender`` counting its queued transactions (caller holds the lock)."""
        return self._mempool.next_nonce(sender, self._chain.get_vm().state.get_nonce(sender))

    def pending_transaction(self, tx_hash: bytes) -> PendingTx | None:
        return self._mempool.get(tx_hash)

    def admit_raw_transaction(self, raw: bytes, *, known_is_error: bool = False) -> bytes:
        """Admits a raw signed transaction to the pool (caller holds the lock); returns its hash.

        Raises :class:`MempoolReject` with a node's wording for what a node would refuse.
        A transaction already pending or mined is accepted again (its hash is returned),
        unless ``known_is_error``: then, as geth answers, a pending one is refused with
        ``already known`` and a mined one with ``nonce too low``."""
        vm = self._chain.get_vm()
        try:
            tx = vm.get_transaction_builder().decode(raw)
        except Exception as exc:
            raise MempoolReject(f"invalid transaction: {type(exc).__name__}") from None
        if self._mempool.get(tx.hash) is not None:
            if known_is_error:
                raise MempoolReject("already known")
            return tx.hash
        if not known_is_error and self._is_mined(tx.hash):
            return tx.hash
        try:
            sender = tx.sender
            tx.validate()
        except Exception as exc:
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
        self._mempool.add(PendingTx(tx, sender, tx.nonce, tx.hash, max_fee, tip, tx.gas))
        self._wake.set()
        return tx.hash

    # ------------------------------------------------------------------ development helpers
    # Like the helpers above, these take the chain lock and may block while a block is mined.

    def set_balance(self, address: str, balance_wei: int) -> None:
        """Sets the balance of ``address`` to exactly ``balance_wei`` (Hardhat's ``setBalance``).

        The new state is sealed in an empty block mined at once, so ``latest`` shows it."""
        if not 0 <= balance_wei < 2**256:
            raise PermanentError(f"balance out of range: {balance_wei}", code=ErrorCode.INVALID_PARAMETER)
        with self.lock:
            self._check_open()
            try:
                with self._db.transaction():
                    state = self._chain.get_vm().state
                    state.set_balance(to_canonical_address(address), balance_wei)
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
            self._wake.set()  # queued transactions of this address may be executable now

    def drop_transaction(self, tx_hash: bytes) -> bool:
        """Removes a pending transaction from the pool (Hardhat's ``dropTransaction``).

        Returns False when no such transaction is pending; raises ``PermanentError``
        (code ``already_mined``) when it is already in a block."""
        with self.lock:
            self._check_open()
            if self._mempool.drop(tx_hash) is not None:
                return True
            if self._is_mined(tx_hash):
                raise PermanentError(
                    f"Transaction 0x{tx_hash.hex()} cannot be dropped because it's already mined", code=ErrorCode.ALREADY_MINED
                )
            return False

    def mine_block(self) -> int:
        """Mines exactly one block now, empty if nothing is executable (``evm_mine``);
        returns how many transactions it holds."""
        with self.lock:
            self._check_open()
            return self._mine_ready(allow_empty=True)

    @property
    def next_base_fee_wei(self) -> int:
        """The base fee of the block being built (caller holds the lock)."""
        return self._chain.header.base_fee_per_gas

    def _check_open(self) -> None:
        if self.closed:
            raise TransientError("embedded chain is closed", code=ErrorCode.RPC_UNAVAILABLE)

    # ------------------------------------------------------------------ mining

    def _mine_ready(self, *, allow_empty: bool = False) -> int:
        """Mines one block of executable transactions (caller holds the lock).

        Without ``allow_empty`` nothing is mined when nothing is executable."""
        header = self._chain.header
        state = self._chain.get_vm().state
        chosen = self._mempool.executable(state.get_nonce, header.base_fee_per_gas, header.gas_limit)
        chosen = chosen[: self._max_block_txs]
        if not chosen and not allow_empty:
            return 0
        parent = self._chain.get_canonical_head()
        timestamp = max(int(time.time()), parent.timestamp + 1)
        try:
            with self._db.transaction():
                self._chain.header = header.copy(timestamp=timestamp)
                self._chain.mine_all([p.tx for p in chosen], mix_hash=os.urandom(32))
            included, dropped = chosen, []
        except Exception as exc:  # an invalid tx slipped past admission: include tx by tx
            log.warning("embedded block failed as a whole (%s); retrying tx by tx", type(exc).__name__)
            included, dropped = self._mine_one_by_one(chosen, timestamp)
        for ptx in (*included, *dropped):
            self._mempool.remove(ptx)
        state = self._chain.get_vm().state
        for sender in {p.sender for p in chosen}:
            self._mempool.prune(sender, state.get_nonce(sender))
        self._after_block()
        return len(included)

    def _after_block(self) -> None:
        self._head = self._chain.get_canonical_head().block_number
        self._notify_waiters()

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
                except Exception as exc:
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

    def _notify_waiters(self) -> None:
        with self._waiters_lock:
            ready = [w for w in self._waiters if w[0] <= self._head]
            self._waiters = [w for w in self._waiters if w[0] > self._head]
        for _, loop, fut in ready:
            try:
                loop.call_soon_threadsafe(_resolve, fut, self._head)
            except RuntimeError:  # that loop is closed
                pass

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
                try:
                    mined = self._mine_ready()
                except Exception:
                    log.exception("embedded miner failed")
                    self._reload_chain()
                    mined = 0
                if mined and len(self._mempool):
                    self._wake.set()

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Stops the miner and the chain thread and closes the state file. Idempotent."""
        with self.lock:
            if self.closed:
                return
            with self._waiters_lock:
                self.closed = True
                waiters, self._waiters = self._waiters, []
            self._wake.set()
        self._miner.join(timeout=30)
        self._executor.shutdown(wait=True)
        with self.lock:
            self._db.close()
        for _, loop, fut in waiters:
            try:
                loop.call_soon_threadsafe(_fail, fut)
            except RuntimeError:
                pass


def _fee_fields(tx: Any) -> tuple[int, int]:
    """(max fee per gas, max priority fee per gas) of a py-evm transaction; legacy: gas price twice."""
    max_fee = getattr(tx, "max_fee_per_gas", None)
    if max_fee is None:
        return tx.gas_price, tx.gas_price
    return max_fee, tx.max_priority_fee_per_gas


def _resolve(fut: asyncio.Future, value: int) -> None:
    if not fut.done():
        fut.set_result(value)


def _fail(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_exception(TransientError("embedded chain is closed", code=ErrorCode.RPC_UNAVAILABLE))
