"""The follow loop of one chain's market indexer: lease, reorg check, fetch, write, repeat.

:class:`ChainIndexer` joins a :class:`~.ports.LogSource` and a :class:`~.ports.MarketStore`.
One :meth:`~ChainIndexer.step`:

1. takes or renews the chain's leader lease (:meth:`MarketStore.acquire`; a leader renews
   once a third of the lease has passed); a process without it writes nothing and only
   follows the checkpoint others move;
2. reads the chain (:func:`read_step`, or the source's own ``read_step`` doing the same
   at once): the stored checkpoint still the chain's block at its number, the head, then
   checkpoint + 1 … min(head − ``confirmations``, checkpoint + ``batch_blocks``), then the
   checkpoint still canonical (a reorg during the read discards the batch);
3. on a mismatch it walks back :meth:`MarketStore.recent_blocks` to the newest block the
   chain still has and rolls back to it (:meth:`MarketStore.rollback`), and steps again at
   once; else it writes the batch (:meth:`MarketStore.apply`, fenced by the lease);
4. once a minute, the leader calls the store's ``refresh_24h(now_s)`` when it has one
   (24 h figures of markets that stopped trading age out).

:meth:`~ChainIndexer.run` repeats steps without sleeping while behind (a backfill), else
waits ``poll_s`` or until :meth:`~ChainIndexer.wake` (a new block's notification is only
ever a wake-up, never a source of records). The first block ever indexed is
``from_block``, else ``await source.first_block()`` when the source has one (the EVM source:
the factory's deployment block), else 0. Errors never end the loop: each failed step backs
off (``backoff_base_s`` doubling up to ``backoff_max_s``) and is retried; a streak of
failures is logged once, and its end once.

Metrics (:mod:`tokenforge.observability.metrics`): ``tokenforge_index_head_lag_blocks``,
``tokenforge_index_trades_total``, ``tokenforge_index_reorgs_total``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

from tokenforge.errors import TokenForgeError
from tokenforge.market.events import Batch, BlockRef
from tokenforge.market.indexer.ports import LogSource, MarketStore
from tokenforge.observability.metrics import INDEX_HEAD_LAG, INDEX_REORGS, INDEX_TRADES

log = logging.getLogger(__name__)

#: How many stored blocks a reorg walk looks at (deeper forks roll back to the oldest).
REORG_WALK_BLOCKS = 1024
#: How often the leader refreshes every market's 24 h figures.
REFRESH_24H_S = 60.0


class ChainIndexer:
    """Indexes one chain's markets. See the module docstring.

    ``leader_id`` names this process in the lease (unique per process and chain);
    ``lease_s`` is how long a lease lasts without renewal (renewed every step, and a
    follower retries every ``lease_s / 3`` at the latest)."""

    def __init__(
        self,
        source: LogSource,
        store: MarketStore,
        *,
        confirmations: int = 0,
        from_block: int | None = None,
        batch_blocks: int = 2000,
        poll_s: float = 0.5,
        leader_id: str,
        lease_s: float = 15.0,
        backoff_base_s: float = 0.2,
        backoff_max_s: float = 30.0,
    ) -> None:
        self.source = source
        self.store = store
        self.chain = store.chain
        self.confirmations = max(0, confirmations)
        self.from_block = from_block
        self.batch_blocks = max(1, batch_blocks)
        self.poll_s = poll_s
        self.leader_id = leader_id
        self.lease_s = lease_s
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        #: True while this process holds the lease (as of its last step)
        self.leading = False
        #: True when the last step stopped short of the indexable head
        self.behind = False
        #: the newest block the store holds, as last read or written (-1: none yet)
        self.indexed_block = -1
        self._known_loaded = False
        self._wake = asyncio.Event()
        self._progress = asyncio.Condition()
        self._failures = 0
        self._refreshed_at = float("-inf")
        self._renewed_at = float("-inf")

    # ------------------------------------------------------------------ control

    def wake(self) -> None:
        """Ends the current idle wait (call from the event loop's thread)."""
        self._wake.set()

    async def wait_indexed(self, block_number: int, timeout_s: float) -> None:
        """Returns once the checkpoint this indexer sees is at ``block_number`` or above;
        TimeoutError after ``timeout_s``."""
        async with asyncio.timeout(timeout_s), self._progress:
            await self._progress.wait_for(lambda: self.indexed_block >= block_number)

    async def run(self) -> None:
        """Steps until cancelled (see the module docstring); never raises otherwise."""
        while True:
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the loop outlives every failure
                await self._back_off(exc)
                continue
            if self._failures:
                log.info("%s indexer recovered after %d failed steps", self.chain, self._failures)
                self._failures = 0
            if self.behind and self.leading:
                await asyncio.sleep(0)  # backfill: straight on, letting others run
                continue
            await self._idle(self.poll_s if self.leading else min(self.poll_s, self.lease_s / 3))

    async def step(self) -> int:
        """One round; returns how many new trades it wrote (0 when it is not the leader or
        nothing was due). Errors propagate (:meth:`run` backs off on them)."""
        await self._hold_lease()
        checkpoint = await self.store.checkpoint()
        await self._advance(checkpoint)
        if not self.leading:
            self.behind = False
            return 0
        if not self._known_loaded:
            self.source.know(await self.store.known_markets())
            self._known_loaded = True
        await self._refresh_figures()
        first = checkpoint.number + 1 if checkpoint is not None else await self._first_block()
        read = getattr(self.source, "read_step", None)
        if read is not None:  # the source reads the whole step at once (the embedded chain)
            got: StepRead = await read(checkpoint, first, self.confirmations, self.batch_blocks)
        else:
            got = await read_step(self.source, checkpoint, first, self.confirmations, self.batch_blocks)
        if not got.canonical:  # reorganised before or during the read: roll back, go on
            await self._roll_back(cast(BlockRef, checkpoint))
            self.behind = True
            return 0
        indexable = got.head - self.confirmations
        INDEX_HEAD_LAG.labels(self.chain).set(max(0, indexable - (first - 1)))
        batch = got.batch
        if batch is None:
            self.behind = False
            return 0
        last = batch.blocks[-1].number  # a batch always ends with its last block's ref
        written = await self.store.apply(batch, leader=self.leader_id)
        if written < 0:  # the lease moved or another leader wrote first: re-read
            self.leading = False
            self._renewed_at = float("-inf")
            self.behind = False
            self._known_loaded = False
            return 0
        INDEX_TRADES.labels(self.chain).inc(written)
        INDEX_HEAD_LAG.labels(self.chain).set(max(0, indexable - last))
        self.behind = last < indexable
        await self._advance(batch.blocks[-1] if batch.blocks else None)
        return written

    # ------------------------------------------------------------------ parts

    async def _hold_lease(self) -> None:
        """Takes or renews the lease; a leader renews it only once a third of it has passed
        (each renewal is a write, and a step follows every block). ``apply`` is fenced by
        the lease in its own transaction, so a lapsed lease never lets a write through."""
        now = time.monotonic()
        if self.leading and now - self._renewed_at < self.lease_s / 3:
            return
        self.leading = await self.store.acquire(self.leader_id, self.lease_s)
        self._renewed_at = now if self.leading else float("-inf")

    async def _canonical(self, ref: BlockRef) -> bool:
        return await canonical(self.source, ref)

    async def _roll_back(self, checkpoint: BlockRef) -> BlockRef | None:
        """Rolls the store back to the newest stored block still canonical; returns the new checkpoint."""
        recent = await self.store.recent_blocks(REORG_WALK_BLOCKS)
        fork: BlockRef | None = None
        for ref in recent:  # newest first
            if await self._canonical(ref):
                fork = ref
                break
        if fork is not None:
            to_block = fork.number
        elif recent:
            to_block = min(r.number for r in recent) - 1
            log.error(
                "%s: no stored block of the last %d is canonical: rolling back to block %d",
                self.chain,
                len(recent),
                to_block,
            )
        else:
            to_block = checkpoint.number - 1
        removed = await self.store.rollback(to_block, leader=self.leader_id)
        if removed < 0:  # the lease moved on: the new leader handles the reorg
            self.leading = False
            self._renewed_at = float("-inf")
            return await self.store.checkpoint()
        INDEX_REORGS.labels(self.chain).inc()
        log.warning(
            "%s reorg: block %d %s is no longer canonical; rolled back to block %d (%d trades removed)",
            self.chain,
            checkpoint.number,
            checkpoint.hash,
            to_block,
            removed,
        )
        self._known_loaded = False  # launches above the fork are gone
        new = await self.store.checkpoint()
        await self._advance(new)
        return new

    async def _refresh_figures(self) -> None:
        """Every :data:`REFRESH_24H_S`, the store's ``refresh_24h`` (when it has one): 24 h
        figures of markets without trades lately age out."""
        refresh = getattr(self.store, "refresh_24h", None)
        now = time.time()
        if refresh is not None and now - self._refreshed_at >= REFRESH_24H_S:
            self._refreshed_at = now
            await refresh(now)

    async def _first_block(self) -> int:
        if self.from_block is None:
            finder = getattr(self.source, "first_block", None)
            self.from_block = int(await cast(Callable[[], Awaitable[int]], finder)()) if finder is not None else 0
        return self.from_block

    async def _advance(self, checkpoint: BlockRef | None) -> None:
        """Records the store's checkpoint (up, or down after a rollback) and wakes waiters."""
        number = checkpoint.number if checkpoint is not None else -1
        if number != self.indexed_block:
            async with self._progress:
                self.indexed_block = number
                self._progress.notify_all()

    async def _idle(self, seconds: float) -> None:
        try:
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        except TimeoutError:
            pass
        self._wake.clear()

    async def _back_off(self, exc: Exception) -> None:
        self._failures += 1
        self.behind = False
        if self._failures == 1:
            what = str(exc) if isinstance(exc, TokenForgeError) else f"{type(exc).__name__}: {exc}"
            if isinstance(exc, TokenForgeError):
                log.warning("%s indexer step failed (retrying with back-off): %s", self.chain, what)
            else:
                log.error("%s indexer step failed (retrying with back-off): %s", self.chain, what, exc_info=exc)
        delay = min(self.backoff_max_s, self.backoff_base_s * 2 ** min(self._failures - 1, 20))
        await asyncio.sleep(delay)


@dataclass(frozen=True, slots=True)
class StepRead:
    """What one step read from the chain: whether the checkpoint was canonical before and
    after the read (False: roll back), the head, and the records of the next blocks (None
    when none is indexable yet)."""

    canonical: bool
    head: int
    batch: Batch | None


async def read_step(
    source: LogSource, checkpoint: BlockRef | None, first: int, confirmations: int, max_blocks: int
) -> StepRead:
    """A step's chain reads: the checkpoint still canonical, the head, then blocks ``first``
    … min(head − ``confirmations``, ``first + max_blocks − 1``), then the checkpoint still
    canonical (a reorg during the read discards the batch). A source may provide its own
    ``read_step`` doing the same at once (the embedded chain: under one lock)."""
    if checkpoint is not None and not await canonical(source, checkpoint):
        return StepRead(False, -1, None)
    head = await source.head()
    indexable = head - confirmations
    if indexable < first:
        return StepRead(True, head, None)
    batch = await source.fetch(first, min(indexable, first + max_blocks - 1))
    if checkpoint is not None and not await canonical(source, checkpoint):
        return StepRead(False, head, None)
    return StepRead(True, head, batch)


async def canonical(source: LogSource, ref: BlockRef) -> bool:
    """Whether ``ref`` is still the chain's block at its number. A ref without a hash (a
    checkpoint a rollback left below every stored block) has nothing to compare: kept."""
    if not ref.hash:
        return True
    current = await source.block(ref.number)
    return current is not None and current.hash == ref.hash
