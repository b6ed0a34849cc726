"""The tokens and jobs HTTP API: launch, read, list, and the problem details for bad input."""

from __future__ import annotations

import asyncio
import base64
from contextlib import asynccontextmanager

import httpx
import pytest

from tests.support.bodies import EVM_CREATOR, SOL_CREATOR, fakes, launch_body
from tests.support.fake_deployer import FakeDeployer
from tests.support.stack import running_stack, wait_final
from tokenforge.api.app import create_app
from tokenforge.errors import PermanentError

OTHER_CREATOR = "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359"
PROBLEM_JSON = "application/problem+json"


@asynccontextmanager
async def api_only(settings):
    """The API over a container whose worker does not run: launches stay queued."""
    async with running_stack(settings, fakes(), start=False) as (container, client):
        yield container, client


def assert_problem(resp: httpx.Response, status: int) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].split(";")[0] == PROBLEM_JSON
    problem = resp.json()
    assert problem["status"] == status
    assert isinstance(problem["type"], str) and problem["type"]
    assert isinstance(problem["title"], str) and problem["title"]
    assert isinstance(problem["detail"], str) and problem["detail"]
    assert problem["instance"] == resp.request.url.path
    return problem


def error_fields(resp: httpx.Response) -> list[str]:
    problem = assert_problem(resp, 422)
    assert problem["errors"], problem
    for error in problem["errors"]:
        assert error["message"]
    return [e["field"] for e in problem["errors"]]


# --- launch and read --------------------------------------------------------------------


async def test_launch_answers_202_with_token_job_and_location(settings):
    async with api_only(settings) as (_, client):
        resp = await client.post(
            "/v1/tokens", json=launch_body(decimals=6, description="hello", website="https://forge.example")
        )
        assert resp.status_code == 202, resp.text
        assert resp.headers["content-type"].startswith("application/json")
        body = resp.json()
        token, job = body["token"], body["job"]
        assert resp.headers["location"] == f"/v1/jobs/{job['id']}"
        assert "idempotent-replayed" not in resp.headers
        assert token["chain"] == "ethereum" and token["network"] == "embedded"
        assert (token["name"], token["symbol"], token["decimals"]) == ("Forge Coin", "FORGE", 6)
        assert token["supply"] == "1000000"
        assert token["supply_base_units"] == str(1_000_000 * 10**6)
        assert token["creator"] == EVM_CREATOR
        assert token["description"] == "hello" and token["website"] == "https://forge.example"
        assert token["status"] == "pending" and token["address"] is None and token["tx_id"] is None
        assert token["job_id"] == job["id"]
        assert job["token_id"] == token["id"]
        assert job["kind"] == "launch" and job["chain"] == "ethereum"
        assert job["status"] == "queued" and job["final"] is False and job["attempts"] == 0
        assert job["error"] is None and job["finished_at"] is None
        assert job["events_url"] == f"/v1/jobs/{job['id']}/events"


async def test_get_token_and_job_return_what_the_launch_returned(settings):
    async with api_only(settings) as (_, client):
        body = (await client.post("/v1/tokens", json=launch_body())).json()
        token = await client.get(f"/v1/tokens/{body['token']['id']}")
        assert token.status_code == 200
        assert token.json() == body["token"]
        job = await client.get(body["job"]["events_url"].removesuffix("/events"))
        assert job.status_code == 200
        assert job.json() == body["job"]


async def test_lowercase_evm_creator_is_stored_checksummed(settings):
    async with api_only(settings) as (_, client):
        resp = await client.post("/v1/tokens", json=launch_body(creator=EVM_CREATOR.lower()))
        assert resp.status_code == 202, resp.text
        assert resp.json()["token"]["creator"] == EVM_CREATOR


