"""Trace context in message headers: off by default, replaced by the producer span when on."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tokenforge.config import Settings
from tokenforge.observability import context, tracing

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def spans(tmp_path):
    exporter = InMemorySpanExporter()
    tracing.setup_tracing(Settings(data_dir=tmp_path), "tokenforge-test", exporter=exporter)
    yield exporter
    tracing.stop_tracing()


def test_with_tracing_off_headers_pass_unchanged_and_no_traceparent_is_added(tmp_path):
    assert not tracing.setup_tracing(Settings(data_dir=tmp_path), "tokenforge-test")
    with tracing.publish_span("jobs.launch.x", {"x-request-id": "r1"}) as headers:
        assert headers == {"x-request-id": "r1"}
    with tracing.span("anything") as current:
        assert current is None
        assert "traceparent" not in context.headers()


def test_a_published_message_carries_the_producer_span_as_parent(spans):
    with tracing.publish_span("jobs.launch.x", {"x-request-id": "r1", "traceparent": PARENT}) as headers:
        pass
    (producer,) = spans.get_finished_spans()
    assert producer.name == "publish jobs.launch.x"
    assert format(producer.context.trace_id, "032x") == PARENT.split("-")[1]  # same trace
    assert format(producer.parent.span_id, "016x") == PARENT.split("-")[2]
    assert headers["x-request-id"] == "r1"
    assert headers["traceparent"].split("-")[1] == PARENT.split("-")[1]
    assert headers["traceparent"].split("-")[2] == format(producer.context.span_id, "016x")


def test_a_consumer_span_continues_the_message_headers(spans):
    with tracing.span("process jobs.launch.x", kind="consumer", parent={"traceparent": PARENT}):
        written = context.headers()  # what an outbox row written now carries
    (consumer,) = spans.get_finished_spans()
    assert format(consumer.context.trace_id, "032x") == PARENT.split("-")[1]
    assert written["traceparent"].split("-")[2] == format(consumer.context.span_id, "016x")
