"""Every answer carries the security headers; the launch page's policy allows exactly what
the page uses; CORS answers only the configured origins (``api/security.py``)."""

from __future__ import annotations

import base64
import hashlib
import re
from importlib import resources

import httpx
import pytest

from tokenforge.api.app import create_app
from tokenforge.config import Settings

APP_ORIGIN = "https://app.example"
FOREIGN = "https://evil.example"
TESTNET = {"ethereum": {"network": "testnet", "endpoints": ["https://rpc.example/"]}}


def _client(**overrides) -> httpx.AsyncClient:
    settings = Settings(data_dir="/nonexistent-unused", **overrides)
    transport = httpx.ASGITransport(app=create_app(settings), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://tokenforge.test")


def _policy(resp: httpx.Response) -> dict[str, list[str]]:
    directives = [d.split() for d in resp.headers["content-security-policy"].split(";") if d.strip()]
    return {d[0]: d[1:] for d in directives}


def _sha256(block: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(block.encode()).digest()).decode() + "'"


@pytest.mark.parametrize("path", ["/", "/openapi.json", "/v1/no-such-route", "/docs"])
async def test_every_answer_carries_the_security_headers(path):
    async with _client() as client:
        resp = await client.get(path)
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["referrer-policy"] == "no-referrer"
    assert resp.headers["x-frame-options"] == "DENY"
    assert _policy(resp)["frame-ancestors"] == ["'none'"]
    assert "strict-transport-security" not in resp.headers  # public_url is http here


async def test_api_answers_may_load_nothing():
    async with _client() as client:
        resp = await client.get("/openapi.json")
        missing = await client.get("/v1/no-such-route")
    assert _policy(resp) == {"default-src": ["'none'"], "frame-ancestors": ["'none'"]}
    assert missing.status_code == 404 and _policy(missing)["default-src"] == ["'none'"]


async def test_the_launch_page_policy_allows_its_own_inline_blocks_by_hash_and_nothing_inline_else():
    page = resources.files("tokenforge.api").joinpath("static/index.html").read_text(encoding="utf-8")
    scripts = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", page, re.DOTALL)
    styles = re.findall(r"<style[^>]*>(.*?)</style>", page, re.DOTALL)
    async with _client() as client:
        resp = await client.get("/")
    policy = _policy(resp)
    assert resp.status_code == 200 and resp.text == page
    assert policy["default-src"] == ["'none'"]
    assert policy["script-src"] == ["'self'", *sorted({_sha256(s) for s in scripts})]
    assert policy["style-src"] == ["'self'", *sorted({_sha256(s) for s in styles})]
    assert policy["connect-src"] == ["'self'"]  # fetch and EventSource to this API only
    assert "'unsafe-inline'" not in policy["script-src"] + policy["style-src"]
    assert "'unsafe-eval'" not in policy["script-src"]
    assert policy["base-uri"] == ["'none'"] and policy["form-action"] == ["'self'"]


async def test_the_docs_pages_allow_their_cdn_on_local_networks_only():
    async with _client() as client:
        docs = await client.get("/docs")
        redoc = await client.get("/redoc")
    inline = re.findall(r"<script>(.*?)</script>", docs.text, re.DOTALL)
    assert docs.status_code == 200 and inline
    assert _policy(docs)["script-src"] == ["'self'", "https://cdn.jsdelivr.net", *sorted({_sha256(s) for s in inline})]
    assert redoc.status_code == 200 and "https://cdn.jsdelivr.net" in _policy(redoc)["script-src"]
    async with _client(chains=TESTNET, public_url="https://forge.example") as client:
        for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
            resp = await client.get(path)
            assert resp.status_code == 404, path
            assert resp.headers["content-type"].startswith("application/problem+json")
            assert "cdn.jsdelivr.net" not in resp.text
        assert (await client.get("/openapi.json")).status_code == 200


async def test_https_deployments_send_hsts():
    async with _client(public_url="https://forge.example") as client:
        resp = await client.get("/openapi.json")
    assert resp.headers["strict-transport-security"].startswith("max-age=")
    assert int(resp.headers["strict-transport-security"].split("=")[1]) >= 31_536_000


async def test_a_configured_origin_may_make_credentialed_calls():
    async with _client(cors_origins=[APP_ORIGIN + "/"]) as client:
        resp = await client.get("/openapi.json", headers={"Origin": APP_ORIGIN})
        pre = await client.options(
            "/v1/tokens",
            headers={
                "Origin": APP_ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
            },
        )
    assert resp.headers["access-control-allow-origin"] == APP_ORIGIN
    assert resp.headers["access-control-allow-credentials"] == "true"
    assert "Origin" in resp.headers["vary"]
    assert pre.status_code == 204
    assert pre.headers["access-control-allow-origin"] == APP_ORIGIN
    assert "POST" in pre.headers["access-control-allow-methods"]
    assert "authorization" in pre.headers["access-control-allow-headers"]


@pytest.mark.parametrize("configured", [[], [APP_ORIGIN]])
async def test_a_foreign_origin_gets_no_access_control_allow_origin(configured):
    async with _client(cors_origins=configured) as client:
        resp = await client.get("/openapi.json", headers={"Origin": FOREIGN})
        pre = await client.options("/v1/tokens", headers={"Origin": FOREIGN, "Access-Control-Request-Method": "POST"})
    assert resp.status_code == 200 and "access-control-allow-origin" not in resp.headers
    assert "access-control-allow-credentials" not in resp.headers
    assert pre.status_code == 403 and "access-control-allow-origin" not in pre.headers
    assert pre.headers["content-type"].startswith("application/problem+json")
    assert FOREIGN in pre.json()["detail"]


async def test_a_preflight_asking_for_an_unlisted_header_is_refused():
    async with _client(cors_origins=[APP_ORIGIN]) as client:
        pre = await client.options(
            "/v1/tokens",
            headers={
                "Origin": APP_ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "x-evil",
            },
        )
    assert pre.status_code == 403 and "x-evil" in pre.json()["detail"]


@pytest.mark.parametrize("origin", ["*", "https://app.example/path", "app.example"])
def test_wildcards_and_non_origins_are_refused_in_settings(origin):
    with pytest.raises(ValueError, match="cors_origins"):
        Settings(cors_origins=[origin])
