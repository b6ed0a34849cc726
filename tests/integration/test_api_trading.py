"""Trading without custody over HTTP: quotes, unsigned trade transactions, and the launch fee
a launch may ask for (validated, stored, passed to the chain, shown on token reads)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from eth_abi import decode
from sqlalchemy import select

from tests.integration.test_api_tokens import assert_problem, error_fields
from tests.support.auth import bearer, container_key
from tests.support.bodies import EVM_CREATOR, SOL_CREATOR, fakes, launch_body
from tests.support.stack import running_stack, wait_final
from tokenforge.chains.evm.artifacts import curve_artifact, token_artifact
from tokenforge.domain import curve as curve_math
from tokenforge.domain.curve import CurveParams, CurveReserves
from tokenforge.jobs.handlers.launch import launch_request
from tokenforge.market.quotes import Side, quote
from tokenforge.market.trade_tx import BUY_GAS, SELL_GAS
from tokenforge.store.models import JobRow, MarketRow, TokenRow

TRADER = "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359"
CURVE = "0x7B73f1418012CFc5417B7b3053b4fcE64a459A8d"
POOL = "0x00000000000000000000000000000000000000Aa"
SUPPLY = 10**9 * 10**18
PARAMS = CurveParams(supply=SUPPLY, virtual_native0=15 * 10**17, platform_fee_bps=95, creator_fee_bps=30)
STATE = curve_math.buy(CurveReserves(PARAMS), 10**18, 0).after


async def launched_token(container, client) -> str:
    """A token id of a launch (the worker does not run: it stays pending, which is enough)."""
    key = bearer(await container_key(container))
    resp = await client.post("/v1/tokens", json=launch_body(supply="1000000000"), headers=key)
    assert resp.status_code == 202, resp.text
    return resp.json()["token"]["id"]


async def index_market(container, token_id: str, **over) -> None:
    """The markets row the indexer writes for the token's curve (one 1 ETH buy so far)."""
    values = dict(
        chain="ethereum",
        token_address="0x00000000000000000000000000000000000000bb",
        token_id=token_id,
        curve_address=CURVE,
        creator=EVM_CREATOR,
        decimals=18,
        supply=str(SUPPLY),
        virtual_native0=str(PARAMS.virtual_native0),
        platform_fee_bps=95,
        creator_fee_bps=30,
        launch_fee_bps=0,
        launch_window=0,
        window_in_blocks=False,
        migration_fee="0",
        launched_at=0,
        created_block=3,
        created_tx="0x" + "11" * 32,
        created_at=datetime.now(UTC),
        native_raised=str(STATE.native_raised),
        tokens_sold=str(STATE.tokens_sold),
        price_native=0.0,
        market_cap_native=0.0,
        progress_bps=STATE.progress_bps,
        ath_price_native=0.0,
        state="trading",
        updated_block=9,
    )
    values.update(over)
    async with container.sessions() as session:
        session.add(MarketRow(**values))
        await session.commit()


@pytest.fixture
async def public(settings):
    """The API (worker off) and a client WITHOUT a credential: trading routes are public."""
    async with running_stack(settings, fakes(), start=False, authorized=False) as (container, client):
        yield container, client


