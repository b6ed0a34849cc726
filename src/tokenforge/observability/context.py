"""What one unit of work is about, carried from the API through the outbox and the broker
into the worker: the request id, the job id and the trace context.

Values live in context variables (one asyncio task's view), are bound into every log line
by structlog's ``merge_contextvars``, and travel between processes as message headers:
:func:`headers` gives the headers to attach to a message written now; :func:`bind_headers`
restores them in the process that handles it.
"""

from __future__ import annotations

from collections.abc import Mapping

import structlog

#: Header names on outbox rows and broker messages.
REQUEST_ID = "x-request-id"
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
_LOG_KEYS = {REQUEST_ID: "request_id"}


def headers() -> dict[str, str]:
    """The headers a message written now carries (request id and trace context)."""
    bound = structlog.contextvars.get_contextvars()
    out = {name: bound[key] for name, key in _LOG_KEYS.items() if isinstance(bound.get(key), str)}
    out.update(_trace_headers())
    return out


def _trace_headers() -> dict[str, str]:
    try:
        from opentelemetry import propagate
    except ImportError:  # tracing is optional
        return {}
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return {k: v for k, v in carrier.items() if k in (TRACEPARENT, TRACESTATE)}


def bind_headers(values: Mapping[str, str] | None, **extra: str) -> None:
    """Bind the request id of ``values`` (and ``extra``, e.g. ``job_id``) to this task's logs."""
    bound: dict[str, str] = {}
    for name, key in _LOG_KEYS.items():
        value = (values or {}).get(name)
        if isinstance(value, str):
            bound[key] = value[:128]
    bound.update(extra)
    structlog.contextvars.bind_contextvars(**bound)
