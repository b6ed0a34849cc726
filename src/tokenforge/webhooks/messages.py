"""What travels through the job pipeline for a webhook delivery, and its payload."""

from __future__ import annotations

import secrets
import time
from typing import Any

from tokenforge.observability.context import headers as trace_headers
from tokenforge.store.db import utcnow
from tokenforge.store.models import JobEventRow, JobRow, TokenRow

#: The queue topic of webhook deliveries (one message per attempt).
WEBHOOK_TOPIC = "jobs.webhook"


_last_ns = 0


def new_delivery_id() -> str:
    """A delivery id that sorts in creation order within a process (16 hex digits of a
    strictly increasing nanosecond clock, 16 random): the delivery log's order among
    deliveries created in the same transaction (equal ``created_at``)."""
    global _last_ns
    _last_ns = max(_last_ns + 1, time.time_ns())
    return f"{_last_ns:016x}{secrets.token_hex(8)}"


def event_type(status: str) -> str:
    return f"job.{status}"


def outbox_row(delivery_id: str, webhook_id: str, attempt: int, *, delay_s: float = 0.0) -> dict[str, Any]:
    """The outbox row asking a worker to make attempt ``attempt`` (1-based) of a delivery."""
    return {
        "topic": WEBHOOK_TOPIC,
        "message_id": f"{delivery_id}:{attempt}",
        "payload": {"delivery_id": delivery_id, "webhook_id": webhook_id, "attempt": attempt},
        "headers": trace_headers(),
        "job_id": None,  # not a launch message: the sweeper must not count it for a job
        "available_at": time.time() + delay_s,
        "created_at": utcnow(),
    }


def payload(event: JobEventRow, job: JobRow, token: TokenRow) -> dict[str, Any]:
    """The JSON body of a delivery for ``event`` (``id`` stays the same across retries and
    re-sends: receivers de-duplicate on it)."""
    return {
        "id": f"evt_{event.id}",
        "type": event_type(event.status),
        "created_at": event.created_at.isoformat(),
        "data": {
            "job": {
                "id": job.id,
                "status": event.status,
                "message": event.message,
                "details": event.data or {},
                "event_id": event.id,
                "attempts": job.attempts,
            },
            "token": {
                "id": token.id,
                "chain": token.chain,
                "network": token.network,
                "name": token.name,
                "symbol": token.symbol,
                "creator": token.creator,
                "address": job.token_address or token.address,
            },
        },
    }