async def test_supply_as_json_integer_and_defaults_per_chain(settings):
    async with api_only(settings) as (_, client):
        evm = (await client.post("/v1/tokens", json=launch_body(supply=42))).json()["token"]
        assert (evm["supply"], evm["decimals"], evm["supply_base_units"]) == ("42", 18, str(42 * 10**18))
        sol = (await client.post("/v1/tokens", json=launch_body(chain="solana", creator=SOL_CREATOR, supply=42))).json()
        assert (sol["token"]["decimals"], sol["token"]["supply_base_units"]) == (9, str(42 * 10**9))


async def test_supply_beyond_json_number_precision_is_kept_exactly_as_a_string(settings):
    supply = str(2**100 + 1)  # far past 2**53, within the EVM pool bound (uint112 / 1.073)
    async with api_only(settings) as (_, client):
        resp = await client.post("/v1/tokens", json=launch_body(decimals=0, supply=supply))
        assert resp.status_code == 202, resp.text
        token = (await client.get(f"/v1/tokens/{resp.json()['token']['id']}")).json()
        assert token["supply"] == supply == token["supply_base_units"]


async def test_evm_launch_is_confirmed_through_the_fake_chain(settings):
    deployers = fakes()
    async with running_stack(settings, deployers) as (_, client):
        body = (await client.post("/v1/tokens", json=launch_body())).json()
        job = await wait_final(client, body["job"]["id"])
        assert job["status"] == "confirmed" and job["final"] is True and job["finished_at"]
        token = (await client.get(f"/v1/tokens/{body['token']['id']}")).json()
        assert token["status"] == "live"
        assert token["address"] == job["token_address"] == FakeDeployer.address_for(job["id"])
        assert deployers["solana"].sign_calls == 0


async def test_solana_launch_with_base58_creator_is_confirmed_through_the_fake_chain(settings):
    deployers = fakes()
    async with running_stack(settings, deployers) as (_, client):
        resp = await client.post(
            "/v1/tokens",
            json=launch_body(
                chain="solana", creator=SOL_CREATOR, decimals=6, metadata_uri="https://meta.example/f.json"
            ),
        )
        assert resp.status_code == 202, resp.text
        body = resp.json()
        assert body["token"]["creator"] == SOL_CREATOR
        assert body["job"]["chain"] == "solana"
        job = await wait_final(client, body["job"]["id"])
        assert job["status"] == "confirmed"
        token = (await client.get(f"/v1/tokens/{body['token']['id']}")).json()
        assert token["status"] == "live"
        assert token["chain"] == "solana" and token["decimals"] == 6
        assert token["supply_base_units"] == str(1_000_000 * 10**6)
        assert token["metadata_uri"] == "https://meta.example/f.json"
        assert deployers["solana"].sign_calls == 1 and deployers["ethereum"].sign_calls == 0


# --- not found --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/v1/tokens/does-not-exist",
        "/v1/tokens/" + "a" * 32,
        "/v1/tokens/" + "x" * 300,
        "/v1/jobs/does-not-exist",
        "/v1/jobs/" + "b" * 32,
        "/v1/jobs/" + "y" * 300,
        "/v1/jobs/does-not-exist/events",
    ],
)
async def test_unknown_ids_are_404_problems(settings, path):
    async with api_only(settings) as (_, client):
        problem = assert_problem(await client.get(path), 404)
        assert problem["type"] == "/problems/not-found"
        assert problem["title"] == "Not found"
        assert "does not exist" in problem["detail"]


async def test_a_job_id_is_not_a_token_id(settings):
    async with api_only(settings) as (_, client):
        body = (await client.post("/v1/tokens", json=launch_body())).json()
        assert_problem(await client.get(f"/v1/tokens/{body['job']['id']}"), 404)
        assert_problem(await client.get(f"/v1/jobs/{body['token']['id']}"), 404)


async def test_unknown_route_and_wrong_method_are_problems(settings):
    async with api_only(settings) as (_, client):
        assert_problem(await client.get("/v1/nothing-here"), 404)
        problem = assert_problem(await client.delete("/v1/tokens"), 405)
        assert problem["type"] == "/problems/method-not-allowed"


# --- bad input --------------------------------------------------------------------------

