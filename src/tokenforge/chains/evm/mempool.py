"""The embedded chain's pending-transaction pool, ordered as a real node orders it.

Transactions wait per sender, keyed by nonce. Only a sender's *contiguous* run of nonces
starting at its on-chain nonce is executable; a transaction with a future nonce stays here
until the gap is filled (or forever, like on a real node, if it never is). A second
transaction with the same (sender, nonce) replaces the first only with fees at least 10 %
higher. :meth:`Mempool.drop` takes a transaction out again (a development node's
``dropTransaction``). Pure data structure: no locking (the chain holds its lock around every call).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

REPLACEMENT_BUMP_PERCENT = 10


class MempoolReject(Exception):
    """Raised for a transaction a node would refuse; the message mirrors geth's wording."""


@dataclass(slots=True)
class PendingTx:
    tx: Any  # py-evm SignedTransactionAPI
    sender: bytes
    nonce: int
    hash: bytes
    max_fee_per_gas: int
    max_priority_fee_per_gas: int
    gas: int


class Mempool:
    def __init__(self) -> None:
        self._by_sender: dict[bytes, dict[int, PendingTx]] = {}
        self._by_hash: dict[bytes, PendingTx] = {}

    def __len__(self) -> int:
        return len(self._by_hash)

    def __iter__(self) -> Iterator[PendingTx]:
        """Every pending transaction (future nonces included), in arrival order."""
        return iter(list(self._by_hash.values()))

    def get(self, tx_hash: bytes) -> PendingTx | None:
        return self._by_hash.get(tx_hash)

    def add(self, ptx: PendingTx) -> bool:
        """Adds ``ptx``; False if it is already known. Raises MempoolReject for an underpriced replacement."""
        if ptx.hash in self._by_hash:
            return False
        queue = self._by_sender.setdefault(ptx.sender, {})
        old = queue.get(ptx.nonce)
        if old is not None:
            bump = 100 + REPLACEMENT_BUMP_PERCENT
            if ptx.max_fee_per_gas * 100 < old.max_fee_per_gas * bump or (
                ptx.max_priority_fee_per_gas * 100 < old.max_priority_fee_per_gas * bump
            ):
                raise MempoolReject("replacement transaction underpriced")
            del self._by_hash[old.hash]
        queue[ptx.nonce] = ptx
        self._by_hash[ptx.hash] = ptx
        return True

    def next_nonce(self, sender: bytes, state_nonce: int) -> int:
        """The nonce a node reports as ``pending``: past the contiguous run from ``state_nonce``."""
        queue = self._by_sender.get(sender, {})
        nonce = state_nonce
        while nonce in queue:
            nonce += 1
        return nonce

    def executable(self, state_nonce_of, base_fee: int, gas_budget: int) -> list[PendingTx]:
        """Transactions for the next block: per sender the contiguous nonce run, fees ≥ base fee,
        total gas limit within ``gas_budget``; senders interleaved fairly, each in nonce order."""
        runs: list[list[PendingTx]] = []
        for sender, queue in self._by_sender.items():
            nonce = state_nonce_of(sender)
            run = []
            while (ptx := queue.get(nonce)) is not None and ptx.max_fee_per_gas >= base_fee:
                run.append(ptx)
                nonce += 1
            if run:
                runs.append(run)
        chosen: list[PendingTx] = []
        gas = 0
        depth = 0
        while runs:
            still = []
            for run in runs:
                if depth < len(run):
                    ptx = run[depth]
                    if gas + ptx.gas > gas_budget:
                        continue  # this sender's later nonces wait for the next block
                    chosen.append(ptx)
                    gas += ptx.gas
                    still.append(run)
            runs = still
            depth += 1
        return chosen

    def remove(self, ptx: PendingTx) -> None:
        self._by_hash.pop(ptx.hash, None)
        queue = self._by_sender.get(ptx.sender)
        if queue is not None and queue.get(ptx.nonce) is ptx:
            del queue[ptx.nonce]
            if not queue:
                del self._by_sender[ptx.sender]

    def drop(self, tx_hash: bytes) -> PendingTx | None:
        """Removes the pending transaction ``tx_hash``; returns it, or None if it is not here.

        The sender's later nonces stay queued (a nonce gap, as after Hardhat's ``dropTransaction``)."""
        ptx = self._by_hash.get(tx_hash)
        if ptx is not None:
            self.remove(ptx)
        return ptx

    def prune(self, sender: bytes, state_nonce: int) -> None:
        """Drops ``sender``'s transactions whose nonce is already used on chain."""
        queue = self._by_sender.get(sender)
        if not queue:
            return
        for nonce in [n for n in queue if n < state_nonce]:
            self.remove(queue[nonce])
