"""Logging set-up: structlog, JSON when asked, secrets never logged.

Every line — from stdlib ``logging`` loggers (most of TokenForge) and structlog loggers
alike — carries the context variables bound for the task that logs it
(``structlog.contextvars``): the API binds ``request_id`` per request
(:mod:`tokenforge.api.middleware`), the worker ``request_id`` and ``job_id`` per delivery
(:func:`tokenforge.observability.context.bind_headers`). While tracing is on, lines
logged inside a span also carry its ``trace_id`` and ``span_id``.

Metrics (:mod:`.metrics`, :mod:`.prometheus`) and tracing (:mod:`.tracing`) live in their
own modules: importing this package creates no metric.
"""

from __future__ import annotations

import logging

import structlog

from tokenforge.config import Settings


def configure_logging(settings: Settings) -> None:
    level = getattr(logging, settings.log_level.upper(), logging.INFO)
    renderer = structlog.processors.JSONRenderer() if settings.log_json else structlog.dev.ConsoleRenderer(colors=False)
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        _add_trace_ids,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso"),
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name, structlog.stdlib.ExtraAdder()],
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.add_logger_name, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def _add_trace_ids(_logger: object, _method: str, event: structlog.typing.EventDict) -> structlog.typing.EventDict:
    from tokenforge.observability import tracing

    if tracing.enabled():
        context = tracing.trace.get_current_span().get_span_context()
        if context.is_valid:
            event.setdefault("trace_id", format(context.trace_id, "032x"))
            event.setdefault("span_id", format(context.span_id, "016x"))
    return event
