"""The embedded chain's pool orders by (sender, nonce) and keeps future nonces waiting."""

from __future__ import annotations

import pytest

from tokenforge.chains.evm.mempool import Mempool, MempoolReject, PendingTx

A, B = b"\xaa" * 20, b"\xbb" * 20


def ptx(sender: bytes, nonce: int, fee: int = 10, gas: int = 100, tag: int = 0) -> PendingTx:
    return PendingTx(
        tx=None,
        sender=sender,
        nonce=nonce,
        hash=bytes([sender[0], nonce, fee, tag]),
        max_fee_per_gas=fee,
        max_priority_fee_per_gas=fee,
        gas=gas,
    )


def nonces(chosen):
    return [(p.sender, p.nonce) for p in chosen]


def test_future_nonce_waits_until_the_gap_is_filled():
    pool = Mempool()
    pool.add(ptx(A, 1))
    pool.add(ptx(A, 2))
    assert pool.executable(lambda s: 0, base_fee=1, gas_budget=10**9) == []
    assert pool.next_nonce(A, 0) == 0
    pool.add(ptx(A, 0))
    assert nonces(pool.executable(lambda s: 0, 1, 10**9)) == [(A, 0), (A, 1), (A, 2)]
    assert pool.next_nonce(A, 0) == 3


def test_senders_are_interleaved_each_in_nonce_order():
    pool = Mempool()
    for n in (2, 0, 1):
        pool.add(ptx(A, n))
    for n in (5, 6):
        pool.add(ptx(B, n))
    chosen = nonces(pool.executable(lambda s: 0 if s == A else 5, 1, 10**9))
    assert chosen == [(A, 0), (B, 5), (A, 1), (B, 6), (A, 2)]


def test_gas_budget_cuts_a_sender_run_without_gaps():
    pool = Mempool()
    for n in range(4):
        pool.add(ptx(A, n, gas=100))
    assert nonces(pool.executable(lambda s: 0, 1, gas_budget=250)) == [(A, 0), (A, 1)]


def test_fee_below_base_fee_is_not_executable():
    pool = Mempool()
    pool.add(ptx(A, 0, fee=5))
    assert pool.executable(lambda s: 0, base_fee=6, gas_budget=10**9) == []


def test_duplicate_is_not_an_error_and_replacement_needs_ten_percent_more():
    pool = Mempool()
    first = ptx(A, 0, fee=100)
    assert pool.add(first) is True
    assert pool.add(first) is False
    with pytest.raises(MempoolReject, match="underpriced"):
        pool.add(ptx(A, 0, fee=109, tag=1))
    better = ptx(A, 0, fee=110, tag=2)
    assert pool.add(better) is True
    assert pool.get(first.hash) is None and pool.get(better.hash) is better
    assert len(pool) == 1


def test_prune_drops_used_nonces():
    pool = Mempool()
    for n in range(3):
        pool.add(ptx(A, n))
    pool.prune(A, 2)
    assert nonces(pool.executable(lambda s: 2, 1, 10**9)) == [(A, 2)]
    assert len(pool) == 1
