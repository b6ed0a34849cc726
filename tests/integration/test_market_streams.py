"""Market SSE streams: events written by another process's connection reach a stream (on
PostgreSQL woken by NOTIFY, the fallback re-read set to a minute; on SQLite by polling),
one token's stream carries only its events, and ``Last-Event-ID`` replays what was missed."""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import uvicorn

from tests.support.bodies import fakes
from tests.support.market_rows import event_values, insert_market_rows, launched_tokens
from tests.support.server import free_port
from tokenforge.api.app import create_app
from tokenforge.bootstrap import build_container
from tokenforge.chains.registry import DeployerRegistry

pytestmark = pytest.mark.integration


@asynccontextmanager
async def api_process(settings):
    """One API "process": its own container (engine, LISTEN connection) served over HTTP."""
    registry = DeployerRegistry({name: functools.partial(_ready, d) for name, d in fakes().items()})
    container = await build_container(settings, deployers=registry)
    await container.start(relay=False, worker=False, sweeper=False, job_events=True)
    if container.listener is not None:
        assert await container.listener.wait_connected(10)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(container=container), port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as probe:
        for _ in range(500):  # until it answers (uvicorn offers no started event)
            try:
                await probe.get("/healthz")
                break
            except httpx.TransportError:
                await asyncio.sleep(0.01)
    try:
        yield container, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        container.market_streams.close()  # open streams end, so the server stops at once
        await task
        await container.close()


async def _ready(deployer):
    return deployer


async def _events(lines: AsyncIterator[str], count: int) -> list[tuple[str, str, dict]]:
    """The next ``count`` events of a stream's lines: (id, event, data)."""
    got: list[tuple[str, str, dict]] = []
    fields: dict[str, str] = {}
    async for line in lines:
        if not line:
            if "data" in fields:
                got.append((fields["id"], fields["event"], json.loads(fields["data"])))
                if len(got) == count:
                    return got
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.strip()
    return got


async def _live(lines: AsyncIterator[str]) -> None:
    async for line in lines:
        if line == ": live":
            return


async def test_market_events_stream_live_and_replay_with_last_event_id(any_db_settings):
    postgres = not any_db_settings.is_sqlite
    any_db_settings.event_poll_s = 60.0 if postgres else 0.05
    async with api_process(any_db_settings) as (container, base):
        [(token_a, market_a), (_token_b, market_b)] = await launched_tokens(container, 2)
        async with (
            httpx.AsyncClient(base_url=base, timeout=30) as client,
            client.stream("GET", "/v1/stream") as every,
            client.stream("GET", f"/v1/tokens/{token_a['id']}/trades/stream") as one,
        ):
            assert every.status_code == one.status_code == 200
            assert every.headers["content-type"].startswith("text/event-stream")
            every_lines, one_lines = every.aiter_lines(), one.aiter_lines()
            await asyncio.gather(_live(every_lines), _live(one_lines))
            started = time.monotonic()
            # written on another connection, as the indexer process would
            await insert_market_rows(
                container,
                events=[
                    event_values(market_b, "trade"),
                    event_values(market_a, "trade"),
                    event_values(market_a, "graduation"),
                ],
            )
            got_every = await asyncio.wait_for(_events(every_lines, 3), 20)
            got_one = await asyncio.wait_for(_events(one_lines, 2), 20)
            took_s = time.monotonic() - started
        assert [e[1] for e in got_every] == ["trade", "trade", "graduation"]
        assert [e[1] for e in got_one] == ["trade", "graduation"]
        assert {e[2]["token_address"] for e in got_one} == {market_a["token_address"]}
        assert got_one[0][2]["payload"]["token_id"] == token_a["id"]
        assert [int(e[0]) for e in got_every] == sorted(int(e[0]) for e in got_every)
        if postgres:
            assert took_s < 30, f"events after {took_s:.1f} s: not woken by NOTIFY"

        # a client that saw only the first event resumes with Last-Event-ID and misses nothing
        first_id = got_every[0][0]
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            headers = {"Last-Event-ID": first_id}
            async with client.stream("GET", "/v1/stream", headers=headers) as resumed:
                replayed = await asyncio.wait_for(_events(resumed.aiter_lines(), 2), 20)
            async with client.stream("GET", f"/v1/tokens/{token_a['id']}/trades/stream", headers=headers) as again:
                replayed_one = await asyncio.wait_for(_events(again.aiter_lines(), 2), 20)
            missing = await client.get("/v1/tokens/0123456789abcdef0123456789abcdef/trades/stream")
        assert [e[0] for e in replayed] == [e[0] for e in got_every[1:]]
        assert [e[0] for e in replayed_one] == [e[0] for e in got_one]
        assert missing.status_code == 404
