"""The API middleware: request ids, HTTP metrics by route template, streaming untouched."""

from __future__ import annotations

import asyncio

import httpx
import structlog
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from prometheus_client import REGISTRY

from tokenforge.api.middleware import ObservabilityMiddleware


def _app(seen: dict) -> FastAPI:
    app = FastAPI()
    app.add_middleware(ObservabilityMiddleware)

    @app.get("/items/{item_id}")
    async def item(item_id: str) -> dict:
        seen["request_id"] = structlog.contextvars.get_contextvars().get("request_id")
        return {"id": item_id}

    @app.get("/boom")
    async def boom() -> dict:
        raise RuntimeError("bug")

    return app


def _client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://t")


def _count(route: str, status: str, method: str = "GET") -> float:
    value = REGISTRY.get_sample_value(
        "tokenforge_http_requests_total", {"route": route, "method": method, "status": status}
    )
    return value or 0.0


async def test_a_sane_request_id_is_kept_bound_to_logs_and_returned():
    seen: dict = {}
    async with _client(_app(seen)) as client:
        resp = await client.get("/items/1", headers={"X-Request-ID": "abc-123_x.y"})
    assert resp.headers["x-request-id"] == "abc-123_x.y"
    assert seen["request_id"] == "abc-123_x.y"
    assert structlog.contextvars.get_contextvars().get("request_id") is None  # not leaked past the request


async def test_an_unusable_request_id_is_replaced():
    seen: dict = {}
    async with _client(_app(seen)) as client:
        for bad in ("has space", "x" * 65, "semi;colon", "<script>", ""):
            resp = await client.get("/items/1", headers={"X-Request-ID": bad})
            assert resp.headers["x-request-id"] != bad
            assert len(resp.headers["x-request-id"]) == 32
            assert seen["request_id"] == resp.headers["x-request-id"]
        resp = await client.get("/items/1")
        assert len(resp.headers["x-request-id"]) == 32


async def test_requests_are_counted_by_route_template_not_raw_path():
    before = _count("/items/{item_id}", "200")
    before_unmatched = _count("unmatched", "404")
    async with _client(_app({})) as client:
        for i in range(3):
            assert (await client.get(f"/items/{i}")).status_code == 200
        assert (await client.get("/no/such/path")).status_code == 404
    assert _count("/items/{item_id}", "200") == before + 3
    assert _count("unmatched", "404") == before_unmatched + 1
    routes = {sample.labels.get("route") for metric in REGISTRY.collect() for sample in metric.samples}
    assert not {"/items/0", "/items/1", "/no/such/path"} & routes
    assert (
        REGISTRY.get_sample_value(
            "tokenforge_http_request_duration_seconds_count", {"route": "/items/{item_id}", "method": "GET"}
        )
        >= 3
    )


async def test_an_unhandled_error_counts_as_500():
    before = _count("/boom", "500")
    async with _client(_app({})) as client:
        assert (await client.get("/boom")).status_code == 500
    assert _count("/boom", "500") == before + 1


async def test_a_streaming_response_passes_through_chunk_by_chunk():
    """The first chunk reaches the server while the stream is still open (an SSE stream
    must not be buffered by the middleware). Driven at the ASGI level: the test is the server."""
    release, done = asyncio.Event(), asyncio.Event()
    app = FastAPI()
    app.add_middleware(ObservabilityMiddleware)

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks():
            yield b"data: first\n\n"
            await release.wait()
            yield b"data: second\n\n"

        return StreamingResponse(chunks(), media_type="text/event-stream")

    sent: asyncio.Queue = asyncio.Queue()
    requested = False

    async def receive() -> dict:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/stream",
        "raw_path": b"/stream",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"t")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    serving = asyncio.create_task(app(scope, receive, sent.put))
    start = await asyncio.wait_for(sent.get(), 5)
    assert start["type"] == "http.response.start"
    assert dict(start["headers"])[b"x-request-id"]
    first = await asyncio.wait_for(sent.get(), 5)
    assert first["body"] == b"data: first\n\n" and first.get("more_body")
    release.set()
    second = await asyncio.wait_for(sent.get(), 5)
    assert second["body"] == b"data: second\n\n"
    done.set()
    await asyncio.wait_for(serving, 5)


async def test_unusual_methods_share_one_label_value():
    before = _count("unmatched", "404", method="_OTHER")
    async with _client(_app({})) as client:
        for method in ("BREW", "PROPFIND"):
            assert (await client.request(method, "/no/such/path")).status_code == 404
    assert _count("unmatched", "404", method="_OTHER") == before + 2
    methods = {sample.labels.get("method") for metric in REGISTRY.collect() for sample in metric.samples} - {None}
    assert not methods & {"BREW", "PROPFIND"}
