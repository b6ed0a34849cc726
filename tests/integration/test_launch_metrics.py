"""Launch metrics from the change feed of a running stack (one launch is counted accepted
and confirmed, with time spent in each state it passed through), and the backlog gauges."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from tests.support.fake_deployer import FakeDeployer
from tests.support.stack import running_stack, wait_final

pytestmark = pytest.mark.integration

CREATOR = "0x00000000000000000000000000000000000000A1"


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_one_launch_is_accepted_then_confirmed_with_time_in_each_state(settings):
    accepted = _value("tokenforge_launches_total", chain="ethereum", outcome="accepted")
    confirmed = _value("tokenforge_launches_total", chain="ethereum", outcome="confirmed")
    in_state = {
        state: _value("tokenforge_job_state_seconds_count", chain="ethereum", state=state)
        for state in ("queued", "submitting", "submitted")
    }
    body = {"chain": "ethereum", "name": "Counted", "symbol": "CNT", "supply": "1000000", "creator": CREATOR}
    async with running_stack(settings, {"ethereum": FakeDeployer(pending_checks=2)}) as (_, client):
        job_id = (await client.post("/v1/tokens", json=body)).json()["job"]["id"]
        assert (await wait_final(client, job_id))["status"] == "confirmed"
        metrics = (await client.get("/metrics")).text
    assert _value("tokenforge_launches_total", chain="ethereum", outcome="accepted") == accepted + 1
    assert _value("tokenforge_launches_total", chain="ethereum", outcome="confirmed") == confirmed + 1
    for state, before in in_state.items():
        assert _value("tokenforge_job_state_seconds_count", chain="ethereum", state=state) == before + 1, state
    assert 'tokenforge_launches_total{chain="ethereum",outcome="confirmed"}' in metrics


def _sample(metrics: str, series: str) -> float:
    (line,) = [line for line in metrics.splitlines() if line.startswith(series + " ")]
    return float(line.rsplit(" ", 1)[1])


async def test_outbox_backlog_and_queue_depth_are_sampled_when_metrics_are_scraped(settings):
    """Nothing relays or consumes: the accepted launch waits in the outbox, then, relayed
    once, in the queue — an operator sees where work piles up."""
    body = {"chain": "ethereum", "name": "Waiting", "symbol": "WAIT", "supply": "1000000", "creator": CREATOR}
    async with running_stack(settings, {"ethereum": FakeDeployer()}, start=False) as (container, client):
        assert (await client.post("/v1/tokens", json=body)).status_code == 202
        metrics = (await client.get("/metrics")).text
        assert _sample(metrics, "tokenforge_outbox_pending") == 1.0
        assert _sample(metrics, "tokenforge_outbox_lag_seconds") > 0.0
        assert _sample(metrics, 'tokenforge_queue_depth{topic="jobs.launch.ethereum"}') == 0.0

        assert await container.relay.relay_once() == 1
        metrics = (await client.get("/metrics")).text
        assert _sample(metrics, "tokenforge_outbox_pending") == 0.0
        assert _sample(metrics, "tokenforge_outbox_lag_seconds") == 0.0
        assert _sample(metrics, 'tokenforge_queue_depth{topic="jobs.launch.ethereum"}') == 1.0
