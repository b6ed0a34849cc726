"""``tokenforge demo --market``: launch a few tokens, trade them until one graduates, show figures.

In one process on this host's settings (the embedded default unless configured otherwise):
the container starts (relay, worker and whatever market roles it runs: the indexer), a few
tokens are launched through the normal pipeline (``POST /v1/tokens`` on the in-process app,
then each job followed to its end), and :class:`~tokenforge.market.simulation.DevTraders`
buy and sell on their curves until one graduates, with a progress bar (trades sent and
indexed, the leading curve's progress read on chain). A summary table follows: tokens,
trades, volume in native coin and USD, graduations, gas per launch/buy/sell and the index
lag (a trade's first sight in the database minus its block's first sight).

The pieces are shared with ``bench/market.py``: :class:`IndexWatch` (when each trade
became visible in the database), :func:`launch_tokens`, :func:`dev_traders` and
:func:`lag_ms`. Only embedded and local networks are traded on (development wallets).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tokenforge.cli.client import auth_headers, create_token, follow_job, get_json, throwaway_creator
from tokenforge.config import Settings
from tokenforge.domain.chains import CHAINS, Family, Network
from tokenforge.errors import TokenForgeError, ValidationFailed
from tokenforge.market.simulation import (
    RESERVES_SELECTOR,
    DevTraders,
    SimMarket,
    SimulationConfig,
    SimulationSummary,
    TradeResult,
)
from tokenforge.store.models import MarketRow, TradeRow

#: How long the demo waits for the indexer to take in the last trades.
INDEX_WAIT_S = 15.0
WEI = 10**18


@dataclass(frozen=True, slots=True)
class LaunchedToken:
    token_id: str
    address: str
    curve: str
    gas_used: int | None


class IndexWatch:
    """Notes when each trade of ``chain`` first becomes visible in the ``trades`` table.

    :meth:`run` polls every ``poll_s`` for rows in blocks above the newest block it has seen
    (the indexer writes whole blocks in one transaction); :attr:`seen_at` maps a trade's
    transaction hash (0x-hex, lowercase) to the unix time it was first seen."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], chain: str, *, poll_s: float = 0.01) -> None:
        self._sessions = sessions
        self._chain = chain
        self._poll_s = poll_s
        self._after_block = -1
        self._changed = asyncio.Event()
        self.seen_at: dict[str, float] = {}

    async def start_at_head(self) -> None:
        """Ignore trades already indexed."""
        async with self._sessions() as session:
            newest = await session.scalar(select(func.max(TradeRow.block_number)).where(TradeRow.chain == self._chain))
        self._after_block = -1 if newest is None else int(newest)

    async def poll(self) -> int:
        """One look; returns how many trades were new."""
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    select(TradeRow.tx_hash, TradeRow.block_number).where(
                        TradeRow.chain == self._chain, TradeRow.block_number > self._after_block
                    )
                )
            ).all()
        now = time.time()
        for tx_hash, block_number in rows:
            self.seen_at.setdefault(tx_hash.lower(), now)
            self._after_block = max(self._after_block, int(block_number))
        if rows:
            self._changed.set()
        return len(rows)

    async def until_indexed(self, results: Sequence[TradeResult], timeout_s: float) -> bool:
        """Waits (while :meth:`run` polls) until every successful trade of ``results`` was
        seen, at most ``timeout_s``; True when all were."""
        want = sum(1 for r in results if r.status == 1)
        deadline = time.monotonic() + timeout_s
        while self.indexed(results) < want:
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                return False
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining_s)
            except TimeoutError:
                return self.indexed(results) >= want
        return True

    async def run(self) -> None:
        while True:
            await self.poll()
            await asyncio.sleep(self._poll_s)

    def indexed(self, results: Sequence[TradeResult]) -> int:
        return sum(1 for r in results if r.status == 1 and r.tx_hash.lower() in self.seen_at)


def lag_ms(results: Sequence[TradeResult], seen_at: dict[str, float]) -> list[float]:
    """Index lag of every mined, indexed trade: first seen in the database − block first seen."""
    return sorted(
        (seen_at[r.tx_hash.lower()] - r.mined_at) * 1000
        for r in results
        if r.status == 1 and r.mined_at is not None and r.tx_hash.lower() in seen_at
    )


