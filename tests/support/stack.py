"""Run the API + relay + worker in-process for tests, with chosen deployers."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

import httpx

from tests.support.auth import bearer, container_key
from tokenforge.api.app import create_app
from tokenforge.bootstrap import build_container
from tokenforge.chains.registry import DeployerRegistry
from tokenforge.domain.jobs import FINAL


@asynccontextmanager
async def running_stack(
    settings, deployers: dict | None = None, *, start: bool = True, authorized: bool = True, api_key: str | None = None
):
    """The container and a client of its API; the client carries ``api_key``, else a new
    operator API key, unless ``authorized`` is False."""
    registry = None
    if deployers is not None:
        registry = DeployerRegistry({name: (lambda d=d: _ready(d)) for name, d in deployers.items()})
    container = await build_container(settings, deployers=registry)
    if start:
        await container.start()
    app = create_app(container=container)
    transport = httpx.ASGITransport(app=app)
    headers = bearer(api_key or await container_key(container)) if authorized else {}
    async with httpx.AsyncClient(transport=transport, base_url="http://tokenforge.test", headers=headers) as client:
        try:
            yield container, client
        finally:
            await container.close()


async def _ready(deployer):
    return deployer


async def wait_final(client: httpx.AsyncClient, job_id: str, timeout_s: float = 60.0) -> dict:
    """Follow the job's SSE stream until it is final; returns the final job."""

    async def follow() -> dict:
        async with client.stream("GET", f"/v1/jobs/{job_id}/events") as resp:
            assert resp.status_code == 200
            async for line in resp.aiter_lines():
                if line.startswith("data:") and '"final":true' in line.replace(" ", ""):
                    break
        job = (await client.get(f"/v1/jobs/{job_id}")).json()
        assert job["status"] in {s.value for s in FINAL}, job
        return job

    return await asyncio.wait_for(follow(), timeout_s)
