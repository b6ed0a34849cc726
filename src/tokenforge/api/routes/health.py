"""Liveness, readiness and Prometheus metrics of an API process.

``/healthz`` answers while the process runs. ``/readyz`` checks the database, the broker,
the cache and each chain's RPC pool (:mod:`tokenforge.observability.readiness`): 503 when
the database is down, 200 with ``"degraded"`` when something it can live without is (the
broker too: launches wait in the outbox). ``/metrics`` samples the queue and outbox backlog, then serves every metric
(of every process on the host in multiprocess mode: :mod:`tokenforge.observability.prometheus`).
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from tokenforge.api.deps import ContainerDep
from tokenforge.observability.backlog import BacklogSampler
from tokenforge.observability.prometheus import render
from tokenforge.observability.readiness import ALL_CHECKS, check_readiness

router = APIRouter(tags=["operations"])
API_REQUIRED = ("database",)


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: database, broker, cache and chains, each ok, degraded or down")
async def readyz(container: ContainerDep) -> JSONResponse:
    # the API writes launches to the outbox, not to the broker: it serves while the broker is
    # down (degraded), and only a database outage makes it unready
    report = await check_readiness(container, required=API_REQUIRED)
    return JSONResponse(report.as_dict(), status_code=report.http_status)


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics(container: ContainerDep) -> Response:
    await BacklogSampler(container, readiness_checks=ALL_CHECKS, required=API_REQUIRED).sample()
    body, content_type = render()
    return Response(body, media_type=content_type)