EVM_ADDRESS_BAD_CHECKSUM = "0x5aaeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 33}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "a\x00b"}, "name"),
        ({"symbol": "forge"}, "symbol"),
        ({"symbol": "FORGE!"}, "symbol"),
        ({"symbol": "ABCDEFGHIJK"}, "symbol"),
        ({"symbol": ""}, "symbol"),
        ({"decimals": 19}, "decimals"),
        ({"decimals": -1}, "decimals"),
        ({"chain": "solana", "creator": SOL_CREATOR, "decimals": 10}, "decimals"),
        ({"supply": "0"}, "supply"),
        ({"supply": 0}, "supply"),
        ({"supply": -5}, "supply"),
        ({"supply": "12abc"}, "supply"),
        ({"supply": "1.5"}, "supply"),
        ({"supply": str(2**256)}, "supply"),
        ({"chain": "solana", "creator": SOL_CREATOR, "supply": str(2**64)}, "supply"),
        ({"creator": "0x1234"}, "creator"),
        ({"creator": EVM_ADDRESS_BAD_CHECKSUM}, "creator"),
        ({"creator": "0x" + "0" * 40}, "creator"),
        ({"creator": SOL_CREATOR}, "creator"),
        ({"chain": "solana", "creator": EVM_CREATOR}, "creator"),
        ({"chain": "solana", "creator": "11111111111111111111111111111111"}, "creator"),
        ({"creator": ""}, "creator"),
        ({"description": "x" * 1001}, "description"),
        ({"image_url": "ftp://example.org/x.png"}, "image_url"),
        ({"website": "javascript:alert(1)"}, "website"),
        ({"twitter": "x.com/forge"}, "twitter"),
        ({"telegram": "https://t.me/" + "a" * 200}, "telegram"),
        ({"metadata_uri": "file:///etc/passwd"}, "metadata_uri"),
        ({"chain": "dogecoin"}, "chain"),
        ({"chain": "Ethereum"}, "chain"),
        ({"colour": "red"}, "colour"),
        ({"name": 5}, "name"),
        ({"symbol": ["FORGE"]}, "symbol"),
        ({"decimals": 2.5}, "decimals"),
        ({"creator": 1234}, "creator"),
        ({"description": {"text": "x"}}, "description"),
        ({"website": 7}, "website"),
        ({"chain": None}, "chain"),
    ],
    ids=lambda v: repr(v)[:40],
)
async def test_each_bad_field_is_a_422_naming_it(settings, over, field):
    async with api_only(settings) as (_, client):
        resp = await client.post("/v1/tokens", json=launch_body(**over))
        fields = error_fields(resp)
        assert fields and all(f == field or f.startswith(field + ".") for f in fields), fields
        assert resp.json()["type"] == "/problems/invalid-parameter"
        assert field in resp.json()["detail"]
        assert (await client.get("/v1/tokens")).json()["items"] == [], "a refused launch must not be recorded"


@pytest.mark.parametrize("missing", ["chain", "name", "symbol", "supply", "creator"])
async def test_each_missing_required_field_is_named(settings, missing):
    async with api_only(settings) as (_, client):
        body = launch_body()
        del body[missing]
        assert error_fields(await client.post("/v1/tokens", json=body)) == [missing]


@pytest.mark.parametrize(
    ("over", "field"), [({"supply": True}, "supply"), ({"decimals": True}, "decimals"), ({"decimals": "6"}, "decimals")]
)
async def test_json_values_of_the_wrong_type_are_refused(settings, over, field):
    async with api_only(settings) as (_, client):
        assert error_fields(await client.post("/v1/tokens", json=launch_body(**over))) == [field]


async def test_wrong_type_for_a_union_field_names_the_field_as_sent(settings):
    async with api_only(settings) as (_, client):
        fields = error_fields(await client.post("/v1/tokens", json=launch_body(supply=1.5)))
        assert set(fields) == {"supply"}


