"""EVM fee oracle: EIP-1559 and legacy pricing, the cap, caching, and replacement bumps."""

from __future__ import annotations

import asyncio

import pytest
from web3.exceptions import Web3RPCError

from tokenforge.chains.evm.fees import FeeOracle, Fees
from tokenforge.errors import PermanentError, TransientError

GWEI = 10**9


class Clock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


class FakeEth:
    """The ``eth`` methods of ``AsyncWeb3`` the oracle uses, answering from fixed values."""

    def __init__(
        self, *, base_fees_wei=(10 * GWEI,), rewards_wei=(), max_priority_fee_wei=GWEI, gas_price_wei=5 * GWEI
    ) -> None:
        self.base_fees_wei = list(base_fees_wei)
        self.rewards_wei = list(rewards_wei)
        self.max_priority_fee_wei = max_priority_fee_wei
        self.gas_price_wei = gas_price_wei
        self.calls: list[tuple] = []
        self.release: asyncio.Event | None = None  # when set, fee_history waits for it
        self.fetching = asyncio.Event()  # set by the first fee_history call
        self.error: Exception | None = None

    async def fee_history(self, block_count, newest_block, reward_percentiles=None):
        self.calls.append(("eth_feeHistory", block_count, newest_block, reward_percentiles))
        self.fetching.set()
        if self.release is not None:
            await self.release.wait()
        if self.error is not None:
            raise self.error
        return {
            "oldestBlock": 1,
            "baseFeePerGas": self.base_fees_wei,
            "gasUsedRatio": [0.5] * len(self.rewards_wei),
            "reward": [[r] for r in self.rewards_wei],
        }

    @property
    async def max_priority_fee(self):
        self.calls.append(("eth_maxPriorityFeePerGas",))
        return self.max_priority_fee_wei

    @property
    async def gas_price(self):
        self.calls.append(("eth_gasPrice",))
        return self.gas_price_wei


class FakeWeb3:
    def __init__(self, **eth) -> None:
        self.eth = FakeEth(**eth)


def oracle(w3, **kw) -> FeeOracle:
    kw.setdefault("max_fee_per_gas_cap_wei", 500 * GWEI)
    return FeeOracle(w3, **kw)


def test_tx_fields():
    assert Fees(30, 2).tx_fields() == {"maxFeePerGas": 30, "maxPriorityFeePerGas": 2}
    assert Fees(7, 7, legacy=True).tx_fields() == {"gasPrice": 7}


async def test_eip1559_uses_one_fee_history_call_and_the_median_non_zero_reward():
    w3 = FakeWeb3(base_fees_wei=[8 * GWEI, 9 * GWEI, 10 * GWEI], rewards_wei=[0, 3 * GWEI, GWEI, 2 * GWEI, 0])
    fees = await oracle(w3, history_blocks=5, reward_percentile=40.0).current()
    assert fees == Fees(2 * 10 * GWEI + 2 * GWEI, 2 * GWEI)
    assert w3.eth.calls == [("eth_feeHistory", 5, "latest", [40.0])]


