"""Hostile single requests against the app in-process: each gets a documented problem
answer, never a 500 or a broken response (the real-server versions, with memory and
process checks, are in ``test_api_request_limits.py``)."""

from __future__ import annotations

from contextlib import asynccontextmanager

import httpx
import pytest

from tests.support.bodies import fakes, launch_body
from tests.support.stack import running_stack, wait_final
from tokenforge.api.app import create_app

PROBLEM_JSON = "application/problem+json"
JSON = {"content-type": "application/json"}


@asynccontextmanager
async def client_for(settings, *, start: bool = False):
    async with running_stack(settings, fakes(), start=start) as (container, plain):
        transport = httpx.ASGITransport(app=create_app(container=container), raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://tokenforge.test", headers=plain.headers
        ) as client:
            yield client, plain


def problem(resp: httpx.Response, status: int) -> dict:
    assert resp.status_code == status, resp.text[:300]
    assert resp.headers["content-type"].split(";")[0] == PROBLEM_JSON
    return resp.json()


async def test_json_nested_deeper_than_32_is_refused_naming_the_body(settings):
    async with client_for(settings) as (client, _):
        body = problem(await client.post("/v1/tokens", content=b"[" * 33 + b"]" * 33, headers=JSON), 422)
        assert body["type"] == "/problems/body-too-deep"
        assert body["errors"] == [{"field": "body", "message": "nests deeper than 32 levels"}]
        flat = await client.post("/v1/tokens", content=b"[" * 32 + b"]" * 32, headers=JSON)
        assert problem(flat, 422)["type"] == "/problems/invalid-parameter"  # parsed, then refused as not an object


@pytest.mark.parametrize("content_type", [None, "application/json; charset=utf-8", "application/merge-patch+json"])
async def test_every_content_type_parsed_as_json_is_depth_checked(settings, content_type):
    async with client_for(settings) as (client, _):
        headers = {"content-type": content_type} if content_type else {}
        resp = await client.post("/v1/tokens", content=b"[" * 10_000, headers=headers)
        assert problem(resp, 422)["type"] == "/problems/body-too-deep"


async def test_a_body_over_the_limit_is_413(settings):
    settings.max_body_bytes = 4096
    async with client_for(settings) as (client, _):
        resp = await client.post("/v1/tokens", json=launch_body(description="x" * 5000))
        body = problem(resp, 413)
        assert body["type"] == "/problems/body-too-large" and body["instance"] == "/v1/tokens"
        assert resp.headers["connection"] == "close"
        ok = await client.post("/v1/tokens", json=launch_body(description="x" * 900))
        assert ok.status_code == 202, ok.text


async def test_a_number_with_thousands_of_digits_is_a_422_naming_the_body(settings):
    async with client_for(settings) as (client, _):
        resp = await client.post("/v1/tokens", content=b'{"supply": ' + b"9" * 5000 + b"}", headers=JSON)
        assert [e["field"] for e in problem(resp, 422)["errors"]] == ["body"]


async def test_thousands_of_unknown_fields_are_one_422(settings):
    async with client_for(settings) as (client, _):
        body = launch_body() | {f"k{i}": i for i in range(5000)}
        resp = await client.post("/v1/tokens", json=body)
        assert problem(resp, 422)["errors"]


async def test_thousands_of_query_parameters_are_ignored(settings):
    async with client_for(settings) as (client, _):
        resp = await client.get("/v1/tokens?" + "&".join(f"p{i}=1" for i in range(5000)))
        assert resp.status_code == 200 and resp.json() == {"items": [], "next_cursor": None}


async def test_a_last_event_id_past_any_stored_id_ends_the_stream_cleanly(settings):
    async with client_for(settings, start=True) as (_, plain):
        job_id = (await plain.post("/v1/tokens", json=launch_body())).json()["job"]["id"]
        await wait_final(plain, job_id)
        # the plain client raises what the app raises, even after the response has started
        resp = await plain.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": "9" * 20})
        assert resp.status_code == 200
        assert "id:" not in resp.text  # nothing after an id that large


async def test_an_event_stream_for_an_unknown_job_is_a_404_problem(settings):
    async with client_for(settings) as (client, _):
        for job_id in ("nope", "x" * 300):
            resp = await client.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": "5"})
            assert problem(resp, 404)["type"] == "/problems/not-found"