async def test_json_array_body_is_refused_naming_the_body(settings):
    async with api_only(settings) as (_, client):
        assert error_fields(await client.post("/v1/tokens", json=[launch_body()])) == ["body"]


async def test_missing_body_is_refused_naming_the_body(settings):
    async with api_only(settings) as (_, client):
        assert error_fields(await client.post("/v1/tokens")) == ["body"]


@pytest.mark.parametrize("raw", [b"{bad json", b'{"chain": "ethereum",}', b"\xff\xfe", b'{"name": "x"'])
async def test_malformed_json_is_a_422_problem(settings, raw):
    async with api_only(settings) as (_, client):
        resp = await client.post("/v1/tokens", content=raw, headers={"content-type": "application/json"})
        assert_problem(resp, 422)
        assert resp.json()["errors"]


async def test_malformed_json_names_the_body(settings):
    async with api_only(settings) as (_, client):
        resp = await client.post("/v1/tokens", content=b"{bad json", headers={"content-type": "application/json"})
        assert error_fields(resp) == ["body"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "application/x-www-form-urlencoded"])
async def test_non_json_content_type_is_a_422_naming_the_body(settings, content_type):
    import orjson

    async with api_only(settings) as (_, client):
        resp = await client.post(
            "/v1/tokens", content=orjson.dumps(launch_body()), headers={"content-type": content_type}
        )
        assert error_fields(resp) == ["body"]
        assert (await client.get("/v1/tokens")).json()["items"] == []


@pytest.mark.parametrize("key", ["", "   ", "a\x7fb"])
async def test_bad_idempotency_key_names_the_header(settings, key):
    async with api_only(settings) as (_, client):
        resp = await client.post("/v1/tokens", json=launch_body(), headers={"Idempotency-Key": key})
        assert error_fields(resp) == ["header.idempotency-key"]


async def test_overlong_idempotency_key_is_refused(settings):
    async with api_only(settings) as (_, client):
        resp = await client.post("/v1/tokens", json=launch_body(), headers={"Idempotency-Key": "k" * 256})
        assert error_fields(resp) == ["header.idempotency-key"]


async def test_chain_not_enabled_on_the_server_is_refused(settings):
    settings.chains = {"ethereum": "embedded"}
    async with running_stack(settings, {"ethereum": FakeDeployer()}, start=False) as (_, client):
        resp = await client.post("/v1/tokens", json=launch_body(chain="solana", creator=SOL_CREATOR))
        assert error_fields(resp) == ["chain"]
        assert "not enabled" in resp.json()["detail"]


# --- list -------------------------------------------------------------------------------


async def _launch_many(client, n: int, **over) -> list[dict]:
    made = []
    for i in range(n):  # one by one: creation order is the list order
        resp = await client.post("/v1/tokens", json=launch_body(symbol=f"T{i}", name=f"Token {i}", **over))
        assert resp.status_code == 202, resp.text
        made.append(resp.json()["token"])
    return made