async def test_configured_priority_fee_wins_over_rewards():
    w3 = FakeWeb3(base_fees_wei=[10 * GWEI], rewards_wei=[3 * GWEI])
    fees = await oracle(w3, priority_fee_wei=GWEI // 2, base_fee_multiplier=1.5).current()
    assert fees == Fees(15 * GWEI + GWEI // 2, GWEI // 2)


async def test_only_empty_blocks_fall_back_to_the_nodes_priority_fee():
    w3 = FakeWeb3(base_fees_wei=[10 * GWEI], rewards_wei=[0, 0], max_priority_fee_wei=3 * GWEI)
    fees = await oracle(w3).current()
    assert fees.max_priority_fee_per_gas_wei == 3 * GWEI
    assert [c[0] for c in w3.eth.calls] == ["eth_feeHistory", "eth_maxPriorityFeePerGas"]


async def test_the_tip_never_falls_below_the_minimum():
    w3 = FakeWeb3(base_fees_wei=[7], rewards_wei=[], max_priority_fee_wei=0)
    assert await oracle(w3).current() == Fees(15, 1)
    w3 = FakeWeb3(base_fees_wei=[10 * GWEI], rewards_wei=[GWEI])
    fees = await oracle(w3, min_priority_fee_wei=25 * GWEI).current()
    assert fees == Fees(45 * GWEI, 25 * GWEI)


async def test_max_fee_is_capped_and_the_tip_stays_within_it():
    w3 = FakeWeb3(base_fees_wei=[40 * GWEI], rewards_wei=[2 * GWEI])
    fees = await oracle(w3, max_fee_per_gas_cap_wei=50 * GWEI).current()
    assert fees == Fees(50 * GWEI, 2 * GWEI)


async def test_base_fee_plus_tip_above_the_cap_is_a_transient_fee_above_cap():
    w3 = FakeWeb3(base_fees_wei=[49 * GWEI], rewards_wei=[int(1.5 * GWEI)])
    with pytest.raises(TransientError) as caught:
        await oracle(w3, max_fee_per_gas_cap_wei=50 * GWEI, block_time_s=2.0).current()
    err = caught.value
    assert err.code == "fee_above_cap"
    assert "base fee 49 gwei" in err.message and "tip 1.5 gwei" in err.message and "cap of 50 gwei" in err.message
    assert err.retry_after_s == 2.0  # one block of 1/8 fall suffices


async def test_retry_after_counts_the_blocks_the_base_fee_needs_to_fall():
    w3 = FakeWeb3(base_fees_wei=[100 * GWEI], rewards_wei=[GWEI])
    with pytest.raises(TransientError) as caught:
        await oracle(w3, max_fee_per_gas_cap_wei=51 * GWEI, block_time_s=12.0).current()
    # 100 * (7/8)^k <= 50 first holds at k = 6
    assert caught.value.retry_after_s == 6 * 12.0


async def test_a_chain_without_base_fee_is_a_permanent_error():
    w3 = FakeWeb3(base_fees_wei=[], rewards_wei=[])
    with pytest.raises(PermanentError) as caught:
        await oracle(w3).current()
    assert caught.value.code == "eip1559_unsupported"


async def test_node_errors_are_translated():
    w3 = FakeWeb3()
    w3.eth.error = Web3RPCError("boom", rpc_response={"error": {"code": -32000, "message": "header not found"}})
    with pytest.raises(TransientError) as caught:
        await oracle(w3).current()
    assert caught.value.code == "rpc_error" and caught.value.message.startswith("read fee history: ")


async def test_legacy_uses_the_gas_price_capped_the_same_way():
    w3 = FakeWeb3(gas_price_wei=3 * GWEI)
    fees = await oracle(w3, legacy=True, max_fee_per_gas_cap_wei=5 * GWEI).current()
    assert fees == Fees(3 * GWEI, 3 * GWEI, legacy=True)
    assert fees.tx_fields() == {"gasPrice": 3 * GWEI}
    assert w3.eth.calls == [("eth_gasPrice",)]
    w3 = FakeWeb3(gas_price_wei=6 * GWEI)
    with pytest.raises(TransientError) as caught:
        await oracle(w3, legacy=True, max_fee_per_gas_cap_wei=5 * GWEI).current()
    assert caught.value.code == "fee_above_cap" and "gas price 6 gwei" in caught.value.message


async def test_readings_are_cached_for_cache_s():
    clock = Clock()
    w3 = FakeWeb3(base_fees_wei=[10 * GWEI], rewards_wei=[GWEI])
    fees = oracle(w3, cache_s=1.0, clock=clock)
    first = await fees.current()
    clock.now_s += 0.99
    assert await fees.current() == first
    assert len(w3.eth.calls) == 1
    w3.eth.base_fees_wei = [20 * GWEI]
    clock.now_s += 0.01
    assert (await fees.current()).max_fee_per_gas_wei == 41 * GWEI
    assert len(w3.eth.calls) == 2


async def test_a_cached_reading_above_the_cap_raises_without_a_new_fetch():
    clock = Clock()
    w3 = FakeWeb3(base_fees_wei=[60 * GWEI], rewards_wei=[GWEI])
    fees = oracle(w3, max_fee_per_gas_cap_wei=50 * GWEI, clock=clock)
    for _ in range(3):
        with pytest.raises(TransientError):
            await fees.current()
    assert len(w3.eth.calls) == 1


async def test_concurrent_callers_share_one_fetch():
    w3 = FakeWeb3(base_fees_wei=[10 * GWEI], rewards_wei=[GWEI])
    w3.eth.release = asyncio.Event()
    fees = oracle(w3, clock=Clock())
    callers = [asyncio.create_task(fees.current()) for _ in range(20)]
    await asyncio.wait_for(w3.eth.fetching.wait(), timeout=5)
    w3.eth.release.set()
    results = await asyncio.gather(*callers)
    assert set(results) == {Fees(21 * GWEI, GWEI)}
    assert len(w3.eth.calls) == 1


async def test_a_failed_fetch_is_not_cached():
    w3 = FakeWeb3(base_fees_wei=[10 * GWEI], rewards_wei=[GWEI])
    w3.eth.error = Web3RPCError("down")
    fees = oracle(w3, clock=Clock())
    with pytest.raises(TransientError):
        await fees.current()
    w3.eth.error = None
    assert await fees.current() == Fees(21 * GWEI, GWEI)


def test_bump_raises_both_fields_by_the_percent_rounded_up():
    fees = oracle(FakeWeb3())
    assert fees.bump(Fees(100, 10), percent=10) == Fees(110, 11)
    assert fees.bump(Fees(101, 11), percent=10) == Fees(112, 13)  # 111.1 -> 112, 12.1 -> 13
    assert fees.bump(Fees(21 * GWEI + 1, 3), percent=12) == Fees(23_520_000_002, 4)


def test_bump_always_raises_strictly():
    # a 10 % rise of 0 or 1 wei rounds to nothing; the txpool needs a strictly higher fee
    assert oracle(FakeWeb3()).bump(Fees(5, 0), percent=10) == Fees(6, 1)


def test_bump_never_goes_below_the_floor():
    fees = oracle(FakeWeb3())
    assert fees.bump(Fees(100, 10), percent=10, floor=Fees(300, 5)) == Fees(300, 11)
    assert fees.bump(Fees(100, 10), percent=10, floor=Fees(300, 20)) == Fees(300, 20)


def test_bump_above_the_cap_is_none():
    fees = oracle(FakeWeb3(), max_fee_per_gas_cap_wei=110)
    assert fees.bump(Fees(100, 10), percent=10) == Fees(110, 11)
    assert fees.bump(Fees(101, 10), percent=10) is None
    assert fees.bump(Fees(50, 10), percent=10, floor=Fees(111, 2)) is None


def test_bump_of_legacy_fees_keeps_one_gas_price():
    fees = oracle(FakeWeb3(), legacy=True)
    assert fees.bump(Fees(101, 101, legacy=True), percent=10) == Fees(112, 112, legacy=True)


def test_bump_refuses_less_than_ten_percent():
    with pytest.raises(ValueError, match="at least 10"):
        oracle(FakeWeb3()).bump(Fees(100, 10), percent=5)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"max_fee_per_gas_cap_wei": 0}, "max_fee_per_gas_cap_wei must be positive"),
        ({"priority_fee_wei": 600 * GWEI}, "priority_fee_wei must be between 0 and max_fee_per_gas_cap_wei"),
        ({"legacy": True, "priority_fee_wei": GWEI}, "priority_fee_wei has no meaning on a legacy chain"),
        ({"base_fee_multiplier": 0.5}, "base_fee_multiplier must be at least 1"),
        ({"reward_percentile": 101}, "reward_percentile must be between 0 and 100"),
        ({"history_blocks": 0}, "history_blocks must be between 1 and 1024"),
    ],
)
def test_invalid_configuration_is_refused(kw, message):
    with pytest.raises(ValueError, match=message):
        oracle(FakeWeb3(), **kw)
