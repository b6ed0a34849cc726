"""/v1/ops: operator endpoints — list dead letters, re-queue a dead job.

Every request needs an operator credential (an API key with the operator role, or the
session of a wallet in ``operator_wallets``): 401 without one, 403 for a creator's.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import Path, Query

from tokenforge.api.auth import OperatorDep, operator_router
from tokenforge.api.deps import ContainerDep, SessionDep
from tokenforge.api.problems import problem_doc
from tokenforge.api.schemas.ops import DeadLetterPage, dead_letter_out
from tokenforge.api.schemas.tokens import JobOut, PageCursor, job_out
from tokenforge.errors import TokenForgeError
from tokenforge.services import operations

log = logging.getLogger(__name__)

router = operator_router("/v1/ops")


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
    cursor: PageCursor = None,
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
        404: problem_doc("No such job"),
        409: problem_doc("The job is not dead (`job-not-dead`)"),
    },
)
async def retry_job(
    job_id: Annotated[str, Path(description="A dead job's `id`")], container: ContainerDep, principal: OperatorDep
):
    job = await operations.retry_job(container.sessions, job_id, actor=principal.actor, feed=container.feed)
    container.wake_relay()
    return job_out(job)
