"""Gas fees for EVM transactions: what to offer now, and what to offer to replace a stuck one.

:class:`FeeOracle` reads one ``eth_feeHistory`` per refresh on EIP-1559 chains (``eth_gasPrice``
on legacy chains such as BSC) and caches the reading for ``cache_s``; concurrent callers wait
on one lock, so a single request serves every launch signed meanwhile. Every fee it hands out
respects ``max_fee_per_gas_cap_wei``: when the next block's base fee plus the tip is already
above the cap it raises a :class:`~tokenforge.errors.TransientError` with code
``"fee_above_cap"`` instead of returning fees that could not be mined.

:meth:`FeeOracle.bump` computes replacement fees for a transaction with the same nonce: both
fee fields rise by at least ``percent`` (geth's txpool needs 10 %) and strictly, rounded up.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING

from tokenforge.chains.evm.rpc_errors import translating
from tokenforge.errors import ErrorCode, PermanentError, TransientError

if TYPE_CHECKING:
    from web3 import AsyncWeb3

#: geth's default ``txpool.pricebump``: a replacement must offer this much more, in percent.
MIN_BUMP_PERCENT = 10

#: The fee cap of an oracle built without settings (the embedded chain, set-up defaults).
DEFAULT_FEE_CAP_WEI = 500 * 10**9  # 500 gwei

#: EIP-1559: the base fee falls by at most 1/8 from one block to the next.
_BASE_FEE_MAX_FALL = Fraction(7, 8)

_WEI_PER_GWEI = 10**9


@dataclass(frozen=True, slots=True)
class Fees:
    """Fee fields of one transaction. For a legacy transaction both fields hold the gas price."""

    max_fee_per_gas_wei: int
    max_priority_fee_per_gas_wei: int
    legacy: bool = False

    def tx_fields(self) -> dict[str, int]:
        """The fee fields of a transaction dict as web3 and eth_account spell them."""
        if self.legacy:
            return {"gasPrice": self.max_fee_per_gas_wei}
        return {"maxFeePerGas": self.max_fee_per_gas_wei, "maxPriorityFeePerGas": self.max_priority_fee_per_gas_wei}


@dataclass(frozen=True, slots=True)
class _Reading:
    """What the node said at ``fetched_at_s``: the next base fee and tip (legacy: gas price, 0)."""

    fetched_at_s: float
    base_fee_wei: int
    tip_wei: int


class FeeOracle:
    """Fees for the next transaction on one chain, capped at ``max_fee_per_gas_cap_wei``.

    EIP-1559: ``maxFeePerGas = base_fee_multiplier * next_base_fee + tip``, capped; the tip is
    ``priority_fee_wei`` when given, else the median of the non-zero ``reward_percentile``
    rewards over the last ``history_blocks`` blocks, else the node's
    ``eth_maxPriorityFeePerGas``, and never below ``min_priority_fee_wei`` (chains with a
    minimum tip, e.g. Polygon PoS, reject less). Legacy: the node's ``eth_gasPrice``.
    ``block_time_s`` only sets ``retry_after_s`` of a ``fee_above_cap`` error.
    """

    def __init__(
        self,
        w3: AsyncWeb3,
        *,
        legacy: bool = False,
        max_fee_per_gas_cap_wei: int,
        priority_fee_wei: int | None = None,
        reward_percentile: float = 50.0,
        history_blocks: int = 10,
        base_fee_multiplier: float = 2.0,
        cache_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        min_priority_fee_wei: int = 1,
        block_time_s: float = 12.0,
    ) -> None:
        if max_fee_per_gas_cap_wei <= 0:
            raise ValueError("max_fee_per_gas_cap_wei must be positive")
        if priority_fee_wei is not None and legacy:
            raise ValueError("priority_fee_wei has no meaning on a legacy chain (it pays eth_gasPrice)")
        if priority_fee_wei is not None and not 0 <= priority_fee_wei <= max_fee_per_gas_cap_wei:
            raise ValueError("priority_fee_wei must be between 0 and max_fee_per_gas_cap_wei")
        if not 0 <= reward_percentile <= 100:
            raise ValueError("reward_percentile must be between 0 and 100")
        if not 1 <= history_blocks <= 1024:
            raise ValueError("history_blocks must be between 1 and 1024")
        if base_fee_multiplier < 1:
            raise ValueError("base_fee_multiplier must be at least 1 (the next block's base fee must be payable)")
        if min_priority_fee_wei < 0 or cache_s < 0 or block_time_s <= 0:
            raise ValueError("min_priority_fee_wei and cache_s must be >= 0, block_time_s > 0")
        self._w3 = w3
        self.legacy = legacy
        self.max_fee_per_gas_cap_wei = max_fee_per_gas_cap_wei
        self._priority_fee_wei = priority_fee_wei
        self._reward_percentile = float(reward_percentile)
        self._history_blocks = history_blocks
        self._base_fee_multiplier = Fraction(str(base_fee_multiplier))
        self._cache_s = cache_s
        self._clock = clock
        self._min_priority_fee_wei = min_priority_fee_wei
        self._block_time_s = block_time_s
        self._lock = asyncio.Lock()
        self._reading: _Reading | None = None

    def __repr__(self) -> str:
        mode = "legacy" if self.legacy else "eip1559"
        return f"FeeOracle({mode}, cap={_gwei(self.max_fee_per_gas_cap_wei)} gwei)"

    async def current(self) -> Fees:
        """Fees for a transaction signed now. Raises TransientError ``fee_above_cap`` or an RPC error."""
        async with self._lock:  # one fetch serves every caller waiting meanwhile
            reading = self._reading
            if reading is None or self._clock() - reading.fetched_at_s >= self._cache_s:
                reading = await (self._read_gas_price() if self.legacy else self._read_fee_history())
                self._reading = reading
        return self._fees(reading)

    def bump(self, old: Fees, *, percent: int, floor: Fees | None = None) -> Fees | None:
        """Replacement fees for ``old`` (same nonce), or None when they would exceed the cap.

        Each fee field rises by at least ``percent`` (rounded up) and by at least 1 wei, and is
        never below ``floor`` (pass the oracle's current fees so the replacement is also
        mineable now).
        """
        if percent < MIN_BUMP_PERCENT:
            raise ValueError(f"a replacement must raise fees by at least {MIN_BUMP_PERCENT} %, got {percent}")
        if floor is not None and floor.legacy != old.legacy:
            raise ValueError("old and floor fees must be of the same kind (legacy or EIP-1559)")
        max_fee_wei = _raised(old.max_fee_per_gas_wei, percent)
        tip_wei = _raised(old.max_priority_fee_per_gas_wei, percent)
        if floor is not None:
            max_fee_wei = max(max_fee_wei, floor.max_fee_per_gas_wei)
            tip_wei = max(tip_wei, floor.max_priority_fee_per_gas_wei)
        if max_fee_wei > self.max_fee_per_gas_cap_wei:
            return None
        if old.legacy:
            return Fees(max_fee_wei, max_fee_wei, legacy=True)
        return Fees(max_fee_wei, min(tip_wei, max_fee_wei))

    # ------------------------------------------------------------------ reading the node

    async def _read_fee_history(self) -> _Reading:
        with translating("read fee history"):
            history = await self._w3.eth.fee_history(self._history_blocks, "latest", [self._reward_percentile])
        base_fees = history.get("baseFeePerGas") or []
        if not base_fees:
            raise PermanentError(
                "the chain reports no base fee (not EIP-1559): configure it as legacy",
                code=ErrorCode.EIP1559_UNSUPPORTED,
            )
        next_base_fee_wei = int(base_fees[-1])
        tip_wei = self._priority_fee_wei
        if tip_wei is None:
            rewards = [int(block[0]) for block in history.get("reward") or [] if block and int(block[0]) > 0]
            if rewards:
                tip_wei = statistics.median_high(rewards)
            else:  # only empty blocks lately: ask the node for its suggestion
                with translating("read max priority fee"):
                    tip_wei = int(await self._w3.eth.max_priority_fee)
            tip_wei = max(tip_wei, self._min_priority_fee_wei)
        return _Reading(self._clock(), next_base_fee_wei, tip_wei)

    async def _read_gas_price(self) -> _Reading:
        with translating("read gas price"):
            gas_price_wei = int(await self._w3.eth.gas_price)
        return _Reading(self._clock(), gas_price_wei, 0)

    # ------------------------------------------------------------------ pricing

    def _fees(self, reading: _Reading) -> Fees:
        cap_wei = self.max_fee_per_gas_cap_wei
        needed_wei = reading.base_fee_wei + reading.tip_wei
        if needed_wei > cap_wei:
            raise self._above_cap(reading)
        if self.legacy:
            return Fees(reading.base_fee_wei, reading.base_fee_wei, legacy=True)
        max_fee_wei = math.ceil(self._base_fee_multiplier * reading.base_fee_wei) + reading.tip_wei
        max_fee_wei = min(max_fee_wei, cap_wei)
        return Fees(max_fee_wei, min(reading.tip_wei, max_fee_wei))

    def _above_cap(self, reading: _Reading) -> TransientError:
        cap_wei = self.max_fee_per_gas_cap_wei
        if self.legacy:
            message = f"gas price {_gwei(reading.base_fee_wei)} gwei is above the cap of {_gwei(cap_wei)} gwei"
        else:
            message = (
                f"base fee {_gwei(reading.base_fee_wei)} gwei + tip {_gwei(reading.tip_wei)} gwei "
                f"is above the max fee cap of {_gwei(cap_wei)} gwei"
            )
        return TransientError(message, code=ErrorCode.FEE_ABOVE_CAP, retry_after_s=self._retry_after_s(reading))

    def _retry_after_s(self, reading: _Reading) -> float:
        """The earliest time EIP-1559's 1/8-per-block fall brings the fee under the cap (legacy: one block)."""
        room_wei = self.max_fee_per_gas_cap_wei - reading.tip_wei
        blocks = 1
        if not self.legacy and room_wei > 0 and reading.base_fee_wei > 0:
            ratio = room_wei / reading.base_fee_wei
            blocks = max(1, math.ceil(math.log(ratio) / math.log(_BASE_FEE_MAX_FALL)))
        return blocks * self._block_time_s


def _raised(value_wei: int, percent: int) -> int:
    """``value_wei`` raised by ``percent``, rounded up, and by at least 1 wei."""
    return max(-(-value_wei * (100 + percent) // 100), value_wei + 1)


def _gwei(wei: int) -> str:
    text = format(Decimal(wei) / _WEI_PER_GWEI, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text
