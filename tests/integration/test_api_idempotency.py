"""Idempotency keys on POST /v1/tokens (Stripe semantics)."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.bodies import SOL_CREATOR, fakes, launch_body
from tests.support.stack import running_stack, wait_final


def keyed(key: str) -> dict:
    return {"Idempotency-Key": key}


async def all_tokens(client) -> list[dict]:
    resp = await client.get("/v1/tokens", params={"limit": 200})
    assert resp.status_code == 200
    assert resp.json()["next_cursor"] is None
    return resp.json()["items"]


async def test_same_key_and_body_replays_the_first_response(settings):
    async with running_stack(settings, fakes(), start=False) as (_, client):
        first = await client.post("/v1/tokens", json=launch_body(), headers=keyed("order-1"))
        assert first.status_code == 202, first.text
        assert "idempotent-replayed" not in first.headers
        again = await client.post("/v1/tokens", json=launch_body(), headers=keyed("order-1"))
        assert again.status_code == 202, again.text
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json()
        assert again.headers["location"] == first.headers["location"]
        tokens = await all_tokens(client)
        assert [t["id"] for t in tokens] == [first.json()["token"]["id"]]


async def test_replay_is_the_first_response_even_after_the_job_moved_on(settings):
    async with running_stack(settings, fakes()) as (_, client):
        first = await client.post("/v1/tokens", json=launch_body(), headers=keyed("order-2"))
        job_id = first.json()["job"]["id"]
        assert (await wait_final(client, job_id))["status"] == "confirmed"
        again = await client.post("/v1/tokens", json=launch_body(), headers=keyed("order-2"))
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json()  # the stored answer, not a re-read
        assert again.json()["job"]["status"] == "queued"
        assert len(await all_tokens(client)) == 1


async def test_body_key_order_and_whitespace_do_not_matter(settings):
    async with running_stack(settings, fakes(), start=False) as (_, client):
        body = launch_body(description="same")
        first = await client.post("/v1/tokens", json=body, headers=keyed("order-3"))
        reordered = (
            '{ "description":"same", '
            + ", ".join(f'"{k}": "{v}"' for k, v in reversed(list(launch_body().items())))
            + " }"
        )
        again = await client.post(
            "/v1/tokens", content=reordered, headers={**keyed("order-3"), "content-type": "application/json"}
        )
        assert again.status_code == 202, again.text
        assert again.headers.get("idempotent-replayed") == "true"
        assert again.json()["job"]["id"] == first.json()["job"]["id"]


@pytest.mark.parametrize(
    "change",
    [
        {"symbol": "OTHER"},
        {"supply": "1000001"},
        {"decimals": 6},
        {"description": "changed"},
        {"chain": "solana", "creator": SOL_CREATOR},
    ],
    ids=lambda c: ",".join(c),
)
async def test_same_key_with_a_different_body_is_refused(settings, change):
    async with running_stack(settings, fakes(), start=False) as (_, client):
        first = await client.post("/v1/tokens", json=launch_body(), headers=keyed("order-4"))
        assert first.status_code == 202
        resp = await client.post("/v1/tokens", json=launch_body(**change), headers=keyed("order-4"))
        assert resp.status_code == 422, resp.text
        assert resp.headers["content-type"].split(";")[0] == "application/problem+json"
        problem = resp.json()
        assert problem["status"] == 422
        assert problem["type"] == "/problems/idempotency-key-reused"
        assert problem["title"] and "Idempotency-Key" in problem["detail"]
        assert problem["instance"] == "/v1/tokens"
        assert "idempotent-replayed" not in resp.headers
        assert [t["id"] for t in await all_tokens(client)] == [first.json()["token"]["id"]]
        # the key still answers with the first response for the first body
        again = await client.post("/v1/tokens", json=launch_body(), headers=keyed("order-4"))
        assert again.json()["job"]["id"] == first.json()["job"]["id"]


async def test_different_keys_make_different_jobs(settings):
    async with running_stack(settings, fakes(), start=False) as (_, client):
        a = await client.post("/v1/tokens", json=launch_body(), headers=keyed("key-a"))
        b = await client.post("/v1/tokens", json=launch_body(), headers=keyed("key-b"))
        assert a.status_code == b.status_code == 202
        assert "idempotent-replayed" not in b.headers
        assert a.json()["job"]["id"] != b.json()["job"]["id"]
        assert a.json()["token"]["id"] != b.json()["token"]["id"]
        assert len(await all_tokens(client)) == 2


async def test_requests_without_a_key_are_never_deduplicated(settings):
    async with running_stack(settings, fakes(), start=False) as (_, client):
        a = await client.post("/v1/tokens", json=launch_body())
        b = await client.post("/v1/tokens", json=launch_body())
        assert a.json()["job"]["id"] != b.json()["job"]["id"]
        assert len(await all_tokens(client)) == 2


async def test_keys_are_case_sensitive(settings):
    async with running_stack(settings, fakes(), start=False) as (_, client):
        a = await client.post("/v1/tokens", json=launch_body(), headers=keyed("Order-5"))
        b = await client.post("/v1/tokens", json=launch_body(), headers=keyed("order-5"))
        assert a.json()["job"]["id"] != b.json()["job"]["id"]


async def test_a_refused_request_does_not_burn_the_key(settings):
    async with running_stack(settings, fakes(), start=False) as (_, client):
        bad = await client.post("/v1/tokens", json=launch_body(symbol="lower"), headers=keyed("order-6"))
        assert bad.status_code == 422
        good = await client.post("/v1/tokens", json=launch_body(), headers=keyed("order-6"))
        assert good.status_code == 202, good.text
        assert "idempotent-replayed" not in good.headers
        assert len(await all_tokens(client)) == 1


async def test_twenty_concurrent_requests_with_one_key_make_one_token(any_db_settings):
    deployers = fakes()
    async with running_stack(any_db_settings, deployers) as (_, client):
        responses = await asyncio.gather(
            *(client.post("/v1/tokens", json=launch_body(), headers=keyed("burst")) for _ in range(20))
        )
        assert [r.status_code for r in responses] == [202] * 20, [r.text for r in responses if r.status_code != 202]
        job_ids = {r.json()["job"]["id"] for r in responses}
        assert len(job_ids) == 1
        assert len({r.json()["token"]["id"] for r in responses}) == 1
        replayed = [r.headers.get("idempotent-replayed") == "true" for r in responses]
        assert replayed.count(False) == 1, "exactly one request creates the launch; the others replay it"
        assert len(await all_tokens(client)) == 1
        (job_id,) = job_ids
        assert (await wait_final(client, job_id))["status"] == "confirmed"
        assert deployers["ethereum"].sign_calls == 1


async def test_concurrent_requests_with_distinct_keys_each_make_a_token(settings):
    async with running_stack(settings, fakes(), start=False) as (_, client):
        responses = await asyncio.gather(
            *(client.post("/v1/tokens", json=launch_body(), headers=keyed(f"k{i}")) for i in range(10))
        )
        assert len({r.json()["job"]["id"] for r in responses}) == 10
        assert len(await all_tokens(client)) == 10


async def test_key_survives_a_restart_on_the_same_data_dir(settings):
    async with running_stack(settings, fakes()) as (_, client):
        first = await client.post("/v1/tokens", json=launch_body(), headers=keyed("order-7"))
        assert first.status_code == 202
        await wait_final(client, first.json()["job"]["id"])
        key = client.headers["Authorization"].removeprefix("Bearer ")
    async with running_stack(settings, fakes(), api_key=key) as (_, client):  # the same caller
        again = await client.post("/v1/tokens", json=launch_body(), headers=keyed("order-7"))
        assert again.status_code == 202, again.text
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json()["job"]["id"] == first.json()["job"]["id"]
        mismatch = await client.post("/v1/tokens", json=launch_body(symbol="OTHER"), headers=keyed("order-7"))
        assert mismatch.status_code == 422
        assert [t["id"] for t in await all_tokens(client)] == [first.json()["token"]["id"]]
