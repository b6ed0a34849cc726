"""Signed webhooks end to end: a real HTTP receiver on 127.0.0.1, the in-process stack
with a scriptable chain, deliveries through the outbox, the queue and the worker."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import orjson
import pytest
from aiohttp import web

from tests.support.auth import bearer, issue_key
from tests.support.fake_deployer import FakeDeployer
from tests.support.stack import running_stack, wait_final
from tokenforge.auth.principal import Role
from tokenforge.net import ssrf
from tokenforge.webhooks.signing import verify

CREATOR = "0x00000000000000000000000000000000000000A1"
OTHER = "0x00000000000000000000000000000000000000B2"
STATES = ["job.queued", "job.submitting", "job.submitted", "job.confirmed"]


@dataclass
class Receiver:
    """Records every POST; answers with the next of ``answers`` (then 200)."""

    answers: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), await request.read()))
        self.changed.set()
        return web.Response(status=self.answers.pop(0) if self.answers else 200)

    async def wait_for(self, count: int, timeout_s: float = 15.0) -> None:
        async with asyncio.timeout(timeout_s):
            while len(self.received) < count:
                self.changed.clear()
                await self.changed.wait()

    @property
    def types(self) -> list[str]:
        return [orjson.loads(body)["type"] for _, body in self.received]


@pytest.fixture
async def receiver():
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    rec.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield rec
    finally:
        await runner.cleanup()


@pytest.fixture
def local_settings(any_db_settings):
    any_db_settings.outbound_allowed_networks = ["127.0.0.1/32"]
    any_db_settings.webhook_timeout_s = 5.0
    return any_db_settings


async def deliveries_until(client, hook_id, headers, done, timeout_s: float = 15.0) -> list[dict]:
    """The delivery log once ``done(items)`` holds (polled with a deadline)."""
    deadline = time.monotonic() + timeout_s
    while True:
        resp = await client.get(f"/v1/webhooks/{hook_id}/deliveries", headers=headers)
        assert resp.status_code == 200, resp.text
        items = resp.json()["items"]
        if done(items):
            return items
        assert time.monotonic() < deadline, items
        await asyncio.sleep(0.05)


async def register(client, headers, url, **body) -> dict:
    resp = await client.post("/v1/webhooks", json={"url": url, **body}, headers=headers)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def launch(client, headers) -> str:
    body = {"chain": "ethereum", "name": "Hook Token", "symbol": "HOOK", "supply": "1000000"}
    resp = await client.post("/v1/tokens", json=body, headers=headers)
    assert resp.status_code == 202, resp.text
    return resp.json()["job"]["id"]


async def test_a_launch_is_delivered_state_by_state_with_valid_signatures(local_settings, receiver):
    async with running_stack(local_settings, {"ethereum": FakeDeployer()}) as (container, client):
        creator = bearer(await issue_key(container.sessions, Role.CREATOR, CREATOR))
        hook = await register(client, creator, receiver.url)
        assert hook["secret"].startswith("whsec_") and hook["events"] is None
        listed = (await client.get("/v1/webhooks", headers=creator)).json()["items"]
        assert [h["id"] for h in listed] == [hook["id"]] and "secret" not in listed[0]

        job_id = await launch(client, creator)
        assert (await wait_final(client, job_id))["status"] == "confirmed"
        await receiver.wait_for(4)

        assert receiver.types == STATES
        for headers, body in receiver.received:
            assert verify(hook["secret"], headers["TokenForge-Signature"], body)
            payload = orjson.loads(body)
            assert headers["TokenForge-Event"] == payload["type"]
            assert payload["data"]["job"]["id"] == job_id and payload["data"]["token"]["creator"] == CREATOR
        assert orjson.loads(receiver.received[-1][1])["data"]["token"]["address"] == FakeDeployer.address_for(job_id)
        items = await deliveries_until(
            client, hook["id"], creator, lambda xs: len(xs) == 4 and all(x["status"] == "delivered" for x in xs)
        )
        assert [x["payload"]["type"] for x in items] == STATES[::-1]  # newest first
        assert {x["id"] for x in items} == {h["TokenForge-Delivery"] for h, _ in receiver.received}
        assert all(x["attempts"] == 1 and x["last_status_code"] == 200 for x in items)
        # the secret is sealed at rest, never stored as given
        from tokenforge.store.models import WebhookRow

        async with container.sessions() as s:
            row = await s.get(WebhookRow, hook["id"])
            assert row is not None and hook["secret"].removeprefix("whsec_") not in orjson.dumps(row.secret).decode()


async def test_a_failing_receiver_is_retried_then_delivered_and_a_resend_works(local_settings, receiver):
    receiver.answers = [500, 500]
    async with running_stack(local_settings, {"ethereum": FakeDeployer()}) as (container, client):
        creator = bearer(await issue_key(container.sessions, Role.CREATOR, CREATOR))
        hook = await register(client, creator, receiver.url, events=["confirmed"])
        await wait_final(client, await launch(client, creator))
        await receiver.wait_for(3)
        (item,) = await deliveries_until(client, hook["id"], creator, lambda xs: xs and xs[0]["status"] != "pending")
        assert item["status"] == "delivered" and item["attempts"] == 3 and item["last_status_code"] == 200
        assert receiver.types == ["job.confirmed"] * 3

        resp = await client.post(f"/v1/webhooks/{hook['id']}/deliveries/{item['id']}/resend", headers=creator)
        assert resp.status_code == 202, resp.text
        resent = resp.json()
        assert resent["status"] == "pending" and resent["event_id"] is None and resent["id"] != item["id"]
        await receiver.wait_for(4)
        assert receiver.received[3][0]["TokenForge-Delivery"] == resent["id"]
        assert orjson.loads(receiver.received[3][1])["id"] == item["payload"]["id"]  # the same event
        items = await deliveries_until(client, hook["id"], creator, lambda xs: xs[0]["status"] == "delivered")
        assert [x["id"] for x in items] == [resent["id"], item["id"]] and items[0]["attempts"] == 1


async def test_attempts_run_out_and_the_log_says_why(settings, receiver):
    settings.outbound_allowed_networks = ["127.0.0.1/32"]
    settings.webhook_max_attempts = 2
    receiver.answers = [503, 503, 503]
    async with running_stack(settings, {"ethereum": FakeDeployer()}) as (container, client):
        creator = bearer(await issue_key(container.sessions, Role.CREATOR, CREATOR))
        hook = await register(client, creator, receiver.url, events=["confirmed"])
        await wait_final(client, await launch(client, creator))
        (item,) = await deliveries_until(client, hook["id"], creator, lambda xs: xs and xs[0]["status"] == "failed")
        assert item["attempts"] == 2 and item["last_status_code"] == 503 and item["last_error"] == "HTTP 503"
        assert len(receiver.received) == 2


async def test_another_caller_cannot_see_or_touch_a_webhook(settings, receiver):
    settings.outbound_allowed_networks = ["127.0.0.1/32"]
    async with running_stack(settings, {"ethereum": FakeDeployer()}) as (container, client):
        creator = bearer(await issue_key(container.sessions, Role.CREATOR, CREATOR))
        other = bearer(await issue_key(container.sessions, Role.CREATOR, OTHER))
        hook = await register(client, creator, receiver.url)
        await wait_final(client, await launch(client, creator))
        await receiver.wait_for(4)
        delivery_id = receiver.received[0][0]["TokenForge-Delivery"]

        assert (await client.get("/v1/webhooks", headers=other)).json()["items"] == []
        for method, path in [
            ("GET", f"/v1/webhooks/{hook['id']}/deliveries"),
            ("POST", f"/v1/webhooks/{hook['id']}/deliveries/{delivery_id}/resend"),
            ("DELETE", f"/v1/webhooks/{hook['id']}"),
        ]:
            resp = await client.request(method, path, headers=other)
            assert resp.status_code == 404, (method, path, resp.text)
            assert resp.headers["content-type"].startswith("application/problem+json")
        anonymous = await client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers={"Authorization": ""})
        assert anonymous.status_code == 401

        # the other creator's own launch does not reach this webhook
        await wait_final(client, await launch(client, other))
        assert (await client.delete(f"/v1/webhooks/{hook['id']}", headers=creator)).status_code == 204
        assert (await client.get("/v1/webhooks", headers=creator)).json()["items"] == []
        assert len(receiver.received) == 4


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://localhost:8000/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://[::ffff:10.0.0.1]/",
        "http://user:pass@host/",
    ],
)
async def test_registration_refuses_unsafe_urls_naming_url(settings, url):
    async with running_stack(settings, start=False) as (container, client):
        creator = bearer(await issue_key(container.sessions, Role.CREATOR, CREATOR))
        resp = await client.post("/v1/webhooks", json={"url": url}, headers=creator)
        assert resp.status_code == 422, resp.text
        assert [e["field"] for e in resp.json()["errors"]] == ["url"]


async def test_launch_links_to_non_public_addresses_are_refused(settings):
    async with running_stack(settings, start=False) as (_, client):
        body = {"chain": "ethereum", "name": "T", "symbol": "T", "supply": "1", "creator": CREATOR}
        for link, value in [("image_url", "http://169.254.169.254/x.png"), ("website", "http://[::1]:8000/")]:
            resp = await client.post("/v1/tokens", json={**body, link: value})
            assert resp.status_code == 422, resp.text
            assert [e["field"] for e in resp.json()["errors"]] == [link]
        # a name this machine cannot resolve is not refused (nothing fetches it now)
        resp = await client.post("/v1/tokens", json={**body, "website": "https://example.org"})
        assert resp.status_code == 202, resp.text


async def test_dns_rebinding_is_refused_at_delivery(settings, monkeypatch):
    settings.outbound_allowed_networks = ["127.0.0.1/32"]
    answers = {"rebind.example": ["93.184.216.34"]}

    async def resolver(host, port):
        return answers[host]

    monkeypatch.setattr(ssrf, "resolver", resolver)
    async with running_stack(settings, {"ethereum": FakeDeployer()}) as (container, client):
        creator = bearer(await issue_key(container.sessions, Role.CREATOR, CREATOR))
        hook = await register(client, creator, "https://rebind.example/hook", events=["confirmed"])
        answers["rebind.example"] = ["169.254.169.254"]  # the name now points at the metadata service
        await wait_final(client, await launch(client, creator))
        (item,) = await deliveries_until(client, hook["id"], creator, lambda xs: xs and xs[0]["status"] != "pending")
        assert item["status"] == "failed" and item["attempts"] == 1 and item["last_status_code"] is None
        assert "refused at delivery" in item["last_error"] and "169.254.169.254" in item["last_error"]
        assert "cloud metadata" in item["last_error"]
