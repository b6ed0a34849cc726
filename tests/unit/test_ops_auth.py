"""The operator endpoints' bearer token: disabled without it, refused without the right one."""

from __future__ import annotations

from types import SimpleNamespace

import httpx
import pytest
from fastapi import Depends, FastAPI

from tokenforge.api import problems
from tokenforge.api.routes.ops import DISABLED, require_operator
from tokenforge.config import Settings


def app_with(ops_token: str | None) -> FastAPI:
    app = FastAPI()
    problems.install(app)
    app.state.container = SimpleNamespace(settings=Settings(ops_token=ops_token))

    @app.get("/v1/ops/probe", dependencies=[Depends(require_operator)])
    async def probe() -> dict:
        return {"ok": True}

    return app


async def get(app: FastAPI, headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ops.test") as client:
        return await client.get("/v1/ops/probe", headers=headers)


@pytest.mark.parametrize("token", [None, ""])
async def test_without_a_configured_token_the_endpoints_are_disabled(token):
    resp = await get(app_with(token), {"Authorization": "Bearer anything"})
    assert resp.status_code == 403
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["detail"] == DISABLED and resp.json()["title"] == "Forbidden"


@pytest.mark.parametrize(
    "headers",
    [None, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic czNjcjN0"}, {"Authorization": "Bearer s3cr3t2"}],
)
async def test_a_missing_or_wrong_token_is_refused_with_a_challenge(headers):
    resp = await get(app_with("s3cr3t"), headers)
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"].startswith("Bearer")
    assert resp.json()["title"] == "Unauthorized"
    assert "s3cr3t" not in resp.text


async def test_the_right_token_is_let_through():
    resp = await get(app_with("s3cr3t"), {"Authorization": "Bearer s3cr3t"})
    assert resp.status_code == 200 and resp.json() == {"ok": True}


def test_the_token_is_read_from_the_environment_and_never_shown(monkeypatch):
    monkeypatch.setenv("TOKENFORGE_OPS_TOKEN", "from-env")
    settings = Settings()
    assert settings.ops_token is not None and settings.ops_token.get_secret_value() == "from-env"
    assert "from-env" not in repr(settings)
