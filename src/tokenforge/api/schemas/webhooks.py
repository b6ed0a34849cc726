"""Request and response bodies for webhooks and their delivery log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from tokenforge.domain.jobs import JobStatus
from tokenforge.store.models import WebhookDeliveryRow, WebhookRow

#: An http(s) URL without whitespace or control characters (the SSRF guard checks the rest).
WEBHOOK_URL_PATTERN = r"^[hH][tT][tT][pP][sS]?://[^\s\x00-\x1f\x7f]+$"


class CreateWebhookRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"url": "https://hooks.example.org/tokenforge", "events": ["confirmed"]}]},
    )

    url: str = Field(
        min_length=8,
        max_length=2048,
        pattern=WEBHOOK_URL_PATTERN,
        description="http or https; no user name or password; the host must resolve, and only to public "
        "addresses (loopback, private, link-local, multicast and cloud metadata addresses are refused, "
        "at registration and again at each delivery)",
    )
    events: list[Annotated[JobStatus, Field(strict=False)]] | None = Field(
        default=None,
        min_length=1,
        max_length=len(JobStatus),
        description="Job statuses to deliver (`confirmed`, `failed`, ...); left out: every job event",
    )


class WebhookOut(BaseModel):
    id: str
    url: str
    events: list[JobStatus] | None
    created_at: datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(
        repr=False,
        description="The signing secret (`whsec_…`), shown only in this response: verify "
        "`TokenForge-Signature: t=<unix>,v1=<hex>` as HMAC-SHA256(secret, `<t>.<raw body>`)",
    )


class WebhookList(BaseModel):
    items: list[WebhookOut]


class DeliveryOut(BaseModel):
    id: str
    webhook_id: str
    job_id: str
    event_id: int | None = Field(description="The job event delivered; null for a re-send")
    status: str = Field(description="`pending`, `delivered` or `failed` (attempts used up or URL refused)")
    attempts: int
    last_status_code: int | None
    last_error: str | None
    payload: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page; null on the last page")


def webhook_out(row: WebhookRow) -> WebhookOut:
    events = None if row.events is None else [JobStatus(e) for e in row.events]
    return WebhookOut(id=row.id, url=row.url, events=events, created_at=row.created_at)


def delivery_out(row: WebhookDeliveryRow) -> DeliveryOut:
    return DeliveryOut(
        id=row.id,
        webhook_id=row.webhook_id,
        job_id=row.job_id,
        event_id=row.event_id,
        status=row.status,
        attempts=row.attempts,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        payload=row.payload,
        created_at=row.created_at,
        updated_at=row.updated_at,
        delivered_at=row.delivered_at,
    )