async def test_quote_is_the_curve_math_on_the_indexed_state(public):
    container, client = public
    token_id = await launched_token(container, client)
    await index_market(container, token_id)
    resp = await client.get(f"/v1/tokens/{token_id}/quote", params={"side": "buy", "amount": str(10**17)})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    expected = quote(STATE, Side.BUY, 10**17, as_of_block=9)
    assert body["amount_in"] == str(10**17) and body["amount_out"] == str(expected.amount_out)
    assert (body["fee"], body["fee_bps"], body["refund"]) == (str(expected.fee), 125, "0")
    assert body["min_out"] == str(expected.amount_out * 9900 // 10_000) and body["slippage_bps"] == 100
    assert body["as_of_block"] == 9 and body["curve"] == CURVE and body["completes_curve"] is False
    assert body["price_after_native"] > body["price_before_native"] > 0
    sell = await client.get(
        f"/v1/tokens/{token_id}/quote", params={"side": "sell", "amount": str(10**24), "slippage_bps": 0}
    )
    assert sell.status_code == 200, sell.text
    assert sell.json()["amount_out"] == sell.json()["min_out"] == str(quote(STATE, Side.SELL, 10**24).amount_out)
    by_tokens = await client.get(
        f"/v1/tokens/{token_id}/quote", params={"side": "buy", "amount": str(10**24), "unit": "token"}
    )
    assert by_tokens.status_code == 200 and int(by_tokens.json()["amount_out"]) >= 10**24


async def test_build_returns_an_unsigned_transaction_for_the_wallet(public):
    container, client = public
    token_id = await launched_token(container, client)
    await index_market(container, token_id)
    body = {"side": "buy", "amount": str(10**17), "trader": TRADER.lower(), "slippage_bps": 250, "deadline_s": 60}
    resp = await client.post(f"/v1/tokens/{token_id}/trades/build", json=body)
    assert resp.status_code == 200, resp.text
    tx = resp.json()
    assert (tx["chain_id"], tx["from"], tx["to"]) == (1337, TRADER, CURVE)  # the trader in EIP-55 form
    assert (tx["value"], tx["value_wei"], tx["gas"], tx["gas_limit"]) == (
        hex(10**17),
        str(10**17),
        hex(BUY_GAS),
        BUY_GAS,
    )
    min_out, deadline = decode(["uint256", "uint256"], bytes.fromhex(tx["data"][10:]))
    assert str(min_out) == tx["min_out"] == tx["quote"]["min_out"] and deadline == tx["deadline"]
    assert min_out == int(tx["quote"]["amount_out"]) * 9750 // 10_000
    assert not {"signature", "raw", "nonce"} & set(tx)  # nothing signed
    sell = await client.post(
        f"/v1/tokens/{token_id}/trades/build", json={"side": "sell", "amount": str(10**24), "trader": TRADER}
    )
    assert sell.status_code == 200, sell.text
    assert (sell.json()["value"], sell.json()["gas_limit"]) == ("0x0", SELL_GAS)


async def test_graduated_curve_is_a_conflict_naming_the_pool(public):
    container, client = public
    token_id = await launched_token(container, client)
    await index_market(container, token_id, state="graduated", pair_address=POOL)
    for resp in (
        await client.get(f"/v1/tokens/{token_id}/quote", params={"side": "buy", "amount": "1000"}),
        await client.post(
            f"/v1/tokens/{token_id}/trades/build", json={"side": "buy", "amount": "1000", "trader": TRADER}
        ),
    ):
        problem = assert_problem(resp, 409)
        assert problem["type"] == "/problems/curve-graduated" and problem["pool"] == POOL and POOL in problem["detail"]


async def test_unknown_or_unindexed_token_is_not_found(public):
    container, client = public
    token_id = await launched_token(container, client)
    for tid in (token_id, "f" * 32, "not-an-id!"):
        resp = await client.get(f"/v1/tokens/{tid}/quote", params={"side": "buy", "amount": "1000"})
        assert_problem(resp, 404)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"side": "buy", "amount": "0"}, "query.amount"),
        ({"side": "buy", "amount": "-5"}, "query.amount"),
        ({"side": "buy", "amount": "1.5"}, "query.amount"),
        ({"side": "buy", "amount": "1" * 79}, "query.amount"),
        ({"side": "buy"}, "query.amount"),
        ({"side": "hold", "amount": "1"}, "query.side"),
        ({"side": "buy", "amount": "1", "unit": "wei"}, "query.unit"),
        ({"side": "buy", "amount": "1", "slippage_bps": "5001"}, "query.slippage_bps"),
        ({"side": "sell", "amount": "1", "unit": "native"}, "unit"),
        ({"side": "sell", "amount": str(10**30)}, "query.amount"),  # more than the curve sold
    ],
)
async def test_bad_quote_input_names_the_field(public, query, field):
    container, client = public
    token_id = await launched_token(container, client)
    await index_market(container, token_id)
    assert field in error_fields(await client.get(f"/v1/tokens/{token_id}/quote", params=query))


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"amount": "0"}, "amount"),
        ({"amount": 1000}, "amount"),  # a JSON number, not a string of digits
        ({"trader": "0x1234"}, "trader"),
        ({"trader": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD"}, "trader"),  # bad EIP-55 checksum
        ({"trader": "0x" + "0" * 40}, "trader"),
        ({"slippage_bps": 5001}, "slippage_bps"),
        ({"slippage_bps": -1}, "slippage_bps"),
        ({"deadline_s": 9}, "deadline_s"),
        ({"deadline_s": 3601}, "deadline_s"),
        ({"side": "short"}, "side"),
        ({"tip": 1}, "tip"),
    ],
)
async def test_bad_build_input_names_the_field(public, over, field):
    container, client = public
    token_id = await launched_token(container, client)
    await index_market(container, token_id)
    body = {"side": "buy", "amount": "1000000", "trader": TRADER, **over}
    assert field in error_fields(await client.post(f"/v1/tokens/{token_id}/trades/build", json=body))


