"""The bonding curve's rules: pure integer math, identical to ``TokenForgeCurve.sol``.

Every token trades on a constant-product curve over *virtual* reserves (pump.fun's shape):
a curve starts with ``virtual_native0`` (a per-chain setting) and ``virtual_token0 =
supply * 1073 / 1000`` tokens, of which ``tokens_for_sale = supply * 7931 / 10000`` can be
bought; the rest of the supply waits for the AMM pool. With the default supply of
1,000,000,000 tokens that is 1,073,000,000 virtual tokens and 793,100,000 for sale.

* **buy** ``native_in``: the fee ``ceil(native_in * fee_bps / 10_000)`` comes off first,
  then ``tokens_out = floor(net * Vt / (Vq + net))``. A buy asking for more than is left
  is cut to what is left; it is charged ``net = ceil(left * Vq / (Vt - left))`` plus the fee
  on it and the rest is refunded; that buy completes the curve.
* **sell** ``tokens_in``: ``gross = floor(tokens_in * Vq / (Vt + tokens_in))``, the fee
  ``ceil(gross * fee_bps / 10_000)`` comes off it.
* **fees** are ``platform_fee_bps + creator_fee_bps`` (the base) plus, during the launch
  window, a launch fee decaying linearly from ``launch_fee_bps`` to the base:
  ``base + ceil((launch - base) * remaining / window)``. The creator's share is
  ``floor(fee * creator_bps / base)``; the platform gets the rest (all of it when the base
  is zero).

Every rounding favours the curve, so ``Vq * Vt`` never decreases and the curve's native
balance always covers what selling every outstanding token would pay. Amounts are integers
in base units (wei, lamports; token base units).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import IntEnum

BPS = 10_000
#: pump.fun's shape as ratios of the supply: 1.073 B virtual tokens, 793.1 M for sale per 1 B.
VIRTUAL_TOKEN_PER_MILLE = 1073
FOR_SALE_PER_10K = 7931
#: Platform bounds the factory enforces (basis points, seconds, blocks).
MAX_PLATFORM_FEE_BPS = 500
MAX_CREATOR_FEE_BPS = 500
MAX_LAUNCH_FEE_BPS = 9900
MAX_LAUNCH_WINDOW_S = 3600
MAX_LAUNCH_WINDOW_BLOCKS = 300
#: Uniswap V2 keeps reserves in uint112; a supply must fit with the curve's virtual headroom.
MAX_SUPPLY_BASE_UNITS = (2**112 - 1) * 1000 // VIRTUAL_TOKEN_PER_MILLE


@dataclass(frozen=True, slots=True)
class ChainDefaults:
    """A chain's default curve terms in base units (docs/market.md explains the choice)."""

    virtual_native0: int
    migration_fee: int


#: pump.fun starts a curve at 30 SOL virtual. The EVM defaults start at about the same
#: value in USD (30 SOL at $150 = $4,500: 1.5 ETH at $3,000, 7.5 BNB at $600), so a curve
#: completes after about the same raise (~2.83 x the virtual reserve: 85 SOL, 4.25 ETH,
#: 21.2 BNB). The migration fee covers the graduation transaction (~2.4 M gas).
CHAIN_DEFAULTS: dict[str, ChainDefaults] = {
    "ethereum": ChainDefaults(virtual_native0=15 * 10**17, migration_fee=5 * 10**15),
    "base": ChainDefaults(virtual_native0=15 * 10**17, migration_fee=10**15),
    "bsc": ChainDefaults(virtual_native0=75 * 10**17, migration_fee=2 * 10**16),
    "solana": ChainDefaults(virtual_native0=30 * 10**9, migration_fee=15 * 10**6),
}


