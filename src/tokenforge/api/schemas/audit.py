"""Response bodies of the audit log endpoints (``/v1/ops/audit``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from tokenforge.audit.log import Verification


class AuditEntryOut(BaseModel):
    """One entry, exactly as chained: ``hash = SHA-256(prev_hash ‖ canonical JSON of seq, at,
    actor, action, subject, details)`` (sorted keys, no spaces)."""

    seq: int = Field(description="Position in the chain: 1, 2, 3, ... with no gaps")
    at: str = Field(description="When, in UTC with microseconds (`2026-12-01T15:00:00.000000Z`), as hashed")
    actor: str = Field(description="Who: `api_key:<id>`, `session:<id>`, `cli:<user>@<host>`, `system:<role>`, ...")
    action: str = Field(description="What, e.g. `launch.requested`, `api_key.issued`, `job.requeued`")
    subject: str = Field(description="To what, e.g. `token:<id>`, `job:<id>`, `api_key:<id>`")
    details: dict[str, Any] = Field(description="Facts of the action (never a secret)")
    prev_hash: str = Field(description="`hash` of the entry before (64 zeros for the first)")
    hash: str = Field(description="SHA-256 (hex) chaining this entry to the one before")


class AuditPage(BaseModel):
    items: list[AuditEntryOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")


class AuditVerificationOut(BaseModel):
    ok: bool = Field(description="Whether every entry follows the one before it")
    entries: int = Field(description="Entries that follow the chain from the first one")
    head: str = Field(
        description="Hash of the last of those entries (keep it: `tokenforge audit verify --expect-head`)"
    )
    broken_seq: int | None = Field(description="The first entry that does not follow; null when ok")
    reason: str | None = Field(description="Why it does not follow; null when ok")


def verification_out(result: Verification) -> AuditVerificationOut:
    return AuditVerificationOut(
        ok=result.ok, entries=result.entries, head=result.head, broken_seq=result.broken_seq, reason=result.reason
    )
