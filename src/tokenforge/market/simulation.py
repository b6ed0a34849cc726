"""Development traders: funded wallets buying and selling on bonding curves of a dev chain.

For demos and benchmarks only. :class:`DevTraders` refuses (ValidationFailed ``network``)
unless the chain's network is ``embedded`` or ``local`` (Hardhat, ``tokenforge devnet``):
it funds its wallets from the chain's faucet (embedded) or with ``hardhat_setBalance``
(local), which no real network offers.

Contract of :meth:`DevTraders.run`:

* ``config.wallets`` fresh wallets are funded with ``config.fund_wei`` each, then every
  wallet trades on its own task: one transaction of its own in flight at a time (its nonce
  tracked locally, read once), all wallets at once, so up to ``wallets`` trades are in flight.
* Each trade picks a curve that has not graduated (the first market with probability
  ``config.focus``, else any), then buys (probability ``config.buy_bias``, or when the
  wallet holds none of the token) ``random(min_buy_wei, max_buy_wei)`` or sells a random
  part of the wallet's balance. Transactions are signed locally with eth-account; the
  calldata is the curve's ``buy(minTokensOut, deadline)`` / ``sell(tokensIn, minNativeOut,
  deadline)``, built by :mod:`tokenforge.market.trade_tx` from a
  :func:`~tokenforge.market.quotes.quote` on the curve's state read from the chain just
  before signing (a buy: after the buys of other wallets in flight on that curve),
  bounded by ``config.slippage_bps``.
* A buy that may take the curve's last token (it pays at least half of what the rest
  costs once the buys in flight landed) gets the graduation's gas limit and no bound on
  tokens (it is cut to what is left); a curve counts as graduated once a receipt
  carries its ``Graduated`` log.
* It stops after ``config.trades`` trades were sent, or once ``config.until_graduated``
  curves graduated, or every curve has, or ``stop()`` says so; it returns every
  :class:`TradeResult` (sent and mined times in unix seconds: mined = when a block
  holding the transaction was first seen) and a :class:`SimulationSummary`.

A trade that was never mined within ``config.receipt_timeout_s`` has ``status`` None.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import function_signature_to_4byte_selector, keccak, to_checksum_address
from web3 import AsyncWeb3
from web3.exceptions import Web3Exception

from tokenforge.chains.evm import codec
from tokenforge.domain import curve as curve_math
from tokenforge.domain.chains import Network
from tokenforge.domain.curve import CurveError, CurveParams, CurveReserves, native_for_tokens
from tokenforge.errors import TokenForgeError, ValidationFailed
from tokenforge.market.quotes import CurveGraduated, Side, quote
from tokenforge.market.trade_tx import COMPLETING_BUY_GAS, gas_limit, trade_calldata

BALANCE_OF_SELECTOR = function_signature_to_4byte_selector("balanceOf(address)")
RESERVES_SELECTOR = function_signature_to_4byte_selector("reserves()")
PARAMS_SELECTOR = function_signature_to_4byte_selector("params()")
GRADUATED_TOPIC = keccak(text="Graduated(address,uint256,uint256,uint256,uint256)")
PRIORITY_FEE_WEI = 10**9
DEV_NETWORKS = frozenset({Network.EMBEDDED, Network.LOCAL})

#: ``fund(address, amount_wei)``: makes ``address`` hold at least ``amount_wei``.
Funder = Callable[[str, int], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class SimMarket:
    token: str
    curve: str


#: The initial virtual native reserve the configured buy sizes are meant for (1.5 ETH).
REFERENCE_VIRTUAL_NATIVE = 15 * 10**17


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    wallets: int = 8
    trades: int = 200
    buy_bias: float = 0.7
    #: buy sizes for a curve starting at :data:`REFERENCE_VIRTUAL_NATIVE` (Ethereum's
    #: default); each curve's buys are scaled to its own initial virtual reserve
    min_buy_wei: int = 2 * 10**16
    max_buy_wei: int = 3 * 10**17
    #: a sell sells this share of the wallet's balance, at random between the two
    sell_share: tuple[float, float] = (0.2, 0.8)
    #: probability a trade goes to the first market (so that one completes first)
    focus: float = 0.5
    until_graduated: int | None = None
    #: the slippage bound of each trade (quoted on the curve's state when it is signed)
    slippage_bps: int = 3000
    fund_wei: int = 10**21
    receipt_timeout_s: float = 60.0
    #: how often the block watcher polls when nothing wakes it
    poll_s: float = 0.05
    seed: int | None = None


@dataclass(slots=True)
class TradeResult:
    token: str
    curve: str
    wallet: str
    side: str  # "buy" | "sell"
    #: buy: native sent (wei); sell: tokens sold (base units)
    amount_in: int
    tx_hash: str
    nonce: int
    sent_at: float
    status: int | None = None
    gas_used: int | None = None
    block_number: int | None = None
    mined_at: float | None = None
    graduated: bool = False


@dataclass(frozen=True, slots=True)
class SimulationSummary:
    sent: int
    mined: int
    succeeded: int
    reverted: int
    buys: int
    sells: int
    graduated: tuple[str, ...]
    #: native sent by successful buys (wei, before refunds)
    buy_native_wei: int
    gas_buy_p50: int | None
    gas_sell_p50: int | None
    gas_graduating_buy: int | None
    wall_s: float

    @classmethod
    def of(cls, results: Sequence[TradeResult], graduated: Sequence[str], wall_s: float) -> SimulationSummary:
        ok = [r for r in results if r.status == 1]
        buys = [r for r in ok if r.side == "buy" and not r.graduated]
        sells = [r for r in ok if r.side == "sell"]
        grads = [r.gas_used for r in ok if r.graduated and r.gas_used]
        return cls(
            sent=len(results),
            mined=sum(1 for r in results if r.status is not None),
            succeeded=len(ok),
            reverted=sum(1 for r in results if r.status == 0),
            buys=sum(1 for r in ok if r.side == "buy"),
            sells=len(sells),
            graduated=tuple(graduated),
            buy_native_wei=sum(r.amount_in for r in ok if r.side == "buy"),
            gas_buy_p50=_median([r.gas_used for r in buys if r.gas_used]),
            gas_sell_p50=_median([r.gas_used for r in sells if r.gas_used]),
            gas_graduating_buy=max(grads) if grads else None,
            wall_s=wall_s,
        )


def _median(values: list[int]) -> int | None:
    return int(statistics.median(values)) if values else None


def embedded_funder(chain: Any) -> Funder:
    """Funds from an :class:`~tokenforge.chains.evm.embedded.EmbeddedEvmChain`'s faucet."""

    async def fund(address: str, amount_wei: int) -> None:
        await chain.run(chain.fund, address, amount_wei)

    return fund