def percentile(values: Sequence[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def launch_tokens(
    client: httpx.AsyncClient, chain: str, count: int, *, prefix: str = "Market"
) -> list[LaunchedToken]:
    """Launches ``count`` tokens through ``POST /v1/tokens`` and waits for each job to end;
    the confirmed ones, in launch order. Their curve is the token's CREATE nonce-1 address."""
    from tokenforge.chains.evm import codec

    async def one(i: int) -> LaunchedToken | None:
        body = {
            "chain": chain,
            "name": f"{prefix} Token {i}",
            "symbol": f"MKT{i}",
            "supply": "1000000000",
            "creator": throwaway_creator(chain),
        }
        accepted = await create_token(client, body)
        final = "dead"
        async for event in follow_job(client, accepted["job"]["id"]):
            final = event["status"]
        if final != "confirmed":
            return None
        token = await get_json(client, f"/v1/tokens/{accepted['token']['id']}")
        return LaunchedToken(
            token["id"], token["address"], codec.curve_address(token["address"]), token.get("gas_used")
        )

    launched = await asyncio.gather(*(one(i) for i in range(count)))
    return [t for t in launched if t is not None]


async def dev_traders(
    settings: Settings, chain: str, config: SimulationConfig, *, embedded_chain: object | None = None
) -> DevTraders:
    """Development traders on ``chain``: on the embedded chain ``embedded_chain`` (its faucet,
    woken by its blocks), else over the chain's first JSON-RPC endpoint (``hardhat_setBalance``).
    ValidationFailed ``network`` unless the chain is embedded or local."""
    from web3 import AsyncHTTPProvider, AsyncWeb3

    from tokenforge.market.simulation import embedded_funder, rpc_funder

    cs = settings.chains.get(chain)
    if cs is None or CHAINS[chain].family is not Family.EVM:
        raise ValidationFailed("chain", f"{chain} is not an enabled EVM chain")
    network = Network(cs.network)
    chain_id = cs.chain_id or CHAINS[chain].evm_chain_id(network)
    if network is Network.EMBEDDED:
        if embedded_chain is None:
            raise ValidationFailed("chain", f"the embedded {chain} chain is not open in this process")
        return DevTraders(
            embedded_chain.async_web3(),  # type: ignore[attr-defined]
            chain_id=chain_id,
            network=network,
            fund=embedded_funder(embedded_chain),
            config=config,
            block_listener=embedded_chain.add_block_listener,  # type: ignore[attr-defined]
        )
    if not cs.endpoints:
        raise ValidationFailed("network", f"{chain} has no JSON-RPC endpoint")
    w3 = AsyncWeb3(AsyncHTTPProvider(endpoint_url(cs.endpoints[0])))
    return DevTraders(w3, chain_id=chain_id, network=network, fund=rpc_funder(w3), config=config)


def endpoint_url(endpoint: object) -> str:
    """The URL of a configured endpoint (a string or an object with ``url``)."""
    url = getattr(endpoint, "url", endpoint)
    return str(url.get_secret_value() if hasattr(url, "get_secret_value") else url)


@asynccontextmanager
async def in_process_stack(settings: Settings) -> AsyncIterator[tuple[object, httpx.AsyncClient]]:
    """The container started in this process (relay, worker, market indexers) and an
    operator client of its app."""
    from tokenforge.api.app import create_app
    from tokenforge.bootstrap import build_container
    from tokenforge.cli.api_keys import in_process_key

    container = await build_container(settings)
    try:
        await container.start(indexer=True)
        transport = httpx.ASGITransport(app=create_app(container=container))
        async with AsyncExitStack() as stack:
            key = await stack.enter_async_context(in_process_key(container.sessions, "demo --market"))
            client = httpx.AsyncClient(
                transport=transport, base_url="http://embedded", headers=auth_headers(key), timeout=30
            )
            yield container, await stack.enter_async_context(client)
    finally:
        await container.close()


async def _curve_progress_bps(traders: DevTraders, curve: str, tokens_for_sale: int) -> int:
    words = await traders.w3.eth.call({"to": curve, "data": "0x" + RESERVES_SELECTOR.hex()})  # type: ignore[typeddict-item]
    tokens_left = int.from_bytes(bytes(words)[96:128])
    return (tokens_for_sale - tokens_left) * 10_000 // tokens_for_sale


async def run_market_demo(
    settings: Settings,
    console: Console,
    *,
    chain: str = "ethereum",
    tokens: int = 3,
    wallets: int = 16,
    max_trades: int = 1500,  # a cap: the demo stops at the first graduation
) -> int:
    """The demo; returns the exit code (0 when a token graduated and every trade was indexed)."""
    cs = settings.chains.get(chain)
    if cs is None or Network(cs.network) not in (Network.EMBEDDED, Network.LOCAL):
        console.print(f"[red]demo --market trades with development wallets: {chain} must be embedded or local[/]")
        return 2
    started = time.perf_counter()
    async with in_process_stack(settings) as (container, client):
        with console.status(f"launching {tokens} tokens on {chain}…"):
            launched = await launch_tokens(client, chain, tokens)
        if not launched:
            console.print("[red]no launch confirmed[/]")
            return 1
        deployer = await container.deployers.get(chain)  # type: ignore[attr-defined]
        config = SimulationConfig(wallets=wallets, trades=max_trades, until_graduated=1, focus=0.6)
        traders = await dev_traders(settings, chain, config, embedded_chain=getattr(deployer, "embedded", None))
        watch = IndexWatch(container.sessions, chain)  # type: ignore[attr-defined]
        await watch.start_at_head()
        watch_task = asyncio.create_task(watch.run(), name="demo-index-watch")
        markets = [SimMarket(t.address, t.curve) for t in launched]
        supply_base_units = 10**9 * 10**18
        tokens_for_sale = supply_base_units * 7931 // 10_000
        results: list[TradeResult] = []
        try:
            with Progress(
                TextColumn("{task.description:<26}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
            ) as progress:
                sent_task = progress.add_task("trades sent", total=max_trades)
                indexed_task = progress.add_task("trades indexed", total=max_trades)
                curve_task = progress.add_task(f"curve of {launched[0].address[:10]}… (bps)", total=10_000)

                def on_result(result: TradeResult) -> None:
                    results.append(result)
                    progress.update(sent_task, completed=len(results))

                async def refresh() -> None:
                    while True:
                        progress.update(indexed_task, completed=watch.indexed(results))
                        bps = await _curve_progress_bps(traders, launched[0].curve, tokens_for_sale)
                        progress.update(curve_task, completed=bps)
                        await asyncio.sleep(0.1)

                refresher = asyncio.create_task(refresh())
                try:
                    _, summary = await traders.run(markets, on_result=on_result)
                    progress.update(sent_task, total=len(results))
                    ok = sum(1 for r in results if r.status == 1)
                    progress.update(indexed_task, total=ok)
                    await watch.until_indexed(results, INDEX_WAIT_S)
                    await watch.poll()
                    progress.update(indexed_task, completed=watch.indexed(results))
                finally:
                    refresher.cancel()
        finally:
            watch_task.cancel()
        await _print_summary(
            console, container, chain, launched, results, summary, watch, time.perf_counter() - started
        )
    indexed_all = watch.indexed(results) == summary.succeeded
    return 0 if summary.graduated and indexed_all else 1


async def _print_summary(
    console: Console,
    container: object,
    chain: str,
    launched: Sequence[LaunchedToken],
    results: Sequence[TradeResult],
    summary: SimulationSummary,
    watch: IndexWatch,
    wall_s: float,
) -> None:
    sessions = container.sessions  # type: ignore[attr-defined]
    addresses = [t.address for t in launched]
    async with sessions() as session:
        volume_wei = sum(
            int(v)
            for v in (
                await session.scalars(
                    select(TradeRow.native_amount).where(TradeRow.chain == chain, TradeRow.token_address.in_(addresses))
                )
            ).all()
        )
        graduated_indexed = await session.scalar(
            select(func.count()).where(
                MarketRow.chain == chain, MarketRow.token_address.in_(addresses), MarketRow.state == "graduated"
            )
        )
    symbol = CHAINS[chain].native_symbol
    usd = None
    feed = getattr(container, "price_feed", None)
    if feed is not None:
        try:
            usd = float((await feed.price(symbol)).usd)
        except TokenForgeError:  # a price is decoration here; the demo's figures stand without it
            usd = None
    lags = lag_ms(results, watch.seen_at)
    launch_gas = [t.gas_used for t in launched if t.gas_used]
    table = Table(title=f"market demo on {chain}: {wall_s:.1f}s")
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        ("tokens launched", str(len(launched))),
        ("trades sent / ok / reverted", f"{summary.sent} / {summary.succeeded} / {summary.reverted}"),
        ("buys / sells", f"{summary.buys} / {summary.sells}"),
        ("trades indexed", f"{watch.indexed(results)} of {summary.succeeded}"),
        (f"volume ({symbol})", f"{volume_wei / WEI:,.4f}"),
        ("volume (USD)", f"{volume_wei / WEI * usd:,.2f}" if usd is not None else "n/a"),
        ("graduations (chain / indexed)", f"{len(summary.graduated)} / {graduated_indexed}"),
        ("gas per launch", str(int(statistics.median(launch_gas))) if launch_gas else "n/a"),
        ("gas per buy (p50)", str(summary.gas_buy_p50 or "n/a")),
        ("gas per sell (p50)", str(summary.gas_sell_p50 or "n/a")),
        ("gas of the graduating buy", str(summary.gas_graduating_buy or "n/a")),
        ("index lag p50 / p99 (ms)", _lag_text(lags)),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)


def _lag_text(lags: Sequence[float]) -> str:
    p50, p99 = percentile(lags, 50), percentile(lags, 99)
    return "n/a" if p50 is None or p99 is None else f"{p50:.0f} / {p99:.0f}"
