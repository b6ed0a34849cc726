"""The database goes away in the middle of launches and comes back: no restart, nothing lost.

PostgreSQL: a cluster of the test's own, stopped with ``-m immediate`` (every connection
drops at once) and started again. SQLite: another process takes the file's write lock
(``BEGIN EXCLUSIVE``) and holds it, as a backup tool or a stuck writer would.

While the database is down the API answers ``503`` problem+json with ``Retry-After``; the
worker, the relay and the sweeper back off; when it is back every accepted launch is
confirmed exactly once, having used no attempt for the outage.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from contextlib import contextmanager

import pytest

from tests.support.fake_deployer import FakeDeployer
from tests.support.pg_cluster import PostgresCluster, require_initdb
from tests.support.stack import running_stack, wait_final

pytestmark = pytest.mark.slow

CREATOR = "0x00000000000000000000000000000000000000A1"
LAUNCHES = 40


def body(i: int) -> dict:
    return {"chain": "ethereum", "name": f"Outage {i}", "symbol": f"OUT{i}", "supply": "1000000", "creator": CREATOR}


@contextmanager
def sqlite_lock(path):
    """Hold SQLite's write lock from another connection (readers in WAL mode still read)."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    conn.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


@pytest.fixture(params=["postgresql", "sqlite"])
def outage(request, settings):
    """(settings, start_outage, end_outage) for one database backend."""
    settings.sweep_interval_s = 0.5
    settings.sweep_stale_s = 3.0
    settings.outage_max_s = 1.0
    if request.param == "sqlite":
        held = []

        def down():
            lock = sqlite_lock(settings.data_dir / "tokenforge.db")
            lock.__enter__()
            held.append(lock)

        def up():
            held.pop().__exit__(None, None, None)

        yield settings, down, up
        while held:
            up()
        return
    require_initdb()
    with PostgresCluster() as pg:
        settings.database_url = pg.url
        yield settings, pg.stop, pg.start


async def test_every_launch_is_confirmed_after_a_database_outage(outage):
    settings, down, up = outage
    fake = FakeDeployer(pending_checks=3)
    fake.block_broadcast = asyncio.Event()  # the first launches are mid-step when the database goes
    async with running_stack(settings, {"ethereum": fake}) as (_, client):
        accepted = []
        for i in range(LAUNCHES // 2):
            resp = await client.post("/v1/tokens", json=body(i))
            assert resp.status_code == 202, resp.text
            accepted.append(resp.json()["job"]["id"])
        await asyncio.wait_for(fake.signed_event.wait(), 30)
        await asyncio.to_thread(down)
        outage_started = time.monotonic()
        fake.block_broadcast.set()  # their next writes meet the outage
        refused = await client.post("/v1/tokens", json=body(999))
        assert refused.status_code == 503, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.json()["type"].endswith("db-unavailable")
        assert (await client.get("/readyz")).status_code == 503
        await asyncio.sleep(max(0.0, 4.0 - (time.monotonic() - outage_started)))  # the outage lasts a while
        await asyncio.to_thread(up)
        for i in range(LAUNCHES // 2, LAUNCHES):
            resp = await client.post("/v1/tokens", json=body(i))
            assert resp.status_code == 202, resp.text
            accepted.append(resp.json()["job"]["id"])
        jobs = [await wait_final(client, job_id, timeout_s=60) for job_id in accepted]
    assert [j["status"] for j in jobs] == ["confirmed"] * LAUNCHES
    assert all(j["attempts"] == 0 for j in jobs), [j["attempts"] for j in jobs]  # an outage uses no attempt
    for job in jobs:  # each token created exactly once on the chain
        assert len(fake.ledger.creations(job["token_address"])) == 1, job
