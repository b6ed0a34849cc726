"""Property-based API testing from the app's own OpenAPI document, three ways.

Every operation except the SSE streams (endless responses: a job's events until it is
final, the market's for ever) gets generated requests, valid and invalid, sent as each of
three callers:

* **anonymous** (no credential, or whatever bearer token the generator makes up): no
  operation the document secures answers 2xx, and so no write does, except the sign-in
  operations the document declares public;
* **operator** (an operator API key);
* **another creator** (a creator API key of wallet B, while creator A owns a webhook):
  no answer contains anything of A's (its webhook's id and URL, its API key), and no
  operator endpoint (``/v1/ops/…``) answers 2xx.

For all three, each answer must not be a 5xx, must use a documented status code and
media type, must match the documented schema, and a request the document calls invalid
must be refused. The operations come from the document, so routes added later are
exercised without changes here; the explicit cases below substitute A's ids into every
path that takes them.

``positive_data_acceptance`` is not asserted: JSON Schema cannot say "an EIP-55 address
on EVM chains, a base58 key on Solana" or "a cursor this API returned", so a
schema-valid request may rightly get the documented 422.

The app runs over a container with fake deployers and rate limits off; its worker and
relay are not started, so an answer depends only on the request and on rows earlier
requests made. Generation is derandomized.

Defects the run once found are kept as plain reproducible requests at the bottom.
"""

from __future__ import annotations

import asyncio
import re
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

from tests.support.auth import bearer, issue_key
from tests.support.fake_deployer import FakeDeployer
from tokenforge.api.app import create_app
from tokenforge.auth.principal import Role
from tokenforge.bootstrap import build_container
from tokenforge.chains.registry import DeployerRegistry
from tokenforge.config import Settings

SSE_PATHS = ["/v1/jobs/{job_id}/events", "/v1/stream", "/v1/tokens/{token_id}/trades/stream"]
PROBLEM_JSON = "application/problem+json"
WRITES = {"POST", "PUT", "PATCH", "DELETE"}
WALLET_A = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
WALLET_B = "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359"
HOOK_OF_A = "http://127.0.0.1:9/hook-of-creator-a"
#: Header the test sets to pick a caller; the app wrapper swaps it for that caller's key.
AS = "x-test-as"
#: Examples per operation and caller (three callers: keep CI on 2 cores within a few minutes).
EXAMPLES = 25

CHECKS = [
    not_a_server_error,  # no input can produce a 5xx
    status_code_conformance,  # only documented status codes
    content_type_conformance,  # only documented media types
    response_headers_conformance,
    response_schema_conformance,  # bodies match the documented schemas
    negative_data_rejection,  # requests the document calls invalid are refused
]


class AppWithFakeChains:
    """The TokenForge app over a container with fake deployers, rate limits off.

    The container is built on the first request that needs it, inside the event loop that
    serves the requests (schemathesis runs ASGI apps in its own loop thread), and closed
    at lifespan shutdown. Neither the worker nor the relay is started. Building it issues
    an operator key and creator keys of wallets A and B (``keys``), and registers a
    webhook of A (``hook_of_a``). A request with an ``x-test-as: <caller>`` header is sent
    with that caller's key instead.
    """

    def __init__(self) -> None:
        self.app = create_app(Settings(rate_limits_enabled=False))  # the middleware's settings
        self.container = None
        self.data_dir: Path | None = None
        self.keys: dict[str, str] = {}
        self.hook_of_a: dict = {}
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
        if scope["type"] == "http":
            scope = self._as_caller(scope)
        await self.app(scope, receive, send)

    def _as_caller(self, scope):
        who = next((v.decode() for k, v in scope["headers"] if k == AS.encode()), None)
        if who is None:
            return scope
        headers = [(k, v) for k, v in scope["headers"] if k not in (AS.encode(), b"authorization")]
        if who != "anonymous":
            headers.append((b"authorization", f"Bearer {self.keys[who]}".encode()))
        return {**scope, "headers": headers}

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
        app_settings = Settings(
            data_dir=self.data_dir / "data", rate_limits_enabled=False, outbound_allowed_networks=["127.0.0.0/8"]
        )
        self.container = await build_container(app_settings, deployers=registry)
        self.app.state.container = self.container
        sessions = self.container.sessions
        self.keys = {
            "operator": await issue_key(sessions, Role.OPERATOR),
            "creator_a": await issue_key(sessions, Role.CREATOR, wallet=WALLET_A),
            "creator_b": await issue_key(sessions, Role.CREATOR, wallet=WALLET_B),
        }
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tokenforge.test") as client:
            resp = await client.post("/v1/webhooks", json={"url": HOOK_OF_A}, headers=bearer(self.keys["creator_a"]))
        assert resp.status_code == 201, resp.text
        self.hook_of_a = resp.json()

    def private_to_a(self) -> list[str]:
        """Strings only creator A (and operators) may ever see."""
        key_a = self.keys["creator_a"]
        return [self.hook_of_a["id"], self.hook_of_a["secret"], HOOK_OF_A, key_a, key_a.rsplit("_", 1)[0]]

    async def _close(self) -> None:
        if self.container is not None:
            await self.container.close()
            self.container = None
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None


APP = AppWithFakeChains()
#: For callers with a key: the key goes in every request, so the generator neither makes up
#: Authorization headers nor expects a request without one to be refused.
schema = schemathesis.openapi.from_asgi("/openapi.json", APP).exclude(path=SSE_PATHS)
schema.config.generation.update(with_security_parameters=False)
#: For anonymous callers: made-up and missing Authorization headers, all to be refused.
anonymous_schema = schemathesis.openapi.from_asgi("/openapi.json", APP).exclude(path=SSE_PATHS)
for _s in (schema, anonymous_schema):
    # a body over the size limit is refused before it is read (413, documented problem):
    # for generated invalid data (e.g. a string far beyond maxLength) that is a refusal too
    _rejection = _s.config.checks.negative_data_rejection
    _rejection.expected_statuses = [*_rejection.expected_statuses, "413"]
