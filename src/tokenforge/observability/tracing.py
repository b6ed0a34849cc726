"""OpenTelemetry spans across API → relay → broker → worker → RPC; off by default.

:func:`setup_tracing` installs the SDK's tracer provider with the exporter
``settings.otel_exporter`` names (``console``, or ``otlp`` over HTTP, configured by the
standard ``OTEL_EXPORTER_OTLP_*`` variables). With ``none`` (the default) nothing is
installed and :func:`span` costs one flag test: no span objects, no context changes, and
messages carry no ``traceparent``.

A trace crosses processes in message headers (W3C trace context): the API's server span
(FastAPI's own, :func:`fastapi_telemetry`) is current when the launch's outbox row is
written (:func:`tokenforge.observability.context.headers` copies its ``traceparent``); the
relay's producer span is a child of the row's context and its own context goes out with
the message (:func:`publish_span`); the worker's consumer span is a child of the delivery's
headers; RPC client spans are children of the worker's span.

Set up once per process: the provider (and the global one, for library instrumentation)
stays; :func:`stop_tracing` only stops TokenForge's own spans and those of apps built later.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

from opentelemetry import propagate, trace

from tokenforge import __version__
from tokenforge.config import Settings
from tokenforge.observability.context import TRACEPARENT, TRACESTATE

if TYPE_CHECKING:
    from fastapi.telemetry import TelemetryConfig
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger(__name__)

Kind = Literal["server", "client", "producer", "consumer", "internal"]
_KINDS = {
    "server": trace.SpanKind.SERVER,
    "client": trace.SpanKind.CLIENT,
    "producer": trace.SpanKind.PRODUCER,
    "consumer": trace.SpanKind.CONSUMER,
    "internal": trace.SpanKind.INTERNAL,
}

#: The SDK provider of this process (created once; exporters are added to it).
_provider: TracerProvider | None = None
#: The tracer spans are made with; None while tracing is off.
_tracer: trace.Tracer | None = None
#: The configured exporters already added to the provider (each is added once).
_exporting: set[str] = set()


def setup_tracing(settings: Settings, service_name: str, *, exporter: SpanExporter | None = None) -> bool:
    """Turn tracing on as ``settings.otel_exporter`` says (``exporter``: an extra one, for
    tests). Call once per process entry point with the process role as ``service_name``
    (``tokenforge-api``, ``tokenforge-worker``…). Returns whether spans are now recorded."""
    global _provider, _tracer
    if settings.otel_exporter == "none" and exporter is None:
        return _tracer is not None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor

    if _provider is None:
        _provider = TracerProvider(
            resource=Resource.create({"service.name": service_name, "service.version": __version__})
        )
        trace.set_tracer_provider(_provider)  # for library instrumentation, if any is installed
    if settings.otel_exporter == "console" and "console" not in _exporting:
        _provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    elif settings.otel_exporter == "otlp" and "otlp" not in _exporting:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    _exporting.add(settings.otel_exporter)
    if exporter is not None:
        _provider.add_span_processor(SimpleSpanProcessor(exporter))
    _tracer = _provider.get_tracer("tokenforge", __version__)
    log.info("tracing on: exporter %s, service %s", settings.otel_exporter, service_name)
    return True


def stop_tracing() -> None:
    """Stop recording spans in this process and flush the ones ended (call it before the
    process exits: the OTLP exporter sends in batches)."""
    global _tracer
    _tracer = None
    if _provider is not None:
        _provider.force_flush()


def enabled() -> bool:
    return _tracer is not None


def fastapi_telemetry() -> TelemetryConfig:
    """``FastAPI(telemetry=...)`` for an app built now: FastAPI's own server span per request
    (named ``METHOD /route/{template}``, continuing an incoming ``traceparent``) from this
    process's provider while tracing is on; no FastAPI telemetry at all while it is off.
    FastAPI's metrics and logs stay off (Prometheus and structlog do those)."""
    if _tracer is None or _provider is None:
        return {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}
    return {"tracer_provider": _provider, "metrics": False, "logs": False, "operation_spans": False}


@contextmanager
def span(
    name: str,
    *,
    kind: Kind = "internal",
    parent: Mapping[str, str] | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[trace.Span | None]:
    """A span around the block, current inside it; ``parent``: the message or request
    headers whose trace context it continues (default: the current span). Yields None
    when tracing is off. An exception leaving the block is recorded on the span."""
    if _tracer is None:
        yield None
        return
    context = propagate.extract(dict(parent)) if parent is not None else None
    with _tracer.start_as_current_span(name, context=context, kind=_KINDS[kind], attributes=attributes) as current:
        yield current


@contextmanager
def publish_span(topic: str, headers: Mapping[str, str] | None) -> Iterator[dict[str, str] | None]:
    """A producer span for publishing one message whose stored ``headers`` carry the trace
    context it was written in; yields the headers to publish (the same ones with this
    span's context instead). Tracing off: yields ``headers`` unchanged."""
    if _tracer is None:
        yield dict(headers) if headers is not None else None
        return
    attributes = {"messaging.operation": "publish", "messaging.destination.name": topic}
    with span(f"publish {topic}", kind="producer", parent=headers or {}, attributes=attributes):
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        out = {k: v for k, v in (headers or {}).items() if k not in (TRACEPARENT, TRACESTATE)}
        out.update({k: v for k, v in carrier.items() if k in (TRACEPARENT, TRACESTATE)})
        yield out
