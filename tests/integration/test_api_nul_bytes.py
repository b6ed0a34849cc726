"""A NUL byte (which PostgreSQL refuses in text) anywhere a client names something gets a
clear answer, never a 500: ids are not found, filters and cursors are refused by field."""

from __future__ import annotations

import base64

import pytest

from tests.support.fake_deployer import FakeDeployer
from tests.support.stack import running_stack

pytestmark = pytest.mark.integration

#: The stack's client carries an operator key already (tests/support/stack.py).
OPS: dict[str, str] = {}


async def test_nul_bytes_are_answered_without_a_server_error(any_db_settings):
    cursor = base64.urlsafe_b64encode(b"2026-01-01T00:00:00+00:00|ab\x00cd").decode().rstrip("=")
    async with running_stack(any_db_settings, {"ethereum": FakeDeployer()}, start=False) as (_, client):
        for method, url, params, expected in (
            ("GET", "/v1/tokens/ab%00cd", None, 404),
            ("GET", "/v1/jobs/ab%00cd", None, 404),
            ("GET", "/v1/jobs/ab%00cd/events", None, 404),
            ("POST", "/v1/ops/jobs/ab%00cd/retry", None, 404),
            ("GET", "/v1/ops/dead-letters", {"cursor": cursor}, 422),
            ("GET", "/v1/tokens", {"creator": "ab\x00cd"}, None),
            ("GET", "/v1/tokens", {"cursor": "ab\x00cd"}, None),
        ):
            resp = await client.request(method, url, params=params, headers=OPS)
            assert resp.status_code < 500, (url, params, resp.status_code, resp.text)
            if expected is not None:
                assert resp.status_code == expected, (url, resp.text)
            assert resp.headers["content-type"].startswith(("application/problem+json", "application/json"))
