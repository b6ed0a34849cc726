"""/v1/webhooks: signed callbacks for the caller's launches, and their delivery log.

Every route needs a creator (or operator) credential; a caller sees and manages only the
webhooks it registered (its wallet's, or its wallet-less API key's): another caller's
webhook answers 404, like one that does not exist."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from tokenforge.api.auth import AUTH_RESPONSES, CreatorDep
from tokenforge.api.deps import ContainerDep, SessionDep
from tokenforge.api.problems import PROBLEM_JSON, PROBLEM_RESPONSES, Problem
from tokenforge.api.schemas.tokens import CURSOR_PATTERN
from tokenforge.api.schemas.webhooks import (
    CreateWebhookRequest,
    DeliveryOut,
    DeliveryPage,
    WebhookCreated,
    WebhookList,
    delivery_out,
    webhook_out,
)
from tokenforge.errors import ValidationFailed
from tokenforge.webhooks import service

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], responses={**PROBLEM_RESPONSES, **AUTH_RESPONSES})
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No such webhook (or delivery) of the caller", "content": {PROBLEM_JSON: {}}}
}
ID = Annotated[str, Path(max_length=64, description="A webhook `id` this API returned")]
PAGE_SIZE = 50


def _encode_cursor(at: datetime, delivery_id: str) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{delivery_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, delivery_id = raw.partition("|")
        parsed = datetime.fromisoformat(at)
        if parsed.tzinfo is not None and delivery_id.isalnum() and len(delivery_id) <= 32:
            return parsed, delivery_id
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise ValidationFailed("query.cursor", "is not a cursor this API returned")


@router.post(
    "",
    status_code=201,
    response_model=WebhookCreated,
    summary="Register a webhook for the caller's launches",
    description=(
        "Job events of the caller's launches (its wallet's, or its wallet-less API key's) are POSTed "
        'to `url` as JSON `{id, type: "job.<status>", created_at, data: {job, token}}` with '
        '`TokenForge-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`, '
        "`TokenForge-Delivery` and `TokenForge-Event` headers; a 2xx answer counts as delivered, "
        "anything else is retried with backoff. The `secret` is in this response only."
    ),
)
async def create_webhook(body: CreateWebhookRequest, container: ContainerDep, principal: CreatorDep):
    hooks = container.webhooks
    assert hooks is not None, "build_container always wires webhooks"
    registered = await service.register(
        container.sessions,
        hooks.box,
        principal,
        url=body.url,
        events=[e.value for e in body.events] if body.events is not None else None,
        allowed_networks=hooks.allowed_networks,
    )
    hooks.dispatcher.webhooks_changed()
    return WebhookCreated(**webhook_out(registered.row).model_dump(), secret=registered.secret)


@router.get("", response_model=WebhookList, summary="List the caller's webhooks")
async def list_webhooks(session: SessionDep, principal: CreatorDep):
    return WebhookList(items=[webhook_out(r) for r in await service.list_webhooks(session, principal)])


@router.delete("/{webhook_id}", status_code=204, summary="Delete a webhook", responses=NOT_FOUND)
async def delete_webhook(webhook_id: ID, container: ContainerDep, principal: CreatorDep):
    await service.delete(container.sessions, principal, webhook_id)
    return Response(status_code=204)


@router.get(
    "/{webhook_id}/deliveries",
    response_model=DeliveryPage,
    summary="A webhook's delivery log, newest first",
    responses=NOT_FOUND,
)
async def list_deliveries(
    webhook_id: ID,
    session: SessionDep,
    principal: CreatorDep,
    limit: Annotated[int, Query(ge=1, le=200, description="Deliveries per page, 1-200")] = PAGE_SIZE,
    cursor: Annotated[
        str | None,
        Query(max_length=128, pattern=CURSOR_PATTERN, description="`next_cursor` of the previous page"),
    ] = None,
):
    before = _decode_cursor(cursor) if cursor else None
    rows = await service.deliveries(session, principal, webhook_id, limit=limit + 1, before=before)
    next_cursor = _encode_cursor(rows[limit - 1].created_at, rows[limit - 1].id) if len(rows) > limit else None
    return DeliveryPage(items=[delivery_out(r) for r in rows[:limit]], next_cursor=next_cursor)


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/resend",
    status_code=202,
    response_model=DeliveryOut,
    summary="Send a delivery's payload again",
    description="Creates a new delivery of the same payload with a fresh attempt budget; answers at once.",
    responses=NOT_FOUND,
)
async def resend_delivery(
    webhook_id: ID,
    delivery_id: Annotated[str, Path(max_length=64, description="A delivery `id` of this webhook")],
    container: ContainerDep,
    principal: CreatorDep,
):
    row = await service.resend(container.sessions, principal, webhook_id, delivery_id)
    container.wake_relay()
    return delivery_out(row)
