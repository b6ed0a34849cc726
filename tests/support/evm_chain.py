"""Test helpers around the embedded EVM chain (``tokenforge.chains.evm.embedded``).

* :func:`wait_for_block` — awaits block ``number`` through the chain's block listeners
  (no polling);
* :func:`mine_all` — mines every executable pending transaction now;
* :func:`pending_count` — how many transactions wait in the chain's mempool.
"""

from __future__ import annotations

import asyncio

from tokenforge.chains.evm.embedded import EmbeddedEvmChain


async def wait_for_block(chain: EmbeddedEvmChain, number: int, timeout_s: float | None = None) -> int:
    """Waits until block ``number`` is mined; returns the head number then."""
    loop = asyncio.get_running_loop()
    reached: asyncio.Future[int] = loop.create_future()

    def on_block(head: int) -> None:  # runs on the thread that mined
        if head >= number:
            loop.call_soon_threadsafe(lambda: reached.done() or reached.set_result(head))

    chain.add_block_listener(on_block)
    try:
        if chain.head_number >= number:
            return chain.head_number
        return await asyncio.wait_for(reached, timeout_s)
    finally:
        chain.remove_block_listener(on_block)


def mine_all(chain: EmbeddedEvmChain) -> int:
    """Mines every executable pending transaction now (blocking); returns how many were included."""
    total = 0
    with chain.lock:
        while True:
            before = len(chain.mempool)
            if not before:
                return total
            mined = chain.mine_block()
            total += mined
            if not mined:  # an empty block: what is left cannot execute yet
                return total


def pending_count(chain: EmbeddedEvmChain) -> int:
    with chain.lock:
        return len(chain.mempool)
