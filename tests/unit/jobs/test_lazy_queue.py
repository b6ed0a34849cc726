"""LazyQueue: readiness probes give up on a connect after a second; the connect must go
on once, be shared, and never leave a broker connection that nobody closes."""

from __future__ import annotations

import asyncio

import pytest

from tokenforge.errors import ErrorCode, TransientError
from tokenforge.jobs.backends.lazy import LazyQueue
from tokenforge.jobs.backends.memory import MemoryQueue


class SlowBroker:
    """A connect factory: each connect waits for ``release``, then fails while ``down``."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.down = False
        self.connects = 0
        self.opened: list[ClosingQueue] = []
        self.opened_one = asyncio.Event()

    async def connect(self) -> ClosingQueue:
        self.connects += 1
        await self.release.wait()
        if self.down:
            raise TransientError("broker down", code=ErrorCode.BROKER_UNAVAILABLE)
        queue = ClosingQueue()
        self.opened.append(queue)
        self.opened_one.set()
        return queue


class ClosingQueue(MemoryQueue):
    def __init__(self) -> None:
        super().__init__()
        self.closed = asyncio.Event()

    async def close(self) -> None:
        await super().close()
        self.closed.set()


async def test_callers_that_give_up_share_one_connect_which_goes_on_and_is_used():
    broker = SlowBroker()
    lazy = LazyQueue(broker.connect)
    for _ in range(3):  # three readiness probes, each giving up
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(lazy.depth("t"), 0.01)
    broker.release.set()
    assert await lazy.depth("t") == 0
    assert broker.connects == 1, "one connect, not one per probe"
    await lazy.close()
    assert broker.opened[0].closed.is_set()


async def test_a_failed_connect_is_tried_again_at_the_next_use():
    broker = SlowBroker()
    broker.release.set()
    broker.down = True
    lazy = LazyQueue(broker.connect)
    with pytest.raises(TransientError) as raised:
        await lazy.ping()
    assert raised.value.code == ErrorCode.BROKER_UNAVAILABLE
    broker.down = False
    await lazy.ping()
    assert broker.connects == 2
    await lazy.close()


async def test_a_connect_finishing_after_close_is_closed_at_once():
    broker = SlowBroker()
    lazy = LazyQueue(broker.connect)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(lazy.ping(), 0.01)
    await lazy.close()
    broker.release.set()
    await asyncio.wait_for(broker.opened_one.wait(), 5)
    await asyncio.wait_for(broker.opened[0].closed.wait(), 5)
    with pytest.raises(TransientError):
        await lazy.ping()
    assert broker.connects == 1, "a closed queue does not connect again"
