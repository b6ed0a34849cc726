"""The market reads of the API: shapes, sorting, paging, candles, holders, stats, problems,
and "no N+1": each read costs the same statements whatever the number of tokens or trades."""

from __future__ import annotations

import pytest

from tests.integration.test_list_queries import selects
from tests.support.bodies import fakes
from tests.support.market_rows import (
    address,
    candle_values,
    holder_values,
    insert_market_rows,
    launched_tokens,
    trade_values,
)
from tests.support.stack import running_stack
from tests.unit.cache.helpers import sql_statements

pytestmark = pytest.mark.integration


async def _statements(container, client, path: str) -> list[str]:
    with sql_statements(container.engine) as statements:
        resp = await client.get(path)
    assert resp.status_code == 200, resp.text
    return statements


async def test_reads_cost_the_same_statements_for_few_and_many_rows(any_db_settings):
    any_db_settings.cache_url = "none://"  # every request reaches the database
    async with running_stack(any_db_settings, fakes(), start=False, authorized=False) as (container, client):
        pairs = await launched_tokens(container, 60)
        few, many = pairs[0][1], pairs[1][1]
        await insert_market_rows(
            container,
            trades=[trade_values(few, n) for n in range(2)] + [trade_values(many, n + 100) for n in range(120)],
            candles=[candle_values(few, 60)] + [candle_values(many, 60 * i) for i in range(200)],
            holders=[holder_values(few, address(), 5)] + [holder_values(many, address(), i + 1) for i in range(50)],
        )
        await client.get("/v1/tokens?limit=1")  # connection set-up is not a page's cost
        costs: dict[str, list[int]] = {}
        for name, paths in {
            "list": ["/v1/tokens?limit=5", "/v1/tokens?limit=50"],
            "list by market cap": ["/v1/tokens?limit=5&sort=market_cap", "/v1/tokens?limit=50&sort=market_cap"],
            "detail": [f"/v1/tokens/{few['token_id']}", f"/v1/tokens/{many['token_id']}"],
            "trades": [f"/v1/tokens/{few['token_id']}/trades", f"/v1/tokens/{many['token_id']}/trades?limit=100"],
            "candles": [f"/v1/tokens/{few['token_id']}/candles", f"/v1/tokens/{many['token_id']}/candles?limit=150"],
            "holders": [f"/v1/tokens/{few['token_id']}/holders", f"/v1/tokens/{many['token_id']}/holders?limit=50"],
        }.items():
            counts = [len(await _statements(container, client, p)) for p in paths]
            assert counts[0] == counts[1], (name, counts)
            costs[name] = counts
        listed = await _statements(container, client, "/v1/tokens?limit=50")
        assert selects(listed) == 1, listed  # tokens and their markets: one join
        page = (await client.get("/v1/tokens?limit=50")).json()
        assert len(page["items"]) == 50 and all(item["market"] is not None for item in page["items"])
        assert costs["trades"][0] <= 3 and costs["candles"][0] <= 3 and costs["holders"][0] <= 3, costs