@dataclass(frozen=True, slots=True)
class PlatformTerms:
    """What the platform sets for every new curve of a chain (the factory's ``config``)."""

    fee_recipient: str
    platform_fee_bps: int
    creator_fee_bps: int
    max_launch_fee_bps: int
    max_launch_window_s: int
    max_launch_window_blocks: int
    virtual_native0: int
    migration_fee: int

    def check_launch_fee(self, fee_bps: int, window: int, in_blocks: bool) -> str | None:
        """Why a launch fee is refused (the factory's ``InvalidLaunchFee``), or None."""
        if window == 0 and fee_bps == 0:
            return None
        limit = self.max_launch_window_blocks if in_blocks else self.max_launch_window_s
        unit = "blocks" if in_blocks else "seconds"
        if not 0 < window <= limit:
            return f"window must be 1-{limit} {unit}"
        base = self.platform_fee_bps + self.creator_fee_bps
        if not base < fee_bps <= self.max_launch_fee_bps:
            return f"start_bps must be above the base fee of {base} and at most {self.max_launch_fee_bps}"
        return None


class CurveState(IntEnum):
    TRADING = 0
    GRADUATED = 1


class CurveError(ValueError):
    """A trade the curve refuses (the contract reverts the same way). ``reason`` is the
    contract's error name: ``CurveComplete``, ``ZeroAmount``, ``InsufficientReserve``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class CurveParams:
    """What a curve is launched with (immutable for its lifetime)."""

    supply: int
    virtual_native0: int
    platform_fee_bps: int
    creator_fee_bps: int
    #: fee at the launch instant (``0`` or the base = no launch fee)
    launch_fee_bps: int = 0
    #: how long the launch fee decays, in seconds or blocks (``0`` = no launch fee)
    launch_window: int = 0
    window_in_blocks: bool = False
    #: native paid to the platform out of the reserve at graduation
    migration_fee: int = 0
    #: block timestamp (or block number when ``window_in_blocks``) of the launch
    launched_at: int = 0

    @property
    def virtual_token0(self) -> int:
        return self.supply * VIRTUAL_TOKEN_PER_MILLE // 1000

    @property
    def tokens_for_sale(self) -> int:
        return self.supply * FOR_SALE_PER_10K // BPS

    @property
    def base_fee_bps(self) -> int:
        return self.platform_fee_bps + self.creator_fee_bps

    def fee_bps(self, now: int) -> int:
        """The total fee of a trade at block time (or number) ``now``."""
        base = self.base_fee_bps
        if self.launch_window == 0 or self.launch_fee_bps <= base:
            return base
        elapsed = max(0, now - self.launched_at)
        if elapsed >= self.launch_window:
            return base
        return base + _ceil_div((self.launch_fee_bps - base) * (self.launch_window - elapsed), self.launch_window)

    def split_fee(self, fee: int) -> tuple[int, int]:
        """``(creator, platform)`` shares of ``fee``."""
        base = self.base_fee_bps
        creator = 0 if base == 0 else fee * self.creator_fee_bps // base
        return creator, fee - creator


@dataclass(frozen=True, slots=True)
class CurveReserves:
    """A curve's state: what it raised and what it sold (virtual reserves derive from them)."""

    params: CurveParams
    native_raised: int = 0
    tokens_sold: int = 0
    state: CurveState = CurveState.TRADING

    @property
    def virtual_native(self) -> int:
        return self.params.virtual_native0 + self.native_raised

    @property
    def virtual_token(self) -> int:
        return self.params.virtual_token0 - self.tokens_sold

    @property
    def tokens_left(self) -> int:
        return self.params.tokens_for_sale - self.tokens_sold

    @property
    def complete(self) -> bool:
        return self.tokens_left == 0

    @property
    def progress_bps(self) -> int:
        """How much of the sale is sold, in basis points (10,000 = complete)."""
        return self.tokens_sold * BPS // self.params.tokens_for_sale

    def price_native_per_token(self) -> tuple[int, int]:
        """The marginal price as a fraction ``(native, tokens)`` in base units."""
        return self.virtual_native, self.virtual_token


