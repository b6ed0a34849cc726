"""The market indexers of a process: one :class:`~.runner.ChainIndexer` per EVM chain.

:class:`MarketIndexers` builds, starts and stops them from the settings:

* **Embedded chains** are read through the chain the process's deployer registry opened,
  by an :class:`~tokenforge.market.evm_logs.EmbeddedLogSource`: each step's reads run at
  once on a reader thread of their own holding the chain lock (they neither queue behind
  launches and trades on the chain's thread nor wait for a block being mined more than
  once), at most :data:`EMBEDDED_STEP_BLOCKS` blocks a step and
  :data:`EMBEDDED_LOGS_BLOCKS` blocks per ``eth_getLogs``; its block listener, which runs
  on the miner thread, hands each new block to the event loop
  (``loop.call_soon_threadsafe``) as a wake-up.
  Only the process that opened the embedded chain can index it (``tokenforge serve``).
* **JSON-RPC chains** get their own RPC pool (:func:`tokenforge.bootstrap.rpc_pool`, with
  failover and breakers) behind :class:`~tokenforge.chains.evm.pooled_provider.PooledAsyncProvider`;
  the factory is the chain's ``factory_address``, else the first deployer key's nonce-0
  address (where :func:`~tokenforge.chains.evm.setup.ensure_factory` puts it). They poll
  every ``market.index_poll_s``.
* **Solana chains** are skipped (their market comes with the Solana program).

Every indexer writes through a :class:`~.writer.MarketWriter` on the process's database and
competes for its chain's lease, so any number of processes may run indexers: one writes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tokenforge.config import Settings
from tokenforge.domain.chains import CHAINS, Family, Network
from tokenforge.market.indexer.ports import LogSource
from tokenforge.market.indexer.runner import ChainIndexer

log = logging.getLogger(__name__)

#: Blocks per ``eth_getLogs`` on an embedded chain: few enough that the second call of a
#: range (the transfers) finds the blocks the first one decoded still in the chain's cache.
EMBEDDED_LOGS_BLOCKS = 8
#: Most blocks one indexer step reads on an embedded chain: the step holds the chain lock
#: (no block is mined meanwhile), so a backfill goes in short steps.
EMBEDDED_STEP_BLOCKS = 64


@dataclass
class _Running:
    indexer: ChainIndexer
    task: asyncio.Task | None = None
    #: undoes the wake-up subscription (embedded chains)
    unsubscribe: Callable[[], None] | None = None
    closers: list[Any] = field(default_factory=list)


class MarketIndexers:
    """The indexers of one process (see the module docstring).

    ``deployers`` is the process's :class:`~tokenforge.chains.registry.DeployerRegistry`
    (embedded chains are read through it), ``keystore`` names the default factory of a
    JSON-RPC chain. ``embedded`` / ``rpc``: which kinds of chain to index. ``leader_id``
    names this process in the chains' leases."""

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        deployers: Any,
        keystore: Any,
        *,
        leader_id: str,
        embedded: bool = True,
        rpc: bool = True,
    ) -> None:
        self.settings = settings
        self._sessions = sessions
        self._deployers = deployers
        self._keystore = keystore
        self.leader_id = leader_id
        self._running: dict[str, _Running] = {}
        self.chains = [
            chain
            for chain, cs in settings.chains.items()
            if CHAINS[chain].family is Family.EVM and (embedded if cs.network is Network.EMBEDDED else rpc)
        ]

    def __getitem__(self, chain: str) -> ChainIndexer:
        """The running indexer of ``chain`` (KeyError when it has none)."""
        return self._running[chain].indexer

    @property
    def indexers(self) -> dict[str, ChainIndexer]:
        return {chain: r.indexer for chain, r in self._running.items()}

    async def start(self) -> None:
        """Opens every chain's source and starts its loop (idempotent). A chain that cannot
        be opened raises (the process should not look healthy without its indexer)."""
        for chain in self.chains:
            if chain not in self._running:
                running = await self._open(chain)
                self._running[chain] = running
                running.task = asyncio.create_task(running.indexer.run(), name=f"market-indexer-{chain}")

    async def stop(self) -> None:
        """Stops every loop and closes what this object opened. Idempotent."""
        running, self._running = self._running, {}
        for r in running.values():
            if r.unsubscribe is not None:
                r.unsubscribe()
            if r.task is not None:
                r.task.cancel()
        for r in running.values():
            if r.task is not None:
                try:
                    await r.task
                except asyncio.CancelledError:
                    pass
            for close in r.closers:
                try:
                    await close()
                except Exception:  # closing is best effort
                    log.warning("closing the %s indexer's connections failed", r.indexer.chain, exc_info=True)

    async def _open(self, chain: str) -> _Running:
        from tokenforge.market.evm_logs import EmbeddedLogSource, EvmLogSource
        from tokenforge.market.indexer.writer import MarketWriter

        cs = self.settings.chains[chain]
        m = cs.market
        store = MarketWriter(
            self._sessions, chain, retention_1s_s=self.settings.market_candle_1s_retention_s
        )  # EVM: 18 native decimals (the writer's default)
        closers: list[Any] = []
        source: LogSource
        step_blocks = m.index_batch_blocks
        if cs.network is Network.EMBEDDED:
            deployer = await self._deployers.get(chain)
            embedded = deployer.embedded
            source = EmbeddedLogSource(chain, embedded, deployer.factory.address, batch_blocks=EMBEDDED_LOGS_BLOCKS)
            step_blocks = min(step_blocks, EMBEDDED_STEP_BLOCKS)
        else:
            from web3 import AsyncWeb3

            from tokenforge.bootstrap import rpc_pool
            from tokenforge.chains.evm.pooled_provider import PooledAsyncProvider

            pool = rpc_pool(chain, cs)
            closers.append(pool.close)
            w3 = AsyncWeb3(PooledAsyncProvider(pool))
            source = EvmLogSource(chain, w3, self._factory_address(chain), batch_blocks=m.index_batch_blocks)
        indexer = ChainIndexer(
            source,
            store,
            confirmations=m.index_confirmations,
            from_block=m.index_from_block,
            batch_blocks=step_blocks,
            poll_s=m.index_poll_s,
            leader_id=self.leader_id,
        )
        unsubscribe = None
        if cs.network is Network.EMBEDDED:
            unsubscribe = _wake_on_blocks(embedded, indexer)
        return _Running(indexer, unsubscribe=unsubscribe, closers=closers)

    def _factory_address(self, chain: str) -> str:
        cs = self.settings.chains[chain]
        if cs.factory_address:
            return cs.factory_address
        from tokenforge.chains.evm import codec
        from tokenforge.chains.evm.key_pool import account_from_key

        key = self._keystore.evm_deployer_keys(chain, 1)[0]
        return codec.create_address(account_from_key(key).address, 0)


def _wake_on_blocks(embedded: Any, indexer: ChainIndexer) -> Callable[[], None]:
    """Wakes ``indexer`` after every block of ``embedded`` (its listener runs on the miner
    thread: the wake-up is handed to this event loop). Returns the unsubscribe call."""
    loop = asyncio.get_running_loop()

    def on_block(_head: int) -> None:
        if not loop.is_closed():
            loop.call_soon_threadsafe(indexer.wake)

    embedded.add_block_listener(on_block)
    return lambda: embedded.remove_block_listener(on_block)