OPERATIONS = {
    (method.upper(), path): operation
    for path, item in schema.raw_schema["paths"].items()
    for method, operation in item.items()
    if method in {"get", "post", "put", "patch", "delete"}
}
SECURED = {label for label, operation in OPERATIONS.items() if operation.get("security")}
#: Writes anyone may make: the steps of signing in, and building an unsigned trade (a POST
#: that stores nothing: the trader's wallet signs it).
PUBLIC_WRITES = {
    ("POST", "/v1/auth/nonce"),
    ("POST", "/v1/auth/siwe"),
    ("POST", "/v1/auth/siws"),
    ("POST", "/v1/tokens/{token_id}/trades/build"),
}


@pytest.fixture(scope="module", autouse=True)
def _close_app_after_module():
    yield
    schemathesis_asgi.shutdown_lifespans()


HYPOTHESIS = settings(
    max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)


def _call(case, who: str):
    response = case.call(headers={AS: who})
    case.validate_response(response, checks=CHECKS)
    return (case.operation.method.upper(), case.operation.path), response


@schema.parametrize()
@HYPOTHESIS
def test_api_conforms_to_its_openapi_document_for_an_operator(case):
    _call(case, "operator")


@anonymous_schema.parametrize()
@HYPOTHESIS
def test_without_credentials_nothing_secured_and_no_write_answers_2xx(case):
    label, response = _call(case, "anonymous")
    if label in SECURED or (label[0] in WRITES and label not in PUBLIC_WRITES):
        assert not 200 <= response.status_code < 300, (label, response.status_code, response.text[:300])


@schema.parametrize()
@HYPOTHESIS
def test_another_creator_never_sees_what_is_private_to_a_creator(case):
    label, response = _call(case, "creator_b")
    leaked = [s for s in APP.private_to_a() if s in response.text]
    assert not leaked, (label, leaked)
    if label[1].startswith("/v1/ops/"):
        assert not 200 <= response.status_code < 300, (label, response.status_code)


def test_the_sse_streams_are_the_only_operations_left_out():
    every = schemathesis.openapi.from_dict(schema.raw_schema).get_all_operations()
    tested = schema.get_all_operations()
    label = lambda op: (op.ok().method.upper(), op.ok().path)  # noqa: E731
    assert {label(op) for op in every} - {label(op) for op in tested} == {("GET", p) for p in SSE_PATHS}


def test_the_only_writes_open_to_anyone_are_the_sign_in_steps():
    open_writes = {label for label in OPERATIONS if label[0] in WRITES and label not in SECURED}
    assert open_writes == PUBLIC_WRITES


# --- another creator's ids, substituted into every path that takes them ----------------


@pytest.fixture
async def world():
    """A built app (keys, A's webhook) and a client to it."""
    app = AppWithFakeChains()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://tokenforge.test") as client:
            await client.get("/healthz")  # builds the container
            yield app, client
    finally:
        await app._close()


def _concrete(path: str, ids: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: ids.get(m.group(1), "0123456789abcdef"), path)


async def test_another_creator_cannot_touch_a_creators_webhook_by_its_id(world):
    app, client = world
    ids = {"webhook_id": app.hook_of_a["id"], "delivery_id": "0123456789abcdef"}
    with_ids = [label for label in OPERATIONS if "{webhook_id}" in label[1]]
    assert with_ids, "the document has webhook operations"
    for method, path in with_ids:
        resp = await client.request(method, _concrete(path, ids), headers={AS: "creator_b"})
        assert resp.status_code in (403, 404), (method, path, resp.status_code, resp.text)
        assert app.hook_of_a["secret"] not in resp.text and HOOK_OF_A not in resp.text
    mine = await client.get("/v1/webhooks", headers={AS: "creator_a"})
    theirs = await client.get("/v1/webhooks", headers={AS: "creator_b"})
    assert app.hook_of_a["id"] in mine.text, "A's webhook survived B's attempts"
    assert theirs.status_code == 200 and app.hook_of_a["id"] not in theirs.text


async def test_a_creator_gets_403_from_every_operator_endpoint(world):
    _app, client = world
    ops = [label for label in OPERATIONS if label[1].startswith("/v1/ops/")]
    assert ops
    for method, path in ops:
        resp = await client.request(method, _concrete(path, {}), headers={AS: "creator_b"}, json={})
        assert resp.status_code == 403, (method, path, resp.status_code, resp.text)


async def test_a_url_with_credentials_in_a_launch_is_a_422_naming_the_field(world):
    _app, client = world
    body = {"chain": "ethereum", "name": "Forge", "symbol": "F", "supply": "1", "creator": WALLET_A}
    for field in ("website", "image_url"):
        resp = await client.post(
            "/v1/tokens", json={**body, field: "https://forge:hunter2@example.org/"}, headers={AS: "operator"}
        )
        assert resp.status_code == 422, resp.text
        assert [e["field"] for e in resp.json()["errors"]] == [field]
        assert "hunter2" not in resp.text


# --- defects the run above once found, as plain reproducible requests --------------------

DOCUMENTED_METHODS = {
    path: {method.upper() for method in item if method in {"get", "post", "put", "patch", "delete"}}
    for path, item in schema.raw_schema["paths"].items()
}


async def _request(method: str, path: str, **kwargs) -> httpx.Response:
    """One request to a fresh app over fakes, on the test's own event loop, as an operator."""
    app = AppWithFakeChains()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    kwargs["headers"] = {AS: "operator", **kwargs.get("headers", {})}
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
