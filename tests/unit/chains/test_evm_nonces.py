"""Per-signer nonce allocation: atomic, pipelined, releasable, resyncable."""

from __future__ import annotations

import asyncio

from tokenforge.chains.evm.nonces import NonceAllocator


class Node:
    def __init__(self, pending: int) -> None:
        self.pending = pending
        self.calls = 0

    async def count(self, signer: str) -> int:
        self.calls += 1
        await asyncio.sleep(0)  # yield, like a real RPC round trip
        return self.pending


async def test_first_allocation_reads_the_node_then_counts_locally():
    node = Node(7)
    alloc = NonceAllocator(node.count)
    assert [await alloc.allocate("a") for _ in range(3)] == [7, 8, 9]
    assert node.calls == 1


async def test_concurrent_allocations_are_unique_and_contiguous():
    node = Node(0)
    alloc = NonceAllocator(node.count)
    nonces = await asyncio.gather(*(alloc.allocate("a") for _ in range(100)))
    assert sorted(nonces) == list(range(100))
    assert node.calls == 1


async def test_signers_are_independent():
    node = Node(3)
    alloc = NonceAllocator(node.count)
    assert await alloc.allocate("a") == 3
    assert await alloc.allocate("b") == 3


async def test_releasing_the_last_nonce_hands_it_out_again():
    alloc = NonceAllocator(Node(0).count)
    for _ in range(3):
        await alloc.allocate("a")
    await alloc.release("a", 2)
    assert await alloc.allocate("a") == 2
    assert await alloc.allocate("a") == 3


async def test_released_gaps_are_filled_lowest_first():
    alloc = NonceAllocator(Node(0).count)
    for _ in range(5):
        await alloc.allocate("a")
    await alloc.release("a", 3)
    await alloc.release("a", 1)
    assert [await alloc.allocate("a") for _ in range(3)] == [1, 3, 5]


async def test_releasing_down_from_the_top_folds_into_the_counter():
    alloc = NonceAllocator(Node(0).count)
    for _ in range(4):
        await alloc.allocate("a")
    await alloc.release("a", 2)
    await alloc.release("a", 3)
    assert await alloc.cursor("a") == 2
    assert [await alloc.allocate("a") for _ in range(3)] == [2, 3, 4]


async def test_release_of_unknown_or_future_nonce_is_ignored():
    alloc = NonceAllocator(Node(0).count)
    await alloc.release("a", 0)
    await alloc.allocate("a")
    await alloc.release("a", 10)
    assert await alloc.allocate("a") == 1


async def test_resync_moves_forward_only():
    node = Node(0)
    alloc = NonceAllocator(node.count)
    for _ in range(3):
        await alloc.allocate("a")
    node.pending = 1  # the node has not seen our in-flight transactions yet
    await alloc.resync("a")
    assert await alloc.allocate("a") == 3
    node.pending = 10  # the key was used elsewhere
    await alloc.resync("a")
    assert await alloc.allocate("a") == 10