async def test_building_a_trade_spends_the_read_budget_not_the_write_budget(settings):
    settings.rate_limit_writes_ip = "1/minute"
    async with running_stack(settings, fakes(), start=False, authorized=False) as (container, client):
        token_id = await launched_token(container, client)  # the one write of the minute
        await index_market(container, token_id)
        body = {"side": "buy", "amount": "1000000", "trader": TRADER}
        for _ in range(3):
            resp = await client.post(f"/v1/tokens/{token_id}/trades/build", json=body)
            assert resp.status_code == 200, resp.text
            assert 'comment="reads per client IP"' in resp.headers["ratelimit-policy"]
        assert (await client.post("/v1/tokens", json=launch_body())).status_code == 429


# --- the launch fee of a launch ----------------------------------------------------------


@pytest.mark.parametrize(
    ("launch_fee", "field"),
    [
        ({"start_bps": 9500, "window": 10, "unit": "seconds"}, "launch_fee"),  # above the chain's 9000
        ({"start_bps": 100, "window": 10, "unit": "seconds"}, "launch_fee"),  # not above the 125 base fee
        ({"start_bps": 5000, "window": 61, "unit": "seconds"}, "launch_fee"),
        ({"start_bps": 5000, "window": 31, "unit": "blocks"}, "launch_fee"),
        ({"start_bps": 5000, "window": 0, "unit": "seconds"}, "launch_fee"),
        ({"start_bps": 5000, "window": 10, "unit": "minutes"}, "launch_fee"),
        ({"start_bps": "5000", "window": 10}, "launch_fee"),
        ({"start_bps": 5000}, "launch_fee"),
    ],
)
async def test_launch_fee_outside_the_chain_bounds_is_refused(public, launch_fee, field):
    container, client = public
    key = bearer(await container_key(container))
    resp = await client.post("/v1/tokens", json=launch_body(launch_fee=launch_fee), headers=key)
    assert field in error_fields(resp)


async def test_launch_fee_is_ignored_on_solana_and_absent_by_default(public):
    container, client = public
    key = bearer(await container_key(container))
    fee = {"start_bps": 5000, "window": 10, "unit": "seconds"}
    sol = await client.post(
        "/v1/tokens", json=launch_body(chain="solana", creator=SOL_CREATOR, launch_fee=fee), headers=key
    )
    assert sol.status_code == 202, sol.text
    assert sol.json()["token"]["launch_fee"] is None
    evm = await client.post("/v1/tokens", json=launch_body(), headers=key)
    assert evm.json()["token"]["launch_fee"] is None
    assert (await client.get(f"/v1/tokens/{evm.json()['token']['id']}")).json()["launch_fee"] is None


@pytest.mark.slow
@pytest.mark.parametrize("unit", ["seconds", "blocks"])
async def test_launch_fee_reaches_the_curve_on_chain(settings, unit):
    settings.chains = {"ethereum": "embedded"}
    fee = {"start_bps": 6000, "window": 20, "unit": unit}
    async with running_stack(settings) as (container, client):
        resp = await client.post("/v1/tokens", json=launch_body(supply="1000000000", launch_fee=fee))
        assert resp.status_code == 202, resp.text
        token_json = resp.json()["token"]
        assert token_json["launch_fee"] == fee
        job = await wait_final(client, resp.json()["job"]["id"])
        assert job["status"] == "confirmed", job
        read = (await client.get(f"/v1/tokens/{token_json['id']}")).json()
        assert read["launch_fee"] == fee and read["status"] == "live"

        async with container.sessions() as session:
            row = (await session.execute(select(TokenRow).where(TokenRow.id == token_json["id"]))).scalar_one()
            job_row = (await session.execute(select(JobRow).where(JobRow.id == job["id"]))).scalar_one()
        assert (row.launch_fee_bps, row.launch_fee_window, row.launch_fee_in_blocks) == (6000, 20, unit == "blocks")
        req = launch_request(job_row, row)
        assert (req.launch_fee_bps, req.launch_fee_window, req.launch_fee_in_blocks) == (6000, 20, unit == "blocks")

        deployer = await container.deployers.get("ethereum")
        w3 = deployer.embedded.web3()
        token = w3.eth.contract(address=read["address"], abi=token_artifact().abi)
        curve = w3.eth.contract(address=token.functions.curve().call(), abi=curve_artifact().abi)
        params = curve.functions.params().call()
        assert (params[6], params[7], params[8]) == (6000, 20, unit == "blocks")
