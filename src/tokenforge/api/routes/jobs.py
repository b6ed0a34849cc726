"""/v1/jobs: job status and a Server-Sent Events stream of its state changes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Path, Request
from fastapi.responses import StreamingResponse

from tokenforge.api.deps import ContainerDep, SessionDep
from tokenforge.api.problems import PROBLEM_JSON, PROBLEM_RESPONSES, Problem, retry_after_s
from tokenforge.api.schemas.tokens import JobEventOut, JobOut, job_out
from tokenforge.domain.jobs import FINAL, JobStatus, could_be_id
from tokenforge.errors import NotFound, TransientError
from tokenforge.store.repositories import jobs as jobs_repo

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=PROBLEM_RESPONSES)
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No such job", "content": {PROBLEM_JSON: {}}}
}
KEEPALIVE_S = 15.0
#: How soon a client whose stream ended because the server stops should reconnect.
RECONNECT_MS = 500
#: The largest event id a 64-bit integer column holds; a larger ``Last-Event-ID`` means "after all".
MAX_EVENT_ID = 2**63 - 1


@router.get("/{job_id}", response_model=JobOut, summary="Read a job", responses=NOT_FOUND)
async def get_job(job_id: Annotated[str, Path(description="A job `id` this API returned")], session: SessionDep):
    row = await jobs_repo.get(session, job_id) if could_be_id(job_id) else None
    if row is None:
        raise NotFound(f"job {job_id[:64]} does not exist")
    return job_out(row)


def _sse(event: JobEventOut, final: bool) -> bytes:
    payload = orjson.dumps({**event.model_dump(mode="json"), "final": final})
    return b"id: %d\nevent: status\ndata: %s\n\n" % (event.id, payload)


@router.get(
    "/{job_id}/events",
    summary="Stream a job's state changes (Server-Sent Events)",
    description=(
        "Sends every recorded state change as an `status` event (JSON data: status, message, "
        "data, at, final), oldest first, then each new one as it happens; the stream ends after "
        "the job reaches a final state (confirmed, failed, dead). Reconnect with `Last-Event-ID` "
        "to resume. If the database becomes unavailable mid-stream, or the serving process "
        "stops, the stream ends with a `retry:` field (milliseconds to wait before reconnecting)."
    ),
    responses={**NOT_FOUND, 200: {"content": {"text/event-stream": {}}, "description": "event stream"}},
)
async def job_events(
    job_id: Annotated[str, Path(description="A job `id` this API returned")],
    request: Request,
    container: ContainerDep,
    last_event_id: Annotated[
        str | None,
        Header(
            max_length=20,
            description="The `id` of the last event received: the stream resumes after it "
            "(anything but decimal digits starts from the beginning)",
        ),
    ] = None,
):
    async with container.sessions() as session:
        job = await jobs_repo.get(session, job_id) if could_be_id(job_id) else None
    if job is None:
        raise NotFound(f"job {job_id[:64]} does not exist")
    after = int(last_event_id) if last_event_id and last_event_id.isascii() and last_event_id.isdigit() else 0
    after = min(after, MAX_EVENT_ID)  # past any id the database can hold

    async def stream() -> AsyncIterator[bytes]:
        with container.hub.watch(job_id) as woken:
            async for chunk in _stream(woken):
                yield chunk

    async def _stream(woken: asyncio.Event) -> AsyncIterator[bytes]:
        nonlocal after
        idle_s = 0.0
        while True:
            woken.clear()  # before the read: a wake-up during the read or the writes is kept
            try:
                async with container.sessions() as session:
                    events = await jobs_repo.events_after(session, job_id, after)
                    current = await jobs_repo.get(session, job_id)
            except TransientError as exc:
                # the response has started: end the stream and tell the client when to
                # reconnect (with Last-Event-ID, so it misses nothing)
                yield b"retry: %d\n\n" % (retry_after_s(exc) * 1000)
                return
            if current is None:
                return
            final = JobStatus(current.status) in FINAL
            for i, ev in enumerate(events):
                out = JobEventOut(
                    id=ev.id,
                    job_id=ev.job_id,
                    status=JobStatus(ev.status),
                    message=ev.message,
                    data=ev.data,
                    at=ev.created_at,
                )
                yield _sse(out, final and i == len(events) - 1)
                after = ev.id
            if final:
                return
            if await request.is_disconnected():
                return
            if container.hub.closed:  # the server is stopping: resume on another process
                yield b"retry: %d\n\n" % RECONNECT_MS
                return
            # woken at once by a writer in this process or (PostgreSQL NOTIFY) in any other,
            # else re-read after event_poll_s (longer while notifications flow)
            recheck_s = container.hub.recheck_s(container.settings.event_poll_s)
            woke = await container.hub.wait_for(woken, recheck_s)
            idle_s = 0.0 if woke else idle_s + recheck_s
            if idle_s >= KEEPALIVE_S:
                idle_s = 0.0
                yield b": keep-alive\n\n"

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
