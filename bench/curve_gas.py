#!/usr/bin/env python
"""Gas of the bonding curve's transactions, measured on a chain, printed as JSON.

Opens a market chain (``tests/support/market_chain.py``: the factory and Uniswap V2 as the
application deploys them), then runs ``--launches`` launches and, on each token,
``--trades`` buys by wallets that hold none of it yet, as many buys by wallets that do,
as many sells, and one buy that completes the curve and graduates it. Prints a few lines
of detail, and as its LAST line one JSON object:

    gas_launch, gas_buy_p50, gas_buy_new_holder_p50, gas_sell_p50, gas_graduate

(``gas_launch`` and ``gas_graduate`` are medians too; every figure is gas used as the
receipts report it.) ``--network embedded`` (default) uses the in-process py-evm chain;
``--network hardhat`` starts a Hardhat node (``npm ci`` first) and measures there.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for tests/support

from tests.support.market_chain import WHOLE, MarketChain, open_embedded_market, open_rpc_market


def measure(market_chain: MarketChain, launches: int, trades: int) -> dict[str, int]:
    d = market_chain.driver
    gas: dict[str, list[int]] = {"launch": [], "buy": [], "buy_new_holder": [], "sell": [], "graduate": []}

    def used(receipt, kind: str) -> None:
        if receipt["status"] != 1:
            raise SystemExit(f"a {kind} transaction reverted")
        gas[kind].append(int(receipt["gasUsed"]))

    for _ in range(launches):
        market = d.launch(market_chain.owner)
        used(market.receipt, "launch")
        wallets = [market_chain.new_wallet(10 * WHOLE) for _ in range(trades)]
        for wallet in wallets:
            used(d.buy(wallet, market, WHOLE // 100), "buy_new_holder")
        for wallet in wallets:
            used(d.buy(wallet, market, WHOLE // 100), "buy")
        for wallet in wallets:
            used(d.sell(wallet, market, d.balance(market, wallet.address) // 2), "sell")
        used(d.buy(market_chain.traders[0], market, 10 * WHOLE), "graduate")
        if not d.curve(market).functions.graduated().call():
            raise SystemExit("the completing buy did not graduate the curve")
    return {f"gas_{kind}" + ("_p50" if kind.startswith(("buy", "sell")) else ""): int(statistics.median(values))
            for kind, values in gas.items()}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", choices=["embedded", "hardhat"], default="embedded")
    parser.add_argument("--launches", type=int, default=5)
    parser.add_argument("--trades", type=int, default=10, help="buys, repeat buys and sells per token")
    args = parser.parse_args()
    if args.network == "embedded":
        market_chain = open_embedded_market(traders=1)
        try:
            figures = measure(market_chain, args.launches, args.trades)
        finally:
            market_chain.close()
    else:
        from tests.support.hardhat import CHAIN_ID, DEFAULT_PRIVATE_KEYS, running_hardhat

        with running_hardhat() as node:
            market_chain = open_rpc_market(node.url, CHAIN_ID, DEFAULT_PRIVATE_KEYS[0], traders=1)
            figures = measure(market_chain, args.launches, args.trades)
    print(f"network {args.network}: {args.launches} launches, {args.trades} wallets per token", file=sys.stderr)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
