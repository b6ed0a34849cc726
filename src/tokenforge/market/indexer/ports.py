"""The indexer's two sides: where records come from, and where they are written.

* :class:`LogSource` — one chain's blocks as chain-neutral :mod:`tokenforge.market.events`
  (EVM: :class:`tokenforge.market.evm_logs.EvmLogSource`; Solana next).
* :class:`MarketStore` — the database side (:class:`tokenforge.market.indexer.writer.MarketWriter`):
  every batch is written in one transaction together with the checkpoint, fenced by the
  chain's leader lease, so several indexer processes never double-count.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from tokenforge.market.events import Batch, BlockRef


class LogSource(Protocol):
    """One chain's blocks. Vendor errors come out as TransientError/PermanentError."""

    chain: str

    async def head(self) -> int:
        """The newest block number."""
        ...

    async def block(self, number: int) -> BlockRef | None:
        """The canonical block at ``number`` now (None above the head)."""
        ...

    def know(self, markets: Iterable[tuple[str, str]]) -> None:
        """Adds ``(token, curve)`` pairs whose logs :meth:`fetch` must decode (the factory's
        own ``TokenCreated`` logs add theirs as they are read)."""
        ...

    async def fetch(self, from_block: int, to_block: int) -> Batch:
        """Every record of blocks ``from_block…to_block`` (inclusive) in chain order, with the
        :class:`BlockRef` of each block that has records and of ``to_block``. Raises
        TransientError ``rpc_incomplete`` when the chain changed under the read (a block's
        hash differs between its logs and its header): the caller reads again."""
        ...

    async def close(self) -> None: ...


class MarketStore(Protocol):
    """The indexer's database side for one chain. Every method is one transaction."""

    chain: str

    async def checkpoint(self) -> BlockRef | None:
        """The newest block written (None before the first batch)."""
        ...

    async def recent_blocks(self, limit: int) -> Sequence[BlockRef]:
        """Stored blocks, newest first (to find where a reorg forked)."""
        ...

    async def known_markets(self) -> list[tuple[str, str]]:
        """Every ``(token, curve)`` indexed so far."""
        ...

    async def acquire(self, leader: str, lease_s: float) -> bool:
        """Takes or renews the chain's indexing lease for ``leader``; False while another
        process holds an unexpired one."""
        ...

    async def apply(self, batch: Batch, *, leader: str) -> int:
        """Writes ``batch``: trades (idempotent by (tx id, log index)), candles, holders,
        market state, market events and the blocks, and moves the checkpoint to
        ``batch.blocks[-1]`` — all in one transaction, only while ``leader`` holds the lease
        and the checkpoint is still below the batch (else nothing is written, returns -1).
        Returns how many trades were new."""
        ...

    async def rollback(self, to_block: int, *, leader: str) -> int:
        """Undoes every block above ``to_block`` (a reorg): their trades, candles, holder
        changes, launches, graduations and blocks; market state recomputed; a ``rollback``
        market event; checkpoint moved to ``to_block`` (when ``to_block`` itself was not
        stored — it had no records — to the newest stored block below it, equivalent; with
        none stored, to ``to_block`` with an empty hash). Only while ``leader`` holds the
        lease (else nothing is undone, returns -1); 0 when the checkpoint is not above
        ``to_block``. Returns the trades removed."""
        ...