async def test_cursor_pagination_walks_every_token_once_newest_first(settings):
    async with api_only(settings) as (_, client):
        made = await _launch_many(client, 10)
        seen, cursor, pages = [], None, []
        while True:
            params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
            resp = await client.get("/v1/tokens", params=params)
            assert resp.status_code == 200, resp.text
            page = resp.json()
            pages.append(len(page["items"]))
            seen.extend(page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
            assert len(pages) < 10, "pagination does not end"
        assert pages == [3, 3, 3, 1]
        assert [t["id"] for t in seen] == [t["id"] for t in reversed(made)]
        assert seen == list(reversed(made))


async def test_page_that_ends_exactly_at_the_last_token_has_no_next_cursor(settings):
    async with api_only(settings) as (_, client):
        made = await _launch_many(client, 6)
        first = (await client.get("/v1/tokens", params={"limit": 3})).json()
        second = (await client.get("/v1/tokens", params={"limit": 3, "cursor": first["next_cursor"]})).json()
        assert [t["id"] for t in first["items"] + second["items"]] == [t["id"] for t in reversed(made)]
        assert second["next_cursor"] is None
        everything = (await client.get("/v1/tokens", params={"limit": 6})).json()
        assert len(everything["items"]) == 6 and everything["next_cursor"] is None


async def test_a_cursor_is_stable_while_new_tokens_arrive(settings):
    async with api_only(settings) as (_, client):
        made = await _launch_many(client, 5)
        first = (await client.get("/v1/tokens", params={"limit": 2})).json()
        await _launch_many(client, 2)  # newer tokens do not shift the next page
        rest = (await client.get("/v1/tokens", params={"limit": 10, "cursor": first["next_cursor"]})).json()
        assert [t["id"] for t in rest["items"]] == [t["id"] for t in reversed(made[:3])]


async def test_empty_list(settings):
    async with api_only(settings) as (_, client):
        resp = await client.get("/v1/tokens")
        assert resp.status_code == 200
        assert resp.json() == {"items": [], "next_cursor": None}


async def test_default_limit_is_50(settings):
    async with api_only(settings) as (_, client):
        await asyncio.gather(*(client.post("/v1/tokens", json=launch_body(symbol=f"S{i}")) for i in range(51)))
        page = (await client.get("/v1/tokens")).json()
        assert len(page["items"]) == 50 and page["next_cursor"] is not None


async def test_filters_by_chain_creator_and_status(settings):
    deployers = fakes()
    eth = deployers["ethereum"]
    async with running_stack(settings, deployers) as (_, client):

        async def launch(**over) -> dict:
            resp = await client.post("/v1/tokens", json=launch_body(**over))
            assert resp.status_code == 202, resp.text
            return resp.json()

        live_evm = await launch(symbol="LIVE")
        assert (await wait_final(client, live_evm["job"]["id"]))["status"] == "confirmed"
        eth.fail_next("sign", PermanentError("insufficient funds for gas", code="insufficient_funds"))
        failed_evm = await launch(symbol="FAIL", creator=OTHER_CREATOR)
        assert (await wait_final(client, failed_evm["job"]["id"]))["status"] == "failed"
        live_sol = await launch(symbol="SOL", chain="solana", creator=SOL_CREATOR)
        assert (await wait_final(client, live_sol["job"]["id"]))["status"] == "confirmed"
        eth.block_broadcast = asyncio.Event()  # the next launch stays in flight
        eth.signed_event.clear()
        pending_evm = await launch(symbol="WAIT", creator=OTHER_CREATOR.lower())
        await eth.signed_event.wait()

        async def ids(**params) -> list[str]:
            resp = await client.get("/v1/tokens", params=params)
            assert resp.status_code == 200, resp.text
            return [t["id"] for t in resp.json()["items"]]

        tid = lambda launched: launched["token"]["id"]  # noqa: E731
        assert await ids() == [tid(pending_evm), tid(live_sol), tid(failed_evm), tid(live_evm)]
        assert await ids(chain="ethereum") == [tid(pending_evm), tid(failed_evm), tid(live_evm)]
        assert await ids(chain="solana") == [tid(live_sol)]
        assert await ids(chain="bsc") == []
        assert await ids(creator=EVM_CREATOR) == [tid(live_evm)]
        assert await ids(creator=OTHER_CREATOR) == [tid(pending_evm), tid(failed_evm)]
        assert await ids(creator=SOL_CREATOR) == [tid(live_sol)]
        assert await ids(status="live") == [tid(live_sol), tid(live_evm)]
        assert await ids(status="failed") == [tid(failed_evm)]
        assert await ids(status="pending") == [tid(pending_evm)]
        assert await ids(chain="ethereum", status="live") == [tid(live_evm)]
        assert await ids(chain="solana", status="failed") == []
        assert await ids(creator=OTHER_CREATOR, status="failed", limit=1) == [tid(failed_evm)]
        eth.block_broadcast.set()
        assert (await wait_final(client, pending_evm["job"]["id"]))["status"] == "confirmed"
        assert await ids(status="pending") == []


async def test_creator_filter_accepts_the_spellings_a_launch_accepts(settings):
    async with api_only(settings) as (_, client):
        made = await _launch_many(client, 2)
        resp = await client.get("/v1/tokens", params={"creator": EVM_CREATOR.lower()})
        assert [t["id"] for t in resp.json()["items"]] == [t["id"] for t in reversed(made)]


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "!!!",
        "é",
        base64.urlsafe_b64encode(b"x12").decode(),
        base64.urlsafe_b64encode(b"s-1").decode(),
        base64.urlsafe_b64encode(b"s").decode(),
        base64.urlsafe_b64encode("s²".encode()).decode(),
        base64.urlsafe_b64encode(b"s" + b"9" * 30).decode()[:64],
    ],
)
async def test_bad_cursor_is_a_422_naming_query_cursor(settings, cursor):
    async with api_only(settings) as (_, client):
        await _launch_many(client, 1)
        assert error_fields(await client.get("/v1/tokens", params={"cursor": cursor})) == ["query.cursor"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "query.limit"),
        ({"limit": 201}, "query.limit"),
        ({"limit": -3}, "query.limit"),
        ({"limit": "ten"}, "query.limit"),
        ({"cursor": "c" * 65}, "query.cursor"),
        ({"chain": "dogecoin"}, "query.chain"),
        ({"status": "confirmed"}, "query.status"),
        ({"creator": "c" * 65}, "query.creator"),
    ],
)
async def test_bad_query_parameters_are_422_naming_them(settings, params, field):
    async with api_only(settings) as (_, client):
        assert error_fields(await client.get("/v1/tokens", params=params)) == [field]


