"""/v1/ops: operator endpoints — list dead letters, re-queue a dead job.

Every request needs ``Authorization: Bearer <TOKENFORGE_OPS_TOKEN>`` (compared in constant
time). Without the setting the endpoints are disabled and answer 403; a missing or wrong
token answers 401 with ``WWW-Authenticate: Bearer``.
"""

from __future__ import annotations

import hmac
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tokenforge.api.deps import ContainerDep, SessionDep
from tokenforge.api.problems import PROBLEM_JSON, PROBLEM_RESPONSES, Problem
from tokenforge.api.schemas.ops import DeadLetterPage, dead_letter_out
from tokenforge.api.schemas.tokens import CURSOR_PATTERN, JobOut, job_out
from tokenforge.errors import TokenForgeError
from tokenforge.services import operations

log = logging.getLogger(__name__)

DISABLED = "operator endpoints are disabled; set TOKENFORGE_OPS_TOKEN"
_bearer = HTTPBearer(auto_error=False, description="The operator token (TOKENFORGE_OPS_TOKEN)")


async def require_operator(
    container: ContainerDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """Let the request through only with the operator token; 403 while none is configured."""
    configured = container.settings.ops_token
    expected = configured.get_secret_value() if configured is not None else ""
    if not expected:
        raise HTTPException(403, DISABLED)
    given = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(
            401, "a valid operator token is required", headers={"WWW-Authenticate": 'Bearer realm="tokenforge-ops"'}
        )


def _problem(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"model": Problem, "description": description, "content": {PROBLEM_JSON: {}}}
    if headers:
        doc["headers"] = headers
    return doc


AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _problem(
        "The operator token is missing or wrong",
        {"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}},
    ),
    403: _problem("Operator endpoints are disabled (TOKENFORGE_OPS_TOKEN is not set)"),
}

router = APIRouter(
    prefix="/v1/ops",
    tags=["operations"],
    dependencies=[Depends(require_operator)],
    responses={**PROBLEM_RESPONSES, **AUTH_RESPONSES},
)


@router.get(
    "/dead-letters",
    response_model=DeadLetterPage,
    summary="List dead jobs, most recently dead first",
    description="Every dead job from the database (the record): jobs the failure policy gave up on and jobs "
    "whose message the broker dead-lettered. Each says whether the broker's dead-letter queue still holds "
    "a message of it.",
)
async def list_dead_letters(
    session: SessionDep,
    container: ContainerDep,
    limit: Annotated[int, Query(ge=1, le=500, description="Jobs per page, 1-500")] = 50,
    cursor: Annotated[
        str | None,
        Query(
            max_length=128,
            pattern=CURSOR_PATTERN,
            description="`next_cursor` of the previous page, passed back unchanged; absent for the first page",
        ),
    ] = None,
):
    page = await operations.dead_page(session, limit=limit, cursor=cursor)
    in_broker: set[str] | None
    try:
        in_broker = await operations.broker_dead_letter_ids(container.queue, {j.chain for j in page.jobs})
    except TokenForgeError as err:  # the database is the record: list it even with the broker away
        log.warning("broker dead letters not read: %s", err)
        in_broker = None
    items = [dead_letter_out(j, None if in_broker is None else j.id in in_broker) for j in page.jobs]
    return DeadLetterPage(items=items, next_cursor=page.next_cursor)


@router.post(
    "/jobs/{job_id}/retry",
    status_code=202,
    response_model=JobOut,
    summary="Re-queue a dead job with a fresh attempt budget",
    responses={
        404: _problem("No such job"),
        409: _problem("The job is not dead (`job-not-dead`)"),
    },
)
async def retry_job(job_id: Annotated[str, Path(description="A dead job's `id`")], container: ContainerDep):
    job = await operations.retry_job(container.sessions, job_id, feed=container.feed)
    container.wake_relay()
    return job_out(job)
