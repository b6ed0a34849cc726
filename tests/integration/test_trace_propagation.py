"""One launch, followed from the API through the outbox and the queue into the worker: the
request id is on the outbox row and on the worker's log lines, and the API, relay and
worker spans belong to one trace (tracing on, spans kept in memory). The OTLP and console
exporters, in processes of their own, send what they record."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import select

from tests.support.fake_deployer import FakeDeployer
from tests.support.stack import running_stack, wait_final
from tokenforge.observability import configure_logging, tracing
from tokenforge.store.models import OutboxRow

pytestmark = pytest.mark.integration

CREATOR = "0x00000000000000000000000000000000000000A1"
REQUEST_ID = "trace-test-0001"


class _LoggingDeployer(FakeDeployer):
    """Logs one line while the worker signs, as a real adapter might."""

    async def sign(self, req):
        logging.getLogger("tokenforge.test.deployer").info("signing launch")
        return await super().sign(req)


@pytest.fixture
def json_logs(settings):
    """This process's log lines as JSON (configure_logging with log_json), restored after."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    configure_logging(settings.model_copy(update={"log_json": True}))
    stream = io.StringIO()
    root.handlers[0].setStream(stream)
    yield stream
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)


@pytest.fixture
def spans(settings):
    exporter = InMemorySpanExporter()
    tracing.setup_tracing(settings, "tokenforge-test", exporter=exporter)
    yield exporter
    tracing.stop_tracing()


def _trace_id(span: ReadableSpan) -> str:
    return format(span.context.trace_id, "032x")


async def test_request_id_and_trace_follow_a_launch_into_the_worker(settings, spans, json_logs):
    body = {"chain": "ethereum", "name": "Traced", "symbol": "TRC", "supply": "1000000", "creator": CREATOR}
    async with running_stack(settings, {"ethereum": _LoggingDeployer(pending_checks=1)}) as (container, client):
        resp = await client.post("/v1/tokens", json=body, headers={"X-Request-ID": REQUEST_ID})
        assert resp.status_code == 202, resp.text
        assert resp.headers["x-request-id"] == REQUEST_ID
        job_id = resp.json()["job"]["id"]
        assert (await wait_final(client, job_id))["status"] == "confirmed"
        async with container.sessions() as session:
            rows = (await session.execute(select(OutboxRow).where(OutboxRow.job_id == job_id))).scalars().all()

    # the request id travels on every message of the job, the first one written by the API
    assert rows and all(row.headers.get("x-request-id") == REQUEST_ID for row in rows)

    # ...and is on the worker's log lines, with the job id
    lines = [json.loads(line) for line in json_logs.getvalue().splitlines() if line.startswith("{")]
    signing = [line for line in lines if line["event"] == "signing launch"]
    assert signing and signing[0]["request_id"] == REQUEST_ID and signing[0]["job_id"] == job_id

    finished = spans.get_finished_spans()
    server = [s for s in finished if s.name == "POST /v1/tokens"]
    published = [s for s in finished if s.name == "publish jobs.launch.ethereum"]
    processed = [s for s in finished if s.name == "process jobs.launch.ethereum"]
    assert server and published and processed, [s.name for s in finished]
    trace_id = _trace_id(server[0])
    assert {_trace_id(s) for s in published + processed} == {trace_id}
    # the first message's publish span is a child of the API request, its delivery of the publish
    first_publish = min(published, key=lambda s: s.start_time)
    assert first_publish.parent.span_id == server[0].context.span_id
    first_process = min(processed, key=lambda s: s.start_time)
    assert first_process.parent.span_id == first_publish.context.span_id
    assert signing[0]["trace_id"] == trace_id  # log lines name the trace they belong to


EXPORTING = textwrap.dedent("""
    import sys
    from pathlib import Path
    from tokenforge.config import Settings
    from tokenforge.observability import tracing

    settings = Settings(data_dir=Path(sys.argv[1]), otel_exporter=sys.argv[2])
    assert tracing.setup_tracing(settings, "tokenforge-worker")
    with tracing.span("process jobs.launch.solana", kind="consumer"):
        pass
    tracing.stop_tracing()
""")


class _Collector(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, bytes]]] = []

    def do_POST(self):
        length = int(self.headers["Content-Length"])
        type(self).received.append((self.path, self.rfile.read(length)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *_args):
        pass


def _export(tmp_path, exporter: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("TOKENFORGE_", "OTEL_"))}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", EXPORTING, str(tmp_path), exporter],
        capture_output=True,
        text=True,
        timeout=60,
        env=full_env,
    )


def test_the_otlp_exporter_sends_spans_over_http(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        done = _export(tmp_path, "otlp", OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
    assert done.returncode == 0, done.stderr[-2000:]
    (path, payload), *_ = _Collector.received
    assert path == "/v1/traces"
    assert b"process jobs.launch.solana" in payload and b"tokenforge-worker" in payload


def test_the_console_exporter_prints_spans(tmp_path):
    done = _export(tmp_path, "console")
    assert done.returncode == 0, done.stderr[-2000:]
    assert '"name": "process jobs.launch.solana"' in done.stdout
