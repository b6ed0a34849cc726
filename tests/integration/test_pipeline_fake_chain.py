"""The job pipeline end to end over HTTP, with a scriptable chain: retries, drops, dead letters."""

from __future__ import annotations

import asyncio

from tests.support.fake_deployer import FakeDeployer
from tests.support.stack import running_stack, wait_final
from tokenforge.errors import PermanentError, TransientError

CREATOR = "0x00000000000000000000000000000000000000A1"


def launch_body(**over):
    body = {"chain": "ethereum", "name": "Test Token", "symbol": "TT", "supply": "1000000", "creator": CREATOR}
    body.update(over)
    return body


async def test_launch_is_accepted_then_confirmed(any_db_settings):
    fake = FakeDeployer(pending_checks=2)
    async with running_stack(any_db_settings, {"ethereum": fake}) as (_, client):
        resp = await client.post("/v1/tokens", json=launch_body())
        assert resp.status_code == 202, resp.text
        body = resp.json()
        assert body["job"]["status"] == "queued"
        assert resp.headers["location"] == f"/v1/jobs/{body['job']['id']}"
        job = await wait_final(client, body["job"]["id"])
        assert job["status"] == "confirmed"
        token = (await client.get(f"/v1/tokens/{body['token']['id']}")).json()
        assert token["status"] == "live"
        assert token["address"] == FakeDeployer.address_for(body["job"]["id"])
        assert token["gas_used"] == 120_000
        assert fake.sign_calls == 1


async def test_sse_streams_every_state_in_order(any_db_settings):
    fake = FakeDeployer(pending_checks=1)
    async with running_stack(any_db_settings, {"ethereum": fake}) as (_, client):
        job_id = (await client.post("/v1/tokens", json=launch_body())).json()["job"]["id"]
        statuses = []
        async with client.stream("GET", f"/v1/jobs/{job_id}/events") as resp:
            assert resp.headers["content-type"].startswith("text/event-stream")
            async for line in resp.aiter_lines():
                if line.startswith("data:"):
                    import orjson

                    statuses.append(orjson.loads(line[5:])["status"])
        assert statuses == ["queued", "submitting", "submitted", "confirmed"]


async def test_transient_errors_retry_then_confirm(any_db_settings):
    fake = FakeDeployer()
    fake.fail_next(
        "broadcast", TransientError("timeout", code="rpc_timeout"), TransientError("503", code="rpc_unavailable")
    )
    async with running_stack(any_db_settings, {"ethereum": fake}) as (_, client):
        job_id = (await client.post("/v1/tokens", json=launch_body())).json()["job"]["id"]
        job = await wait_final(client, job_id)
        assert job["status"] == "confirmed"
        assert job["attempts"] == 2
        assert fake.sign_calls == 1, "a retry must re-broadcast the recorded tx, not sign a new one"
        assert len(fake.tokens) == 1


async def test_permanent_error_fails_at_once_with_reason(any_db_settings):
    fake = FakeDeployer()
    fake.fail_next("sign", PermanentError("insufficient funds for gas", code="insufficient_funds"))
    async with running_stack(any_db_settings, {"ethereum": fake}) as (_, client):
        job_id = (await client.post("/v1/tokens", json=launch_body())).json()["job"]["id"]
        job = await wait_final(client, job_id)
        assert job["status"] == "failed"
        assert job["attempts"] == 0
        assert job["error"] == {"code": "insufficient_funds", "message": "insufficient funds for gas"}
        token = (await client.get(f"/v1/tokens/{job['token_id']}")).json()
        assert token["status"] == "failed"


async def test_attempts_exhausted_job_is_dead_and_says_why(any_db_settings):
    any_db_settings.max_attempts = 3
    fake = FakeDeployer()
    fake.fail_next("sign", *[TransientError("rate limited", code="rate_limited")] * 3)
    async with running_stack(any_db_settings, {"ethereum": fake}) as (_, client):
        job_id = (await client.post("/v1/tokens", json=launch_body())).json()["job"]["id"]
        job = await wait_final(client, job_id)
        assert job["status"] == "dead"
        assert job["attempts"] == 3
        assert job["error"]["code"] == "rate_limited"


async def test_waiting_for_funds_or_fees_uses_no_attempt(any_db_settings):
    """No funded key, or the market above the fee cap, is the platform's condition, not the
    launch's: the launch waits through it and still has every attempt when it ends."""
    any_db_settings.max_attempts = 2
    fake = FakeDeployer()
    fake.fail_next(
        "sign",
        *[TransientError("no key funded", code="no_funded_key", retry_after_s=0.01)] * 3,
        *[TransientError("base fee above cap", code="fee_above_cap", retry_after_s=0.01)] * 3,
    )
    async with running_stack(any_db_settings, {"ethereum": fake}) as (_, client):
        job_id = (await client.post("/v1/tokens", json=launch_body())).json()["job"]["id"]
        job = await wait_final(client, job_id)
    assert job["status"] == "confirmed" and job["attempts"] == 0


async def test_dropped_tx_is_signed_again_and_lands_once(any_db_settings):
    fake = FakeDeployer()
    # first confirm says the tx is gone (e.g. blockhash expired): the worker signs anew
    fake.fail_next("confirm", TransientError("blockhash expired", code="tx_dropped"))
    async with running_stack(any_db_settings, {"ethereum": fake}) as (_, client):
        job_id = (await client.post("/v1/tokens", json=launch_body())).json()["job"]["id"]
        job = await wait_final(client, job_id)
        assert job["status"] == "confirmed"
        assert fake.sign_calls == 2
        assert len(fake.tokens) == 1


async def test_many_launches_in_flight_each_confirmed_once(any_db_settings):
    fake = FakeDeployer(pending_checks=1)
    async with running_stack(any_db_settings, {"ethereum": fake}) as (_, client):
        responses = await asyncio.gather(
            *(client.post("/v1/tokens", json=launch_body(symbol=f"T{i}")) for i in range(40))
        )
        ids = [r.json()["job"]["id"] for r in responses]
        jobs = await asyncio.gather(*(wait_final(client, j) for j in ids))
        assert {j["status"] for j in jobs} == {"confirmed"}
        assert len(fake.tokens) == 40
        assert fake.sign_calls == 40


async def test_a_delivery_arriving_while_the_job_is_being_advanced_is_not_lost(any_db_settings):
    """The confirmation check a step schedules can be delivered before that step returns."""
    fake = FakeDeployer(pending_checks=1)
    async with running_stack(any_db_settings, {"ethereum": fake}) as (container, client):
        handler = container.worker._handler
        schedule_check = handler._schedule_check

        async def check_delivered_before_the_step_returns(job, *, broadcast):
            await schedule_check(job, broadcast=broadcast)
            await container.relay.relay_once()  # publish the check now...
            for _ in range(50):  # ...and let the consumer deliver it while this step runs
                await asyncio.sleep(0)

        handler._schedule_check = check_delivered_before_the_step_returns
        job_id = (await client.post("/v1/tokens", json=launch_body())).json()["job"]["id"]
        job = await wait_final(client, job_id, timeout_s=15)
        assert job["status"] == "confirmed"
        assert fake.sign_calls == 1
