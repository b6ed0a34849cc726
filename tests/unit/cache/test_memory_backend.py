"""The per-process backend: the backend contract, plus expiry and its size bound."""

from __future__ import annotations

import pytest

from tests.unit.cache.contract import BackendContract
from tests.unit.cache.helpers import FakeClock
from tokenforge.cache.memory import MemoryBackend


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def backend(clock):
    return MemoryBackend(clock=clock)


@pytest.fixture
def key():
    return "tf-test"


@pytest.fixture
def ttl_left_s(backend, clock):
    async def ttl_left_s(key: str) -> float | None:
        entry = backend._values.get(key)
        return None if entry is None else entry[0] - clock()

    return ttl_left_s


class TestMemoryBackend(BackendContract):
    pass


async def fill(backend: MemoryBackend, key: str, value: bytes, ttl_s: float) -> None:
    claim = await backend.claim(key, 1.0)
    assert await backend.fill(key, value, ttl_s, claim.lease)


async def test_a_value_is_gone_once_its_ttl_has_passed(backend, clock):
    await fill(backend, "a", b"1", 5.0)
    clock.advance(4.9)
    assert await backend.get("a") == ("a", b"1")
    clock.advance(0.2)
    assert await backend.get("a") == ("a", None)
    assert len(backend) == 0


async def test_an_expired_lease_can_be_taken_again_and_the_old_one_fills_nothing(backend, clock):
    old = await backend.claim("a", 2.0)
    clock.advance(1.9)
    assert (await backend.claim("a", 2.0)).lease is None
    clock.advance(0.2)
    new = await backend.claim("a", 2.0)
    assert new.lease
    assert await backend.fill("a", b"late", 5.0, old.lease) is False
    assert await backend.fill("a", b"fresh", 5.0, new.lease) is True


async def test_the_least_recently_read_entries_go_first_past_the_bound(clock):
    backend = MemoryBackend(max_entries=3, clock=clock)
    for name in "abc":
        await fill(backend, name, name.encode(), 60.0)
    await backend.get("a")  # read: now the most recent
    await fill(backend, "d", b"d", 60.0)
    assert len(backend) == 3
    assert [(await backend.get(k))[1] for k in "abcd"] == [b"a", None, b"c", b"d"]
