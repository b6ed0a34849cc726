"""Per-signer nonce allocation for pipelined transactions from one key.

:class:`NonceSource` is what the EVM deployer and the nonce keeper need. Two sources
implement it: :class:`NonceAllocator` here, in process, for a chain one process owns (the
embedded default), and :class:`tokenforge.store.nonce_cursors.SqlNonceSource`, in the
database, for chains several worker processes sign on.


A nonce is handed out atomically (one ``asyncio.Lock`` per signer). The first allocation
reads the node's ``pending`` count; after that nonces are counted locally so many
transactions from one key can be signed and in flight at once. ``release`` takes back a
nonce whose transaction will never be broadcast: the next allocation reuses it, so no gap
stalls the signer's later transactions. ``resync`` moves forward to the node's count when
the local view fell behind (e.g. the key was used elsewhere).
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Awaitable, Callable
from typing import Protocol


class NonceSource(Protocol):
    async def allocate(self, signer: str) -> int:
        """The next nonce for ``signer``; never the same one twice."""
        ...

    async def release(self, signer: str, nonce: int) -> None:
        """``nonce`` will never be broadcast; hand it out again if that is safe."""
        ...

    async def resync(self, signer: str) -> None:
        """Move forward to the node's pending count if the local view fell behind."""
        ...

    async def cursor(self, signer: str) -> int | None:
        """The next nonce that would be handed out (None before first use)."""
        ...

    async def advance(self, signer: str, to: int) -> bool:
        """Move the cursor forward to ``to`` (no-op if it is already there or past it)."""
        ...

    async def rewind(self, signer: str, expected: int, to: int) -> bool:
        """Set the cursor to ``to`` if it still is ``expected`` (nobody allocated meanwhile)."""
        ...

    async def held(self, signer: str, from_nonce: int) -> set[int]:
        """Nonces >= ``from_nonce`` held by recorded, unfinished launches."""
        ...


class NonceAllocator:
    def __init__(self, fetch_pending_count: Callable[[str], Awaitable[int]]) -> None:
        self._fetch = fetch_pending_count
        self._locks: dict[str, asyncio.Lock] = {}
        self._next: dict[str, int] = {}
        self._released: dict[str, list[int]] = {}

    def _lock(self, signer: str) -> asyncio.Lock:
        return self._locks.setdefault(signer, asyncio.Lock())

    async def allocate(self, signer: str) -> int:
        async with self._lock(signer):
            released = self._released.get(signer)
            if released:
                return heapq.heappop(released)
            if signer not in self._next:
                self._next[signer] = await self._fetch(signer)
            nonce = self._next[signer]
            self._next[signer] = nonce + 1
            return nonce

    async def release(self, signer: str, nonce: int) -> None:
        async with self._lock(signer):
            nxt = self._next.get(signer)
            if nxt is None or nonce >= nxt:
                return  # not ours (or already forgotten): nothing to take back
            if nonce == nxt - 1:
                self._next[signer] = nonce
                # fold released nonces that now sit at the top back into the counter
                released = self._released.get(signer, [])
                while released and max(released) == self._next[signer] - 1:
                    released.remove(self._next[signer] - 1)
                    heapq.heapify(released)
                    self._next[signer] -= 1
            else:
                heap = self._released.setdefault(signer, [])
                if nonce not in heap:
                    heapq.heappush(heap, nonce)

    async def resync(self, signer: str) -> None:
        """Re-reads the node's pending count; never moves backwards past unconfirmed nonces."""
        async with self._lock(signer):
            chain_next = await self._fetch(signer)
            # below our counter, the node just has not seen our in-flight transactions yet
            if chain_next > self._next.get(signer, 0):
                self._next[signer] = chain_next
                self._released[signer] = [n for n in self._released.get(signer, []) if n >= chain_next]

    async def cursor(self, signer: str) -> int | None:
        return self._next.get(signer)

    async def advance(self, signer: str, to: int) -> bool:
        async with self._lock(signer):
            if self._next.get(signer, 0) >= to:
                return False
            self._next[signer] = to
            self._released[signer] = [n for n in self._released.get(signer, []) if n >= to]
            return True

    async def rewind(self, signer: str, expected: int, to: int) -> bool:
        async with self._lock(signer):
            if self._next.get(signer) != expected:
                return False
            self._next[signer] = to
            self._released[signer] = [n for n in self._released.get(signer, []) if n < to]
            return True

    async def held(self, signer: str, from_nonce: int) -> set[int]:
        return set()  # the in-process allocator does not know which launches hold nonces