def rpc_funder(w3: AsyncWeb3) -> Funder:
    """Funds with ``hardhat_setBalance`` (Hardhat, ``tokenforge devnet``)."""

    async def fund(address: str, amount_wei: int) -> None:
        reply = await w3.provider.make_request("hardhat_setBalance", [address, hex(amount_wei)])
        if reply.get("error"):
            raise ValidationFailed("network", f"the node refused hardhat_setBalance: {reply['error']}")

    return fund


class _BlockWatcher:
    """Notices blocks as they appear and resolves the futures of transactions waiting in them."""

    def __init__(self, w3: AsyncWeb3, poll_s: float) -> None:
        self.w3 = w3
        self._poll_s = poll_s
        self._waiting: dict[str, asyncio.Future[tuple[int, float]]] = {}
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self.base_fee_wei = 10**9
        self._next = 0

    def wake_threadsafe(self, _head: int | None = None) -> None:
        """Safe from any thread (an embedded chain's block listener)."""
        self._loop.call_soon_threadsafe(self._wake.set)

    def expect(self, tx_hash: str) -> asyncio.Future[tuple[int, float]]:
        fut: asyncio.Future[tuple[int, float]] = self._loop.create_future()
        self._waiting[tx_hash] = fut
        return fut

    def forget(self, tx_hash: str) -> None:
        self._waiting.pop(tx_hash, None)

    async def start(self) -> None:
        head = await self.w3.eth.block_number
        block = await self.w3.eth.get_block(head)
        self.base_fee_wei = int(block.get("baseFeePerGas") or self.base_fee_wei)
        self._next = head + 1

    async def run(self) -> None:
        while True:
            head = await self.w3.eth.block_number
            while self._next <= head:
                block = await self.w3.eth.get_block(self._next)
                seen_at = time.time()
                self.base_fee_wei = int(block.get("baseFeePerGas") or self.base_fee_wei)
                for raw in block["transactions"]:
                    fut = self._waiting.pop(AsyncWeb3.to_hex(raw), None)  # type: ignore[arg-type]
                    if fut is not None and not fut.done():
                        fut.set_result((self._next, seen_at))
                self._next += 1
            try:
                await asyncio.wait_for(self._wake.wait(), self._poll_s)
            except TimeoutError:
                pass
            self._wake.clear()


@dataclass
class _Wallet:
    account: LocalAccount
    nonce: int = 0


@dataclass
class _RunState:
    remaining: int
    graduated: list[str] = field(default_factory=list)
    results: list[TradeResult] = field(default_factory=list)
    #: native of buys sent and not yet mined, by curve
    buying_wei: dict[str, int] = field(default_factory=dict)


