"""Response bodies of the operator endpoints (``/v1/ops``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from tokenforge.api.schemas.tokens import JobError
from tokenforge.store.models import JobRow


class DeadLetterOut(BaseModel):
    job_id: str
    chain: str
    token_id: str
    attempts: int
    max_attempts: int
    error: JobError | None
    died_at: datetime | None = Field(description="When the job became dead")
    in_broker_dead_letters: bool | None = Field(
        description="Whether the broker's dead-letter queue also holds a message of this job "
        "(true until the sweeper has reconciled it); null when the broker could not be asked"
    )


class DeadLetterPage(BaseModel):
    items: list[DeadLetterOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")


def dead_letter_out(row: JobRow, in_broker: bool | None) -> DeadLetterOut:
    error = JobError(code=row.error_code, message=row.error_message or "") if row.error_code else None
    return DeadLetterOut(
        job_id=row.id,
        chain=row.chain,
        token_id=row.token_id,
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        error=error,
        died_at=row.finished_at,
        in_broker_dead_letters=in_broker,
    )
