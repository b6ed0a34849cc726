"""Property-based API testing from the app's own OpenAPI document.

Every operation except the SSE stream (an endless response for unfinished jobs) gets
generated requests, valid and invalid. Each answer must not be a 5xx, must use a
documented status code and media type, must match the documented schema, and a request
the document calls invalid must be refused.

``positive_data_acceptance`` is not asserted: JSON Schema cannot say "an EIP-55 address
on EVM chains, a base58 key on Solana" or "a cursor this API returned", so a
schema-valid request may rightly get the documented 422.

The app runs over a container with fake deployers; its worker and relay are not started,
so an answer depends only on the request and on rows earlier requests made. Generation is
derandomized.

Defects the run once found are kept as plain reproducible requests at the bottom.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi as schemathesis_asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.fake_deployer import FakeDeployer
from tokenforge.api.app import create_app
from tokenforge.bootstrap import build_container
from tokenforge.chains.registry import DeployerRegistry
from tokenforge.config import Settings

SSE_PATH = "/v1/jobs/{job_id}/events"
PROBLEM_JSON = "application/problem+json"

CHECKS = [
    not_a_server_error,  # no input can produce a 5xx
    status_code_conformance,  # only documented status codes
    content_type_conformance,  # only documented media types
    response_headers_conformance,
    response_schema_conformance,  # bodies match the documented schemas
    negative_data_rejection,  # requests the document calls invalid are refused
]


class AppWithFakeChains:
    """The TokenForge app over a container with fake deployers.

    The container is built on the first request that needs it, inside the event loop that
    serves the requests (schemathesis runs ASGI apps in its own loop thread), and closed
    at lifespan shutdown. Neither the worker nor the relay is started.
    """

    def __init__(self) -> None:
        self.app = create_app()
        self.container = None
        self.data_dir: Path | None = None
        self._lock: asyncio.Lock | None = None

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if self.container is None and scope["path"] != "/openapi.json":
            self._lock = self._lock or asyncio.Lock()
            async with self._lock:
                if self.container is None:
                    await self._build()
        await self.app(scope, receive, send)

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _build(self) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix="tokenforge-schemathesis-"))
        deployers = {"ethereum": FakeDeployer(), "solana": FakeDeployer("solana")}

        async def ready(deployer):
            return deployer

        registry = DeployerRegistry({name: (lambda d=d: ready(d)) for name, d in deployers.items()})
        app_settings = Settings(data_dir=self.data_dir / "data")
        self.container = await build_container(app_settings, deployers=registry)
        self.app.state.container = self.container

    async def _close(self) -> None:
        if self.container is not None:
            await self.container.close()
            self.container = None
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None


APP = AppWithFakeChains()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP).exclude(path=SSE_PATH)


@pytest.fixture(scope="module", autouse=True)
def _close_app_after_module():
    yield
    schemathesis_asgi.shutdown_lifespans()


@schema.parametrize()
@settings(max_examples=50, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document(case):
    response = case.call()
    case.validate_response(response, checks=CHECKS)


def test_the_sse_stream_is_the_only_operation_left_out():
    every = schemathesis.openapi.from_dict(schema.raw_schema).get_all_operations()
    tested = schema.get_all_operations()
    label = lambda op: (op.ok().method.upper(), op.ok().path)  # noqa: E731
    assert {label(op) for op in every} - {label(op) for op in tested} == {("GET", SSE_PATH)}


# --- defects the run above once found, as plain reproducible requests --------------------

DOCUMENTED_METHODS = {
    path: {method.upper() for method in item if method in {"get", "post", "put", "patch", "delete"}}
    for path, item in schema.raw_schema["paths"].items()
}


async def _request(method: str, path: str, **kwargs) -> httpx.Response:
    """One request to a fresh app over fakes, on the test's own event loop."""
    app = AppWithFakeChains()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://tokenforge.test") as client:
            return await client.request(method, path, **kwargs)
    finally:
        await app._close()


@pytest.mark.parametrize(
    ("path", "concrete"),
    [
        pytest.param(
            "/v1/tokens",
            "/v1/tokens",
        ),
        ("/v1/tokens/{token_id}", "/v1/tokens/abc"),
        ("/v1/jobs/{job_id}", "/v1/jobs/abc"),
        ("/healthz", "/healthz"),
    ],
)
@pytest.mark.parametrize("method", ["OPTIONS", "PUT", "DELETE"])
async def test_an_unsupported_method_gets_405_listing_the_allowed_ones(path, concrete, method):
    resp = await _request(method, concrete)
    assert resp.status_code == 405
    assert resp.headers["content-type"].startswith(PROBLEM_JSON)
    assert {m.strip() for m in resp.headers["allow"].split(",")} == DOCUMENTED_METHODS[path]


@pytest.mark.parametrize("raw", [b"\x80", b'{"name": "\xff"}'])
async def test_a_body_that_is_not_utf8_is_a_documented_422_naming_the_body(raw):
    resp = await _request("POST", "/v1/tokens", content=raw, headers={"content-type": "application/json"})
    assert resp.status_code == 422, resp.text
    assert [e["field"] for e in resp.json()["errors"]] == ["body"]


async def test_boolean_decimals_violating_the_document_is_refused():
    body = {
        "chain": "solana",
        "creator": "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin",
        "decimals": False,
        "name": "Forge Coin",
        "supply": "1000000000",
        "symbol": "FORGE",
    }
    resp = await _request("POST", "/v1/tokens", json=body)
    assert resp.status_code == 422, resp.text


def test_problem_responses_are_documented_as_problem_json_with_their_schema():
    for path, item in schema.raw_schema["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    content = response["content"]
                    assert set(content) == {PROBLEM_JSON}, (method, path, status, set(content))
                    assert content[PROBLEM_JSON]["schema"] == {"$ref": "#/components/schemas/Problem"}