async def test_token_reads_carry_their_market(settings):
    async with running_stack(settings, fakes(), start=False, authorized=False) as (container, client):
        [(token, market)] = await launched_tokens(container, 1, trade_count=7, progress_bps=2500)
        body = (await client.get(f"/v1/tokens/{token['id']}")).json()
        assert body["id"] == token["id"] and body["symbol"] == token["symbol"]
        m = body["market"]
        assert m["curve"] == market["curve_address"] and m["state"] == "trading"
        assert m["progress_pct"] == 25.0 and m["trade_count"] == 7
        assert m["reserves"] == {
            "virtual_native": market["virtual_native0"],
            "virtual_token": str(int(market["supply"]) * 1073 // 1000),
            "native_raised": "0",
            "tokens_left": str(int(market["supply"]) * 7931 // 10000),
        }
        assert m["fees"] == {
            "platform_bps": 95,
            "creator_bps": 30,
            "launch_fee_bps": 0,
            "launch_window": 0,
            "window_unit": "seconds",
        }
        price = m["native_price"]
        usd = float(price["usd"])
        assert price["asset"] == "ETH" and price["source"] == "fixed" and price["age_s"] >= 0
        assert m["price_usd"] == pytest.approx(m["price_native"] * usd)
        assert m["market_cap_usd"] == pytest.approx(m["market_cap_native"] * usd)
        # cached: the same bytes again
        again = await client.get(f"/v1/tokens/{token['id']}")
        assert again.json() == body
        listed = (await client.get("/v1/tokens")).json()["items"]
        assert [i["market"]["curve"] for i in listed if i["id"] == token["id"]] == [market["curve_address"]]


async def test_sorted_lists_page_without_gaps_or_duplicates(settings):
    settings.cache_url = "none://"
    async with running_stack(settings, fakes(), start=False, authorized=False) as (container, client):
        pairs = await launched_tokens(container, 9)
        # equal values on pairs of tokens: ties are ordered by the newer token first
        for i, (_token, market) in enumerate(pairs):
            market["market_cap_native"] = float(i // 2)
        async with container.sessions() as session:
            from sqlalchemy import update

            from tokenforge.store.models import MarketRow

            for _token, market in pairs:
                await session.execute(
                    update(MarketRow)
                    .where(MarketRow.token_id == market["token_id"])
                    .values(market_cap_native=market["market_cap_native"])
                )
            await session.commit()
        seen: list[str] = []
        cursor = None
        while True:
            query = "/v1/tokens?sort=market_cap&limit=2" + (f"&cursor={cursor}" if cursor else "")
            page = (await client.get(query)).json()
            seen += [i["id"] for i in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        expected = [t["id"] for t, _m in sorted(pairs, key=lambda p: (p[1]["market_cap_native"], p[0]["id"] in seen))]
        assert len(seen) == len(set(seen)) == 9
        caps = {m["token_id"]: m["market_cap_native"] for _t, m in pairs}
        assert [caps[i] for i in seen] == sorted((caps[i] for i in seen), reverse=True)
        assert set(seen) == set(expected)
        bad = await client.get("/v1/tokens?sort=market_cap&cursor=czE")  # a created-order cursor
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.cursor", bad.text
        wrong = await client.get("/v1/tokens?sort=hot")
        assert wrong.status_code == 422 and "query.sort" in wrong.text


async def test_trades_page_newest_first_without_gaps_or_duplicates(settings):
    async with running_stack(settings, fakes(), start=False, authorized=False) as (container, client):
        [(token, market)] = await launched_tokens(container, 1)
        trades = [trade_values(market, n) for n in range(11)]
        await insert_market_rows(container, trades=trades)
        seen, cursor = [], None
        while True:
            query = f"/v1/tokens/{token['id']}/trades?limit=3" + (f"&cursor={cursor}" if cursor else "")
            page = (await client.get(query)).json()
            seen += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        newest_first = sorted(trades, key=lambda t: (t["block_number"], t["log_index"], t["tx_hash"]), reverse=True)
        assert [t["tx_id"] for t in seen] == [t["tx_hash"] for t in newest_first]
        first = seen[0]
        assert set(first) == {
            "tx_id",
            "log_index",
            "block_number",
            "block_time",
            "trader",
            "side",
            "native_amount",
            "token_amount",
            "fee",
            "price_native",
        }
        assert first["native_amount"] == str(10**17) and first["side"] == "buy"
        assert first["block_time"].endswith("Z")
        bad = await client.get(f"/v1/tokens/{token['id']}/trades?cursor=bm9wZQ")
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.cursor"


async def test_candles_from_to_and_limit(settings):
    async with running_stack(settings, fakes(), start=False, authorized=False) as (container, client):
        [(token, market)] = await launched_tokens(container, 1)
        await insert_market_rows(
            container,
            candles=[candle_values(market, 60 * i) for i in range(10)] + [candle_values(market, 0, interval="1h")],
        )
        url = f"/v1/tokens/{token['id']}/candles"
        body = (await client.get(url, params={"interval": "1m", "from": 120, "to": 420})).json()
        assert body["interval"] == "1m" and [c["time"] for c in body["items"]] == [120, 180, 240, 300, 360]
        assert body["items"][0] == {
            "time": 120,
            "open": 1.0,
            "high": 2.0,
            "low": 0.5,
            "close": 1.5,
            "volume_native": str(10**18),
            "volume_token": str(10**24),
            "trades": 3,
        }
        newest = (await client.get(url, params={"limit": 3})).json()["items"]
        assert [c["time"] for c in newest] == [420, 480, 540]  # the newest three, oldest first
        assert [c["time"] for c in (await client.get(url, params={"interval": "1h"})).json()["items"]] == [0]
        for params, field in (({"interval": "2m"}, "query.interval"), ({"from": 10, "to": 5}, "query.to")):
            resp = await client.get(url, params=params)
            assert resp.status_code == 422, resp.text
            assert resp.headers["content-type"].startswith("application/problem+json")
            assert field in resp.text


async def test_holders_flags_and_share_of_supply(settings):
    async with running_stack(settings, fakes(), start=False, authorized=False) as (container, client):
        pool = address()
        [(token, market)] = await launched_tokens(container, 1, holder_count=4, pair_address=pool, state="graduated")
        supply = int(market["supply"])
        trader = address()
        await insert_market_rows(
            container,
            holders=[
                holder_values(market, market["curve_address"], supply // 2),
                holder_values(market, pool, supply // 4),
                holder_values(market, market["creator"].lower(), supply // 10),
                holder_values(market, trader, supply // 20),
            ],
        )
        body = (await client.get(f"/v1/tokens/{token['id']}/holders", params={"limit": 3})).json()
        assert body["holder_count"] == 4
        assert [(h["is_curve"], h["is_pool"], h["is_creator"]) for h in body["items"]] == [
            (True, False, False),
            (False, True, False),
            (False, False, True),
        ]
        assert [h["pct_of_supply"] for h in body["items"]] == [50.0, 25.0, 10.0]
        assert body["items"][0]["balance"] == str(supply // 2)


async def test_stats_and_not_found_problems(settings):
    async with running_stack(settings, fakes(), start=False, authorized=False) as (container, client):
        pairs = await launched_tokens(container, 3, trade_count=4, volume_24h_native=1.5)
        async with container.sessions() as session:
            from sqlalchemy import update

            from tokenforge.store.models import MarketRow

            await session.execute(
                update(MarketRow).where(MarketRow.token_id == pairs[0][0]["id"]).values(state="graduated")
            )
            await session.commit()
        stats = (await client.get("/v1/stats")).json()
        assert (stats["tokens"], stats["trades"], stats["graduations"]) == (3, 12, 1)
        [eth] = stats["volume_24h"]
        assert eth["chain"] == "ethereum" and eth["native"] == pytest.approx(4.5)
        assert eth["usd"] == pytest.approx(4.5 * float(stats["native_prices"]["ethereum"]["usd"]))
        for path in (
            "/v1/tokens/0123456789abcdef0123456789abcdef/trades",
            "/v1/tokens/0123456789abcdef0123456789abcdef/candles",
            "/v1/tokens/0123456789abcdef0123456789abcdef/holders",
            "/v1/tokens/not-an-id/trades",
        ):
            resp = await client.get(path)
            assert resp.status_code == 404, (path, resp.text)
            assert resp.headers["content-type"].startswith("application/problem+json")