@pytest.mark.parametrize("limit", [1, 200])
async def test_limit_bounds_are_accepted(settings, limit):
    async with api_only(settings) as (_, client):
        await _launch_many(client, 2)
        page = (await client.get("/v1/tokens", params={"limit": limit})).json()
        assert len(page["items"]) == min(limit, 2)
        assert (page["next_cursor"] is None) == (limit >= 2)


# --- job event stream (the parts a plain request can check) -----------------------------


async def test_event_stream_resumes_after_last_event_id(settings):
    async with running_stack(settings, fakes()) as (_, client):
        job_id = (await client.post("/v1/tokens", json=launch_body())).json()["job"]["id"]
        await wait_final(client, job_id)
        resp = await client.get(f"/v1/jobs/{job_id}/events")
        ids = [int(line[3:]) for line in resp.text.splitlines() if line.startswith("id:")]
        assert len(ids) == 4
        resumed = await client.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": str(ids[1])})
        assert [int(line[3:]) for line in resumed.text.splitlines() if line.startswith("id:")] == ids[2:]


async def test_event_stream_with_a_non_ascii_digit_last_event_id_is_not_a_server_error(settings):
    async with running_stack(settings, fakes()) as (container, plain):
        job_id = (await plain.post("/v1/tokens", json=launch_body())).json()["job"]["id"]
        await wait_final(plain, job_id)  # a final job's stream ends on its own
        transport = httpx.ASGITransport(app=create_app(container=container), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://tokenforge.test") as client:
            # b"\xb2" is '²' in latin-1, the charset HTTP header values are decoded with
            resp = await client.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": b"\xb2"})
            assert resp.status_code == 200, resp.text


async def test_the_202_body_is_exactly_the_documented_model_and_matches_later_reads(settings):
    from tokenforge.api.schemas.tokens import LaunchAccepted

    async with running_stack(settings, fakes(), start=False) as (_, client):
        resp = await client.post("/v1/tokens", json=launch_body(description="hello", website="https://example.org"))
        assert resp.status_code == 202
        body = resp.json()
        assert LaunchAccepted.model_validate(body).model_dump(mode="json") == body
        token = (await client.get(f"/v1/tokens/{body['token']['id']}")).json()
        job = (await client.get(f"/v1/jobs/{body['job']['id']}")).json()
        assert token == body["token"]
        assert job == body["job"]
