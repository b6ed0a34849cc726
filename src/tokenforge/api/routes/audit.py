"""/v1/ops/audit: operators read the audit log and check its chain.

Every request needs an operator credential: 401 without one, 403 for a creator's.
Reading is not itself recorded (exports are: ``tokenforge audit export``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import Query

from tokenforge.api.auth import operator_router
from tokenforge.api.deps import ContainerDep, SessionDep
from tokenforge.api.schemas.audit import AuditEntryOut, AuditPage, AuditVerificationOut, verification_out
from tokenforge.api.schemas.tokens import PageCursor
from tokenforge.audit import log as audit_log
from tokenforge.errors import ValidationFailed
from tokenforge.store.repositories.audit import AuditFilter

#: Filters name stored text: no control characters (PostgreSQL refuses NUL in text).
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
#: An RFC 3339 date-time with its offset (a bare number is not a time here).
TIMESTAMP = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"


def _timestamp(field: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value[:-1] + "+00:00" if value[-1] in "Zz" else value)
    except ValueError:
        raise ValidationFailed(field, "is not a valid date and time") from None


router = operator_router("/v1/ops")


@router.get(
    "/audit",
    response_model=AuditPage,
    summary="Read the audit log, newest entries first",
    description="Entries of the append-only, hash-chained audit log, newest first (`order=asc`: oldest first), "
    "filtered by exact `action`, `actor` and `subject` and by time (`since` inclusive, `until` exclusive).",
)
async def list_audit(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500, description="Entries per page, 1-500")] = 50,
    cursor: PageCursor = None,
    order: Annotated[Literal["desc", "asc"], Query(description="`desc`: newest first; `asc`: oldest first")] = "desc",
    action: Annotated[
        str | None, Query(pattern=PRINTABLE, max_length=64, description="Only this action, e.g. `job.requeued`")
    ] = None,
    actor: Annotated[
        str | None, Query(pattern=PRINTABLE, max_length=160, description="Only this actor, e.g. `api_key:<id>`")
    ] = None,
    subject: Annotated[
        str | None, Query(pattern=PRINTABLE, max_length=256, description="Only this subject, e.g. `job:<id>`")
    ] = None,
    since: Annotated[
        str | None,
        Query(
            pattern=TIMESTAMP,
            description="Only entries at or after (ISO 8601 with offset, e.g. `2026-12-01T12:00:00Z`)",
        ),
    ] = None,
    until: Annotated[
        str | None, Query(pattern=TIMESTAMP, description="Only entries before (ISO 8601 with offset)")
    ] = None,
) -> AuditPage:
    where = AuditFilter(
        action=action,
        actor=actor,
        subject=subject,
        since=_timestamp("query.since", since),
        until=_timestamp("query.until", until),
    )
    page = await audit_log.page(session, limit=limit, cursor=cursor, newest_first=order == "desc", where=where)
    items = [AuditEntryOut(**audit_log.row_out(row)) for row in page.entries]
    return AuditPage(items=items, next_cursor=page.next_cursor)


@router.get(
    "/audit/verify",
    response_model=AuditVerificationOut,
    summary="Check the audit log's chain",
    description="Walks the whole chain from the first entry and names the first entry that does not follow "
    "(edited, deleted or inserted). Removing the newest entries leaves a valid shorter chain: compare `head` "
    "with one kept elsewhere (`tokenforge audit verify --expect-head`).",
)
async def verify_audit(container: ContainerDep) -> AuditVerificationOut:
    return verification_out(await audit_log.verify(container.sessions))
