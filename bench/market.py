#!/usr/bin/env python
"""Trade on bonding curves and measure the market indexer: lag, backlog replay, consistency.

Launches ``--tokens`` tokens through the API, then development traders
(:mod:`tokenforge.market.simulation`, ``--wallets`` funded wallets) send ``--trades``
buys and sells while the indexer runs (the live phase: index lag), then the indexer is
stopped, ``--backlog`` more trades are made, and the indexer is started again and timed
catching up (the replay phase). Progress goes to stderr; the LAST line is one JSON object:

    chain, network, tokens, trades_sent, trades_indexed, graduated, index_lag_p50_ms,
    index_lag_p99_ms, trades_indexed_per_s, gas_launch, gas_buy_p50, gas_sell_p50,
    candles_consistent, holders_checked, block_time_ms, backlog_trades, live_trades_per_s

* index lag = when a trade became visible in the database (polled every 10 ms) minus when
  a block holding it was first seen by the traders (they watch every block);
* ``trades_indexed`` counts successful trades (both phases) found in the ``trades`` table;
  ``trades_sent`` every trade sent (reverted ones have no ``Trade`` log);
* ``trades_indexed_per_s``: replay of the backlog, from the indexer's start (embedded) or
  from its first written batch (``--network hardhat|devnet``, batches of
  ``--replay-batch-blocks`` blocks; the server's start-up is not counted) to the last trade;
* ``candles_consistent``: every candle of the launched tokens recomputed from the indexed
  trades (OHLC of ``price_native`` in chain order, volumes, counts) matches, every trade
  of the traders that succeeded is indexed, and every sampled holder's balance (up to 20
  per token) equals ``balanceOf`` read on chain.

``--network embedded`` (default) runs the stack in this process (the embedded chain lives
in the indexer's process). ``--network hardhat`` starts a Hardhat node (``--block-ms`` for
interval mining; default automine) and ``--network devnet`` a ``tokenforge devnet``, then
``tokenforge serve`` against it (it runs the indexer); trades go over JSON-RPC, the lag is
read from the server's SQLite database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for bench/ and tests/support

import httpx
from bench.pipeline import start_node, stop_process, wait_ready
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tokenforge.cli.market_demo import IndexWatch, LaunchedToken, lag_ms, launch_tokens, percentile
from tokenforge.market.simulation import DevTraders, SimMarket, SimulationConfig, SimulationSummary, TradeResult
from tokenforge.store.models import CandleRow, HolderRow, TradeRow

INTERVALS_S = {"1s": 1, "1m": 60, "5m": 300, "15m": 900, "1h": 3600, "4h": 14400, "1d": 86400}
HOLDERS_SAMPLED = 20
BALANCE_OF = bytes.fromhex("70a08231")


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def chain_env(args: argparse.Namespace, rpc_url: str | None) -> dict:
    market = {"index_poll_s": 0.05} if rpc_url else {}
    if rpc_url is None:
        return {args.chain: {"network": "embedded", "market": market}}
    market["index_batch_blocks"] = args.replay_batch_blocks
    return {args.chain: {"network": "local", "endpoints": [rpc_url], "dev_fund_base_units": 10**24, "market": market}}


def server_env(args: argparse.Namespace, workdir: str, rpc_url: str | None) -> dict:
    return {
        "TOKENFORGE_DATA_DIR": os.path.join(workdir, "data"),
        "TOKENFORGE_CHAINS": json.dumps(chain_env(args, rpc_url)),
        "TOKENFORGE_LOG_LEVEL": "WARNING",
        "TOKENFORGE_RATE_LIMITS_ENABLED": "false",
    }


async def trade_phase(
    traders: DevTraders, markets: list[SimMarket], watch: IndexWatch, label: str
) -> tuple[list[TradeResult], SimulationSummary]:
    results: list[TradeResult] = []
    last = [time.monotonic()]

    def on_result(result: TradeResult) -> None:
        results.append(result)
        if time.monotonic() - last[0] > 2:
            last[0] = time.monotonic()
            say(f"  {label}: {len(results)} trades sent, {watch.indexed(results)} indexed")

    _, summary = await traders.run(markets, on_result=on_result)
    return results, summary


async def wait_indexed(watch: IndexWatch, results: Sequence[TradeResult], timeout_s: float) -> float:
    """Polls until every successful trade of ``results`` is seen; the time it was (unix s)."""
    await watch.until_indexed(results, timeout_s)
    return time.time()


async def consistency(
    sessions: async_sessionmaker[AsyncSession],
    chain: str,
    tokens: Sequence[LaunchedToken],
    results: Sequence[TradeResult],
    balance_of: Any,
) -> tuple[bool, int, list[str]]:
    """``(consistent, holders checked, problems)``: candles vs trades, trades vs traders,
    holders vs ``balanceOf`` on chain."""
    problems: list[str] = []
    addresses = [t.address for t in tokens]
    async with sessions() as session:
        trades = (
            (
                await session.execute(
                    select(TradeRow)
                    .where(TradeRow.chain == chain, TradeRow.token_address.in_(addresses))
                    .order_by(TradeRow.block_number, TradeRow.log_index)
                )
            )
            .scalars()
            .all()
        )
        candles = (
            (
                await session.execute(
                    select(CandleRow).where(CandleRow.chain == chain, CandleRow.token_address.in_(addresses))
                )
            )
            .scalars()
            .all()
        )
        holders = {
            a: (
                await session.execute(
                    select(HolderRow)
                    .where(HolderRow.chain == chain, HolderRow.token_address == a)
                    .order_by(HolderRow.balance_sort.desc())
                    .limit(HOLDERS_SAMPLED)
                )
            )
            .scalars()
            .all()
            for a in addresses
        }
    indexed = {t.tx_hash.lower() for t in trades}
    missing = [r.tx_hash for r in results if r.status == 1 and r.tx_hash.lower() not in indexed]
    if missing:
        problems.append(f"{len(missing)} successful trades not indexed, e.g. {missing[0]}")
    expected: dict[tuple[str, str, int], dict] = {}
    for t in trades:
        ts = int(t.block_time.timestamp())
        for name, seconds in INTERVALS_S.items():
            key = (t.token_address, name, ts - ts % seconds)
            c = expected.get(key)
            price = t.price_native
            if c is None:
                expected[key] = {
                    "o": price,
                    "h": price,
                    "l": price,
                    "c": price,
                    "vn": int(t.native_amount),
                    "vt": int(t.token_amount),
                    "n": 1,
                }
            else:
                c["h"], c["l"], c["c"] = max(c["h"], price), min(c["l"], price), price
                c["vn"] += int(t.native_amount)
                c["vt"] += int(t.token_amount)
                c["n"] += 1
    stored = {(c.token_address, c.interval, int(c.bucket)): c for c in candles}
    if set(stored) != set(expected):
        problems.append(
            f"candle buckets differ: {len(set(expected) - set(stored))} missing, "
            f"{len(set(stored) - set(expected))} extra"
        )

    def close(a: float, b: float) -> bool:
        return abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1e-30)

    for key, e in expected.items():
        c = stored.get(key)
        if c is None:
            continue
        same = (
            all(close(x, y) for x, y in ((c.open, e["o"]), (c.high, e["h"]), (c.low, e["l"]), (c.close, e["c"])))
            and int(c.volume_native) == e["vn"]
            and int(c.volume_token) == e["vt"]
            and c.trades == e["n"]
        )
        if not same:
            problems.append(f"candle {key} differs from its trades")
            break
    checked = 0
    for token, rows in holders.items():
        for h in rows:
            on_chain = await balance_of(token, h.holder)
            checked += 1
            if on_chain != int(h.balance):
                problems.append(f"holder {h.holder} of {token}: indexed {h.balance}, on chain {on_chain}")
    return not problems, checked, problems


def figures(
    args: argparse.Namespace,
    tokens: Sequence[LaunchedToken],
    live: tuple[list[TradeResult], SimulationSummary],
    backlog: tuple[list[TradeResult], SimulationSummary],
    watch: IndexWatch,
    replay_s: float | None,
    consistent: tuple[bool, int, list[str]],
) -> dict:
    results = live[0] + backlog[0]
    lags = lag_ms(live[0], watch.seen_at)
    gas_buys = [r.gas_used for r in results if r.status == 1 and r.side == "buy" and not r.graduated and r.gas_used]
    gas_sells = [r.gas_used for r in results if r.status == 1 and r.side == "sell" and r.gas_used]
    launch_gas = [t.gas_used for t in tokens if t.gas_used]
    blocks = sorted({(r.block_number, r.mined_at) for r in live[0] if r.block_number is not None and r.mined_at})
    block_ms = None
    if len(blocks) > 1:
        block_ms = round((blocks[-1][1] - blocks[0][1]) * 1000 / max(1, blocks[-1][0] - blocks[0][0]), 1)
    backlog_ok = sum(1 for r in backlog[0] if r.status == 1)
    graduated = set(live[1].graduated) | set(backlog[1].graduated)
    return {
        "chain": args.chain,
        "network": args.network,
        "tokens": len(tokens),
        "trades_sent": len(results),
        "trades_indexed": watch.indexed(results),
        "trades_ok": sum(1 for r in results if r.status == 1),
        "graduated": len(graduated),
        "index_lag_p50_ms": round(percentile(lags, 50), 1) if lags else None,
        "index_lag_p99_ms": round(percentile(lags, 99), 1) if lags else None,
        "trades_indexed_per_s": round(backlog_ok / replay_s, 1) if replay_s and backlog_ok else None,
        "gas_launch": round(sum(launch_gas) / len(launch_gas)) if launch_gas else None,
        "gas_buy_p50": round(percentile(gas_buys, 50)) if gas_buys else None,
        "gas_sell_p50": round(percentile(gas_sells, 50)) if gas_sells else None,
        "candles_consistent": consistent[0],
        "holders_checked": consistent[1],
        "problems": consistent[2][:5],
        "block_time_ms": block_ms,
        "backlog_trades": backlog_ok,
        "live_trades_per_s": round(live[1].succeeded / live[1].wall_s, 1) if live[1].wall_s else None,
    }


def sim_config(args: argparse.Namespace, trades: int, *, graduate: bool = False) -> SimulationConfig:
    """``graduate``: the default trade sizes until the (only) market graduates; else small
    trades (0.002-0.02 coin) spread over the markets, so their curves last."""
    if graduate:
        return SimulationConfig(wallets=args.wallets, trades=trades, until_graduated=1, seed=args.seed)
    return SimulationConfig(
        wallets=args.wallets, trades=trades, focus=0.0, min_buy_wei=2 * 10**15, max_buy_wei=2 * 10**16, seed=args.seed
    )


async def live_phase(
    args: argparse.Namespace, make: Any, markets: list[SimMarket], watch: IndexWatch
) -> tuple[list[TradeResult], SimulationSummary]:
    """The first market traded until it graduates, then ``--trades`` small trades on the others."""
    first = await trade_phase(await make(sim_config(args, 10_000, graduate=True)), markets[:1], watch, "graduation")
    rest = markets[1:] or markets
    more = await trade_phase(await make(sim_config(args, args.trades)), rest, watch, "live")
    results = first[0] + more[0]
    summary = SimulationSummary.of(results, [*first[1].graduated, *more[1].graduated], first[1].wall_s + more[1].wall_s)
    return results, summary


async def run_embedded(args: argparse.Namespace) -> dict:
    from tokenforge.cli.market_demo import dev_traders, in_process_stack
    from tokenforge.config import Settings
    from tokenforge.store.db import make_engine, make_sessionmaker

    with tempfile.TemporaryDirectory(prefix="tokenforge-bench-market-") as workdir:
        os.environ.update(server_env(args, workdir, None))
        settings = Settings()
        async with in_process_stack(settings) as (container, client):
            say(f"launching {args.tokens} tokens on embedded {args.chain}")
            tokens = await launch_tokens(client, args.chain, args.tokens)
            deployer = await container.deployers.get(args.chain)  # type: ignore[attr-defined]
            embedded = deployer.embedded
            # the watcher reads on a connection of its own: it never holds up the indexer's writes
            watcher_engine = make_engine(settings.resolved_database_url, read_only=True)
            watch = IndexWatch(make_sessionmaker(watcher_engine), args.chain)
            await watch.start_at_head()
            watch_task = asyncio.create_task(watch.run())
            markets = [SimMarket(t.address, t.curve) for t in tokens]

            async def make(cfg: SimulationConfig) -> DevTraders:
                return await dev_traders(settings, args.chain, cfg, embedded_chain=embedded)

            say(f"live: one curve to graduation, then {args.trades} trades from {args.wallets} wallets")
            live = await live_phase(args, make, markets, watch)
            await wait_indexed(watch, live[0], args.timeout_s)
            indexers = container.indexers  # type: ignore[attr-defined]
            await indexers.stop()
            say(f"backlog: {args.backlog} trades with the indexer stopped")
            open_markets = [m for m in markets if m.curve not in live[1].graduated] or markets
            backlog = await trade_phase(await make(sim_config(args, args.backlog)), open_markets, watch, "backlog")
            t0 = time.time()
            await indexers.start()
            t1 = await wait_indexed(watch, backlog[0], args.timeout_s)
            say(f"replayed in {t1 - t0:.2f}s")
            watch_task.cancel()
            await watch.poll()
            w3 = embedded.web3()

            async def balance_of(token: str, holder: str) -> int:
                data = BALANCE_OF + bytes(12) + bytes.fromhex(holder[2:])
                return int.from_bytes(await embedded.run(w3.eth.call, {"to": token, "data": data}))

            consistent = await consistency(container.sessions, args.chain, tokens, live[0] + backlog[0], balance_of)  # type: ignore[attr-defined]
            await watcher_engine.dispose()
            return figures(args, tokens, live, backlog, watch, t1 - t0, consistent)


async def run_node(args: argparse.Namespace) -> dict:
    from tests.support.auth import env_key
    from tests.support.server import free_port
    from web3 import AsyncHTTPProvider, AsyncWeb3

    from tokenforge.config import Settings
    from tokenforge.domain.chains import CHAINS, Network
    from tokenforge.market.simulation import rpc_funder
    from tokenforge.store.db import make_engine, make_sessionmaker

    with tempfile.TemporaryDirectory(prefix="tokenforge-bench-market-") as workdir:
        node, rpc_url = await asyncio.to_thread(start_node, args, workdir)
        env = {**os.environ, **server_env(args, workdir, rpc_url)}
        port = free_port()
        base = f"http://127.0.0.1:{port}"

        def serve() -> subprocess.Popen:
            return subprocess.Popen(
                [sys.executable, "-m", "tokenforge.cli.main", "serve", "--port", str(port)],
                env=env,
                stdout=subprocess.DEVNULL,
                start_new_session=True,
            )

        server = serve()
        engine = None
        try:
            async with httpx.AsyncClient(base_url=base, timeout=60) as client:
                await wait_ready(client, server)
                key = await asyncio.to_thread(env_key, env)
                client.headers["Authorization"] = f"Bearer {key}"
                say(f"launching {args.tokens} tokens on {args.network} {args.chain}")
                tokens = await launch_tokens(client, args.chain, args.tokens)
                settings = Settings(data_dir=env["TOKENFORGE_DATA_DIR"])
                engine = make_engine(settings.resolved_database_url, read_only=True)  # never blocks the server's writes
                sessions = make_sessionmaker(engine)
                watch = IndexWatch(sessions, args.chain)
                await watch.start_at_head()
                watch_task = asyncio.create_task(watch.run())
                w3 = AsyncWeb3(AsyncHTTPProvider(rpc_url))
                chain_id = CHAINS[args.chain].evm_chain_id(Network.LOCAL)
                markets = [SimMarket(t.address, t.curve) for t in tokens]

                async def make(cfg: SimulationConfig) -> DevTraders:
                    return DevTraders(w3, chain_id=chain_id, network=Network.LOCAL, fund=rpc_funder(w3), config=cfg)

                say(f"live: one curve to graduation, then {args.trades} trades from {args.wallets} wallets")
                live = await live_phase(args, make, markets, watch)
                await wait_indexed(watch, live[0], args.timeout_s)
                await asyncio.to_thread(stop_process, server)
                say(f"backlog: {args.backlog} trades with the server stopped")
                open_markets = [m for m in markets if m.curve not in live[1].graduated] or markets
                backlog = await trade_phase(await make(sim_config(args, args.backlog)), open_markets, watch, "backlog")
                server = serve()
                first_seen = None
                backlog_ok = {r.tx_hash.lower() for r in backlog[0] if r.status == 1}
                deadline = time.monotonic() + args.timeout_s
                before = 0
                while time.monotonic() < deadline:
                    n = sum(1 for h in backlog_ok if h in watch.seen_at)
                    if n and first_seen is None:
                        first_seen, before = time.time(), n
                    if n == len(backlog_ok):
                        break
                    await asyncio.sleep(0.01)
                t1 = time.time()
                replay_s = None
                if first_seen is not None and t1 > first_seen and len(backlog_ok) > before:
                    # rate after the first batch, scaled to the whole backlog
                    replay_s = (t1 - first_seen) * len(backlog_ok) / (len(backlog_ok) - before)
                say(f"replayed: {sum(1 for h in backlog_ok if h in watch.seen_at)}/{len(backlog_ok)}")
                watch_task.cancel()
                await watch.poll()

                async def balance_of(token: str, holder: str) -> int:
                    data = BALANCE_OF + bytes(12) + bytes.fromhex(holder[2:])
                    return int.from_bytes(await w3.eth.call({"to": token, "data": "0x" + data.hex()}))  # type: ignore[typeddict-item]

                consistent = await consistency(sessions, args.chain, tokens, live[0] + backlog[0], balance_of)
                return figures(args, tokens, live, backlog, watch, replay_s, consistent)
        finally:
            if engine is not None:
                await engine.dispose()
            await asyncio.to_thread(stop_process, server)
            await asyncio.to_thread(stop_process, node)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chain", choices=["ethereum", "bsc", "base"], default="ethereum")
    parser.add_argument("--network", choices=["embedded", "hardhat", "devnet"], default="embedded")
    parser.add_argument("--tokens", type=int, default=3)
    parser.add_argument("--trades", type=int, default=300, help="live-phase trades")
    parser.add_argument("--backlog", type=int, default=1000, help="trades made while the indexer is stopped")
    parser.add_argument("--wallets", type=int, default=16)
    parser.add_argument("--block-ms", type=int, default=None, help="Hardhat only: interval mining (default automine)")
    parser.add_argument("--replay-batch-blocks", type=int, default=50, help="JSON-RPC networks: indexer batch size")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--timeout-s", type=float, default=120)
    args = parser.parse_args()
    runner = run_embedded if args.network == "embedded" else run_node
    result = asyncio.run(runner(args))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
