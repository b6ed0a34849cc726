"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from tokenforge.api.deps import ContainerDep
from tokenforge.errors import TransientError

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: the database answers")
async def readyz(container: ContainerDep, response: Response) -> dict:
    try:
        async with container.sessions() as session:
            await session.execute(text("SELECT 1"))
    # An outage leaves the session as DB_UNAVAILABLE (TransientError); a refusal that is not
    # an outage (unknown role, no such database) as the SQLAlchemy error wrapping the driver's.
    except (TransientError, SQLAlchemyError):
        response.status_code = 503
        return {"status": "unavailable", "database": "down"}
    return {
        "status": "ok",
        "database": "up",
        "chains": {k: v.network.value for k, v in container.settings.chains.items()},
    }


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
