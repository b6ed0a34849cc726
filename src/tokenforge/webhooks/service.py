"""Registering, listing and deleting webhooks, reading their delivery log, re-sending.

A caller manages only its own webhooks: the owner is the principal's subject (its
wallet, or ``api_key:<id>`` for a key without one), and a webhook of another owner is
answered exactly like one that does not exist (404). The signing secret is generated
here (32 random bytes), returned once by :func:`register` and stored sealed
(:mod:`tokenforge.webhooks.secrets`); it is never logged, audited or shown again.
Registration, deletion and re-sends are in the audit log.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tokenforge.audit import Action, AuditEvent
from tokenforge.audit import log as audit_log
from tokenforge.auth.principal import Principal
from tokenforge.domain.jobs import JobStatus
from tokenforge.errors import NotFound, ValidationFailed
from tokenforge.net.ssrf import Network, Resolver, UnresolvableHost, resolve_public, split_url
from tokenforge.store.db import utcnow
from tokenforge.store.models import OutboxRow, WebhookDeliveryRow, WebhookRow, table
from tokenforge.store.repositories import webhooks as repo
from tokenforge.webhooks.messages import new_delivery_id, outbox_row
from tokenforge.webhooks.secrets import SecretBox
from tokenforge.webhooks.signing import new_secret

#: Active webhooks one owner may have.
MAX_WEBHOOKS_PER_OWNER = 20


@dataclass(frozen=True, slots=True)
class Registered:
    row: WebhookRow
    #: The signing secret: show it once, never store or log it.
    secret: str = field(repr=False)


def _not_found(webhook_id: str) -> NotFound:
    return NotFound(f"webhook {webhook_id[:32]} does not exist")


def normalise_events(events: Iterable[str] | None) -> list[str] | None:
    """The job statuses asked for, de-duplicated in status order (None: every event)."""
    if events is None:
        return None
    wanted = set(events)
    known = [s.value for s in JobStatus]
    unknown = sorted(wanted - set(known))
    if unknown:
        raise ValidationFailed("events", f"unknown job status {unknown[0]!r}; one of {', '.join(known)}")
    if not wanted:
        raise ValidationFailed("events", "must name at least one job status (leave it out for every event)")
    return [s for s in known if s in wanted]


async def check_url(
    url: str, *, allowed_networks: Iterable[Network], resolve: Resolver | None = None, timeout_s: float = 2.0
) -> None:
    """A webhook URL must resolve now, and only to public (or allowed) addresses."""
    try:
        await resolve_public(url, field="url", allowed_networks=allowed_networks, resolve=resolve, timeout_s=timeout_s)
    except UnresolvableHost as err:
        raise ValidationFailed("url", f"host {err.host} does not resolve") from None


async def register(
    sessions: async_sessionmaker[AsyncSession],
    box: SecretBox,
    principal: Principal,
    *,
    url: str,
    events: list[str] | None,
    allowed_networks: Iterable[Network],
    resolve: Resolver | None = None,
) -> Registered:
    events = normalise_events(events)
    await check_url(url, allowed_networks=allowed_networks, resolve=resolve)
    webhook_id = uuid.uuid4().hex
    secret = new_secret()
    now = utcnow()
    row = WebhookRow(
        id=webhook_id,
        owner=principal.subject,
        url=url,
        secret=box.seal(webhook_id, secret),
        events=events,
        created_by=principal.actor,
        created_at=now,
    )
    async with sessions() as session:
        if len(await repo.list_owned(session, principal.subject)) >= MAX_WEBHOOKS_PER_OWNER:
            raise ValidationFailed("url", f"at most {MAX_WEBHOOKS_PER_OWNER} webhooks per owner; delete one first")
        session.add(row)
        await session.flush()
        parts = split_url(url, field="url")[0]
        # the origin only: a receiver's path or query may carry a token of its own
        details = {"origin": f"{parts.scheme.lower()}://{parts.netloc.lower()}", "events": events}
        details["owner"] = principal.subject
        await audit_log.append(
            session, [AuditEvent(principal.actor, Action.WEBHOOK_REGISTERED, f"webhook:{webhook_id}", details)]
        )
        await session.commit()
    return Registered(row, secret)


async def list_webhooks(session: AsyncSession, principal: Principal) -> list[WebhookRow]:
    return await repo.list_owned(session, principal.subject)


async def delete(sessions: async_sessionmaker[AsyncSession], principal: Principal, webhook_id: str) -> None:
    """Delete a webhook of the caller; its pending deliveries fail ("the webhook was deleted")."""
    async with sessions() as session:
        if await repo.get_owned(session, webhook_id, principal.subject) is None:
            raise _not_found(webhook_id)
        await repo.disable(session, webhook_id, now=utcnow())
        await audit_log.append(session, [AuditEvent(principal.actor, Action.WEBHOOK_DELETED, f"webhook:{webhook_id}")])
        await session.commit()


async def deliveries(
    session: AsyncSession,
    principal: Principal,
    webhook_id: str,
    *,
    limit: int,
    before: tuple[datetime, str] | None = None,
) -> list[WebhookDeliveryRow]:
    """The delivery log of the caller's webhook, newest first (``limit`` rows)."""
    if await repo.get_owned(session, webhook_id, principal.subject) is None:
        raise _not_found(webhook_id)
    return await repo.deliveries_page(session, webhook_id, limit=limit, before=before)


async def resend(
    sessions: async_sessionmaker[AsyncSession], principal: Principal, webhook_id: str, delivery_id: str
) -> WebhookDeliveryRow:
    """Send a delivery's payload again as a new delivery (``event_id`` None) with a fresh
    attempt budget, through the outbox like any other."""
    now = utcnow()
    async with sessions() as session:
        if await repo.get_owned(session, webhook_id, principal.subject) is None:
            raise _not_found(webhook_id)
        original = await repo.get_delivery(session, delivery_id, webhook_id=webhook_id)
        if original is None:
            raise NotFound(f"delivery {delivery_id[:32]} does not exist")
        row = WebhookDeliveryRow(
            id=new_delivery_id(),
            webhook_id=webhook_id,
            job_id=original.job_id,
            event_id=None,
            payload=original.payload,
            status=repo.PENDING,
            attempts=0,
            created_at=now,
            updated_at=now,
        )
        session.add(row)
        await session.flush()
        await session.execute(insert(table(OutboxRow)), [outbox_row(row.id, webhook_id, 1)])
        details = {"webhook_id": webhook_id, "resends": delivery_id}
        await audit_log.append(
            session, [AuditEvent(principal.actor, Action.WEBHOOK_RESENT, f"delivery:{row.id}", details)]
        )
        await session.commit()
    return row