@dataclass(frozen=True, slots=True)
class Trade:
    """The result of one trade: what moved, the fee, and the curve after it."""

    is_buy: bool
    #: buy: native charged (incl. fee, after any refund); sell: native paid out (after fee)
    native_amount: int
    token_amount: int
    fee: int
    creator_fee: int
    platform_fee: int
    #: buy only: the part of ``native_in`` sent back because the curve ran out
    refund: int
    after: CurveReserves

    @property
    def completes(self) -> bool:
        return self.is_buy and self.after.complete


def buy(curve: CurveReserves, native_in: int, now: int) -> Trade:
    """Tokens ``native_in`` buys at block time ``now``. Raises CurveError."""
    _trading(curve, native_in)
    fee_bps = curve.params.fee_bps(now)
    fee = _ceil_div(native_in * fee_bps, BPS)
    net = native_in - fee
    vq, vt = curve.virtual_native, curve.virtual_token
    out = net * vt // (vq + net)
    charged, refund = native_in, 0
    if out >= curve.tokens_left:
        out = curve.tokens_left
        net = _ceil_div(out * vq, vt - out)
        charged = _ceil_div(net * BPS, BPS - fee_bps)
        if charged > native_in:  # rounding of the inverse; never charge more than sent
            charged = native_in
        fee = charged - net
        refund = native_in - charged
    if out == 0:
        raise CurveError("ZeroAmount", "the amount buys no token")
    creator, platform = curve.params.split_fee(fee)
    after = replace(curve, native_raised=curve.native_raised + net, tokens_sold=curve.tokens_sold + out)
    return Trade(True, charged, out, fee, creator, platform, refund, after)


def sell(curve: CurveReserves, tokens_in: int, now: int) -> Trade:
    """Native ``tokens_in`` sells for at block time ``now``. Raises CurveError."""
    _trading(curve, tokens_in)
    if tokens_in > curve.tokens_sold:
        raise CurveError("InsufficientReserve", "more tokens than the curve has sold")
    vq, vt = curve.virtual_native, curve.virtual_token
    gross = tokens_in * vq // (vt + tokens_in)
    if gross > curve.native_raised:  # cannot happen with floor rounding; kept as the contract's guard
        raise CurveError("InsufficientReserve", "the curve cannot pay this sale")
    fee = _ceil_div(gross * curve.params.fee_bps(now), BPS)
    out = gross - fee
    creator, platform = curve.params.split_fee(fee)
    after = replace(curve, native_raised=curve.native_raised - gross, tokens_sold=curve.tokens_sold - tokens_in)
    return Trade(False, out, tokens_in, fee, creator, platform, 0, after)


def native_for_tokens(curve: CurveReserves, tokens_out: int, now: int) -> int:
    """About the native a buy of exactly ``tokens_out`` costs (incl. fee); for quotes in
    tokens. Buying with this amount yields at least ``tokens_out``."""
    _trading(curve, tokens_out)
    tokens_out = min(tokens_out, curve.tokens_left)
    vq, vt = curve.virtual_native, curve.virtual_token
    net = _ceil_div(tokens_out * vq, vt - tokens_out) + 1
    return _ceil_div(net * BPS, BPS - curve.params.fee_bps(now)) + 1


def graduation(curve: CurveReserves) -> tuple[int, int, int]:
    """``(native_liquidity, token_liquidity, migration_fee)`` a complete curve moves to its
    pool: the raised native minus the migration fee, and the supply not sold."""
    fee = min(curve.params.migration_fee, curve.native_raised)
    return curve.native_raised - fee, curve.params.supply - curve.tokens_sold, fee


def _trading(curve: CurveReserves, amount: int) -> None:
    if curve.state is not CurveState.TRADING or curve.complete:
        raise CurveError("CurveComplete", "the curve is sold out and trades on its pool")
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise CurveError("ZeroAmount", "the amount must be a positive integer")


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)
