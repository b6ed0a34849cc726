"""The cache backend contract (``cache/ports.py``), run on every backend.

A backend's test module subclasses :class:`BackendContract` and provides the fixtures
``backend`` (an open backend), ``key`` (a key prefix no other test uses) and
``ttl_left_s`` (an async function: seconds a key has left, None when it is absent).
"""

from __future__ import annotations

from tokenforge.cache.ports import Claim


class BackendContract:
    async def test_a_missing_key_reads_as_none_under_its_own_name(self, backend, key):
        assert await backend.get(f"{key}:a") == (f"{key}:a", None)

    async def test_a_generation_that_was_never_bumped_is_zero(self, backend, key):
        assert await backend.get(f"{key}:page", f"{key}:gen") == (f"{key}:page:g0", None)

    async def test_the_lease_holder_fills_and_everybody_reads_the_value(self, backend, key, ttl_left_s):
        value = b'{"id":"t1","name":"\xc3\xa9"}\x00\xff'  # any bytes, as they are
        claim = await backend.claim(f"{key}:a", 5.0)
        assert claim.lease and claim.value is None
        assert await backend.fill(f"{key}:a", value, 5.0, claim.lease) is True
        assert await backend.get(f"{key}:a") == (f"{key}:a", value)
        assert await backend.claim(f"{key}:a", 5.0) == Claim(value=value)
        assert 4.0 < await ttl_left_s(f"{key}:a") <= 5.0

    async def test_one_lease_at_a_time(self, backend, key):
        first = await backend.claim(f"{key}:a", 5.0)
        assert first.lease
        assert await backend.claim(f"{key}:a", 5.0) == Claim()
        assert await backend.fill(f"{key}:a", None, 5.0, first.lease) is False  # released, nothing stored
        second = await backend.claim(f"{key}:a", 5.0)
        assert second.lease and second.lease != first.lease
        assert await backend.fill(f"{key}:a", b"x", 5.0, first.lease) is False, "a released lease fills nothing"
        assert await backend.get(f"{key}:a") == (f"{key}:a", None)

    async def test_an_invalidation_between_claim_and_fill_keeps_the_old_value_out(self, backend, key):
        claim = await backend.claim(f"{key}:a", 5.0)
        await backend.invalidate([f"{key}:a"], [])
        assert await backend.fill(f"{key}:a", b"read before the commit", 5.0, claim.lease) is False
        assert await backend.get(f"{key}:a") == (f"{key}:a", None)
        assert (await backend.claim(f"{key}:a", 5.0)).lease, "the next reader may fill it"

    async def test_invalidate_deletes_keys_and_leaves_the_others(self, backend, key):
        for name in ("a", "b"):
            claim = await backend.claim(f"{key}:{name}", 5.0)
            await backend.fill(f"{key}:{name}", name.encode(), 5.0, claim.lease)
        await backend.invalidate([f"{key}:a", f"{key}:missing"], [])
        assert await backend.get(f"{key}:a") == (f"{key}:a", None)
        assert await backend.get(f"{key}:b") == (f"{key}:b", b"b")

    async def test_a_generation_bump_moves_every_key_under_it(self, backend, key):
        resolved, _ = await backend.get(f"{key}:page", f"{key}:gen")
        claim = await backend.claim(resolved, 5.0)
        await backend.fill(resolved, b"old page", 5.0, claim.lease)
        assert await backend.get(f"{key}:page", f"{key}:gen") == (f"{key}:page:g0", b"old page")
        await backend.invalidate([], [f"{key}:gen"])
        await backend.invalidate([], [f"{key}:gen"])
        assert await backend.get(f"{key}:page", f"{key}:gen") == (f"{key}:page:g2", None)
        assert await backend.get(f"{key}:other", f"{key}:other-gen") == (f"{key}:other:g0", None)

    async def test_ping_answers(self, backend):
        await backend.ping()