class DevTraders:
    """Development traders on one EVM chain. See the module docstring."""

    def __init__(
        self,
        w3: AsyncWeb3,
        *,
        chain_id: int,
        network: Network | str,
        fund: Funder,
        config: SimulationConfig | None = None,
        block_listener: Callable[[Callable[[int], None]], None] | None = None,
    ) -> None:
        """``block_listener(callback)``, when given, registers ``callback(head)`` to be called
        (on any thread) after each block: the watcher then wakes at once instead of polling."""
        if Network(network) not in DEV_NETWORKS:
            raise ValidationFailed("network", f"development traders run on embedded or local networks, not {network}")
        self.w3 = w3
        self._chain_id = chain_id
        self._fund = fund
        self.config = config or SimulationConfig()
        self._block_listener = block_listener
        self._rng = random.Random(self.config.seed)
        self._params: dict[str, CurveParams] = {}

    async def run(
        self,
        markets: Sequence[SimMarket],
        *,
        on_result: Callable[[TradeResult], None] | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> tuple[list[TradeResult], SimulationSummary]:
        if not markets:
            raise ValidationFailed("markets", "at least one market to trade on")
        cfg = self.config
        started = time.monotonic()
        wallets = [_Wallet(Account.create()) for _ in range(cfg.wallets)]
        await asyncio.gather(*(self._fund(w.account.address, cfg.fund_wei) for w in wallets))
        watcher = _BlockWatcher(self.w3, cfg.poll_s)
        await watcher.start()
        if self._block_listener is not None:
            self._block_listener(watcher.wake_threadsafe)
        watch_task = asyncio.create_task(watcher.run(), name="dev-traders-blocks")
        state = _RunState(remaining=cfg.trades)
        try:
            await asyncio.gather(
                *(self._trade_loop(w, list(markets), watcher, state, on_result, stop) for w in wallets)
            )
        finally:
            watch_task.cancel()
            try:
                await watch_task
            except asyncio.CancelledError:
                pass
        return state.results, SimulationSummary.of(state.results, state.graduated, time.monotonic() - started)

    def _done(self, markets: Sequence[SimMarket], state: _RunState, stop: Callable[[], bool] | None) -> bool:
        cfg = self.config
        if state.remaining <= 0 or len(state.graduated) >= len(markets):
            return True
        if cfg.until_graduated is not None and len(state.graduated) >= cfg.until_graduated:
            return True
        return stop is not None and stop()

    async def _trade_loop(
        self,
        wallet: _Wallet,
        markets: list[SimMarket],
        watcher: _BlockWatcher,
        state: _RunState,
        on_result: Callable[[TradeResult], None] | None,
        stop: Callable[[], bool] | None,
    ) -> None:
        wallet.nonce = await self.w3.eth.get_transaction_count(wallet.account.address, "pending")
        while not self._done(markets, state, stop):
            open_markets = [m for m in markets if m.curve not in state.graduated]
            if not open_markets:
                return
            first = open_markets[0]
            market = first if self._rng.random() < self.config.focus else self._rng.choice(open_markets)
            state.remaining -= 1
            result = await self._trade(wallet, market, watcher, state)
            if result is None:  # nothing to sell and nothing to buy with: try again
                state.remaining += 1
                continue
            state.results.append(result)
            if result.graduated and market.curve not in state.graduated:
                state.graduated.append(market.curve)
            if on_result is not None:
                on_result(result)

    async def _call(self, to: str, data: bytes) -> bytes:
        return bytes(await self.w3.eth.call({"to": to, "data": AsyncWeb3.to_hex(data)}))

    async def _reserves(self, market: SimMarket) -> CurveReserves:
        """The curve's terms (read once) and its state now, as the curve math takes them."""
        params = self._params.get(market.curve)
        if params is None:
            (p,) = abi_decode([codec.CURVE_PARAMS_TYPE], await self._call(market.curve, PARAMS_SELECTOR))
            params = codec.curve_params(p)
            self._params[market.curve] = params
        virtual_native, virtual_token, _, _ = abi_decode(
            ["uint256"] * 4, await self._call(market.curve, RESERVES_SELECTOR)
        )
        return CurveReserves(params, virtual_native - params.virtual_native0, params.virtual_token0 - virtual_token)

    async def _order(
        self, wallet: _Wallet, market: SimMarket, state: _RunState
    ) -> tuple[Side, int, str, int, int] | None:
        """``(side, amount_in, calldata, gas_limit, value_wei)`` of the wallet's next trade
        (None: the curve trades no more)."""
        cfg = self.config
        deadline = int(time.time()) + 3600
        side, amount = Side.BUY, self._rng.randint(cfg.min_buy_wei, cfg.max_buy_wei)
        if self._rng.random() >= cfg.buy_bias:
            held = int.from_bytes(
                await self._call(market.token, BALANCE_OF_SELECTOR + abi_encode(["address"], [wallet.account.address]))
            )
            if held > 0:
                low, high = cfg.sell_share
                side, amount = Side.SELL, max(1, int(held * self._rng.uniform(low, high)))
        reserves = await self._reserves(market)
        if reserves.complete:
            return None
        scale = reserves.params.virtual_native0, REFERENCE_VIRTUAL_NATIVE  # e.g. 7.5 BNB / 1.5
        if side is Side.BUY:
            amount = amount * scale[0] // scale[1]
        # a buy is bounded by the price after the buys of other wallets in flight on the curve
        ahead = reserves
        in_flight_wei = state.buying_wei.get(market.curve, 0)
        if side is Side.BUY and in_flight_wei:
            try:
                ahead = replace(curve_math.buy(reserves, in_flight_wei, int(time.time())).after, state=reserves.state)
            except CurveError:
                ahead = reserves
            if ahead.complete:  # those may take the last token: this buy may be refunded or refused
                ahead = reserves
                in_flight_wei = -1
        try:
            q = quote(ahead, side, amount)
        except CurveGraduated:
            return None
        except ValidationFailed:  # too small to trade, or more than the curve sold: buy instead
            side, amount = Side.BUY, cfg.max_buy_wei * scale[0] // scale[1]
            q = quote(ahead, side, amount)
        if side is Side.SELL:
            return side, amount, trade_calldata(q, q.min_out(cfg.slippage_bps), deadline), gas_limit(q), 0
        # a buy that may take the last token: it is cut to what is left, so no bound on tokens
        completes = q.completes_curve or in_flight_wei < 0 or self._may_complete(ahead, amount)
        min_out = 0 if completes else q.min_out(cfg.slippage_bps)
        gas = COMPLETING_BUY_GAS if completes else gas_limit(q)
        return side, amount, trade_calldata(q, min_out, deadline), gas, amount

    async def _trade(
        self, wallet: _Wallet, market: SimMarket, watcher: _BlockWatcher, state: _RunState
    ) -> TradeResult | None:
        order = await self._order(wallet, market, state)
        if order is None:
            if market.curve not in state.graduated:
                state.graduated.append(market.curve)
            return None
        side, amount, data, gas, value = order
        address = wallet.account.address
        tx: dict[str, Any] = {
            "type": 2,
            "chainId": self._chain_id,
            "nonce": wallet.nonce,
            "to": to_checksum_address(market.curve),
            "value": value,
            "data": data,
            "gas": gas,
            "maxFeePerGas": 2 * watcher.base_fee_wei + PRIORITY_FEE_WEI,
            "maxPriorityFeePerGas": PRIORITY_FEE_WEI,
        }
        signed = wallet.account.sign_transaction(tx)
        tx_hash = AsyncWeb3.to_hex(signed.hash)
        mined = watcher.expect(tx_hash)
        result = TradeResult(
            market.token, market.curve, address, side.value, amount, tx_hash, wallet.nonce, time.time()
        )
        state.buying_wei[market.curve] = state.buying_wei.get(market.curve, 0) + value
        try:
            try:
                await self.w3.eth.send_raw_transaction(signed.raw_transaction)
            except (Web3Exception, TokenForgeError, ValueError):  # refused by the node: resync the nonce
                watcher.forget(tx_hash)
                wallet.nonce = await self.w3.eth.get_transaction_count(address, "pending")
                result.status = 0
                return result
            wallet.nonce += 1
            try:
                result.block_number, result.mined_at = await asyncio.wait_for(mined, self.config.receipt_timeout_s)
            except TimeoutError:
                watcher.forget(tx_hash)
                return result
        finally:
            state.buying_wei[market.curve] -= value
        receipt = await self.w3.eth.get_transaction_receipt(signed.hash)
        result.status = int(receipt["status"])
        result.gas_used = int(receipt["gasUsed"])
        curve = market.curve.lower()
        result.graduated = any(
            str(log["address"]).lower() == curve and bytes(log["topics"][0]) == GRADUATED_TOPIC
            for log in receipt["logs"]
            if log["topics"]
        )
        return result

    @staticmethod
    def _may_complete(reserves: CurveReserves, native_in_wei: int) -> bool:
        """True when ``native_in_wei`` may take the curve's last token: it pays at least half
        of what the rest costs (``reserves`` with the buys in flight applied)."""
        if reserves.complete:
            return True
        return native_in_wei * 2 >= native_for_tokens(reserves, reserves.tokens_left, int(time.time()))
