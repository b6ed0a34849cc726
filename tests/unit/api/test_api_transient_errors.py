"""A database outage (or any transient error) on any route is a 503 problem with Retry-After.

The database layer raises ``TransientError(code=DB_UNAVAILABLE)`` when a session block
meets an outage. These tests make every session the API opens raise it, on entry, on the
first query or on leaving the block, and check what a client gets: never a 500, always a
problem+json 503 whose ``Retry-After`` is the error's hint rounded up (at least 1 s).
"""

from __future__ import annotations

from contextlib import asynccontextmanager

import httpx
import pytest
from tests.support.bodies import fakes, launch_body
from tests.support.stack import running_stack

from tokenforge.api.app import create_app
from tokenforge.api.deps import get_session
from tokenforge.api.problems import retry_after_s
from tokenforge.errors import ErrorCode, TransientError

PROBLEM_JSON = "application/problem+json"


def outage(retry_after: float | None = 2.0) -> TransientError:
    return TransientError(
        "the database is unavailable (OperationalError)", code=ErrorCode.DB_UNAVAILABLE, retry_after_s=retry_after
    )


class FailingSession:
    """A session whose first query raises the outage."""

    def __init__(self, error: TransientError) -> None:
        self.error = error

    async def execute(self, *args, **kwargs):
        raise self.error

    async def get(self, *args, **kwargs):
        raise self.error

    async def scalar(self, *args, **kwargs):
        raise self.error

    async def scalars(self, *args, **kwargs):
        raise self.error


def failing_sessions(error: TransientError, where: str):
    """A stand-in for ``container.sessions`` failing on entry, on first query or on exit."""

    @asynccontextmanager
    async def sessions():
        if where == "enter":
            raise error
        if where == "query":
            yield FailingSession(error)
            return
        try:
            yield _Quiet()
        finally:
            raise error  # leaving the block (commit, rollback, close) meets the outage

    return sessions


class _Quiet:
    """A session that finds nothing (for failures on leaving the block)."""

    async def get(self, *args, **kwargs):
        return None

    async def execute(self, *args, **kwargs):
        class _Empty:
            def scalars(self):
                return self

            def all(self):
                return []

            def scalar_one_or_none(self):
                return None

            def first(self):
                return None

        return _Empty()

    async def scalar(self, *args, **kwargs):
        return None


@asynccontextmanager
async def api_with_broken_database(settings, error: TransientError, where: str):
    async with running_stack(settings, fakes(), start=False) as (container, plain):
        job_id = None
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(container=container)),
            base_url="http://tokenforge.test",
            headers=plain.headers,
        ) as healthy:
            accepted = await healthy.post("/v1/tokens", json=launch_body())
            assert accepted.status_code == 202, accepted.text
            job_id = accepted.json()["job"]["id"]
        app = create_app(container=container)
        real_sessions = container.sessions
        container.sessions = failing_sessions(error, where)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://tokenforge.test") as client:
                yield client, job_id, accepted.json()["token"]["id"]
        finally:
            container.sessions = real_sessions


def assert_unavailable(resp: httpx.Response, retry_after: str) -> None:
    assert resp.status_code == 503, resp.text
    assert resp.headers["content-type"].split(";")[0] == PROBLEM_JSON
    assert resp.headers["retry-after"] == retry_after
    problem = resp.json()
    assert problem["status"] == 503
    assert problem["type"] == "/problems/db-unavailable"
    assert problem["instance"] == resp.request.url.path


@pytest.mark.parametrize("where", ["enter", "query", "exit"])
async def test_every_database_route_answers_503_with_retry_after(settings, where):
    async with api_with_broken_database(settings, outage(2.0), where) as (client, job_id, token_id):
        paths = [f"/v1/tokens/{token_id}", f"/v1/jobs/{job_id}", f"/v1/jobs/{job_id}/events"]
        if where != "exit":
            # a list whose rows were read before the session's exit failed is answered with
            # them: the failure is then only logged (the detail and job reads find nothing
            # in this stand-in and fail inside the block, which the exit failure replaces)
            paths.insert(0, "/v1/tokens")
        for path in paths:
            assert_unavailable(await client.get(path), "2")


@pytest.mark.parametrize(
    ("hint", "header"), [(None, "1"), (0.0, "1"), (0.2, "1"), (1.0, "1"), (2.1, "3"), (30.0, "30")]
)
async def test_retry_after_is_the_hint_rounded_up_and_at_least_one_second(settings, hint, header):
    async with api_with_broken_database(settings, outage(hint), "query") as (client, _, _):
        assert_unavailable(await client.get("/v1/tokens"), header)


async def test_a_launch_during_an_outage_is_a_503_not_a_500(settings, monkeypatch):
    from tokenforge.api.routes import tokens

    async def accept_launch(*args, **kwargs):
        raise outage(5.0)

    monkeypatch.setattr(tokens, "accept_launch", accept_launch)
    async with running_stack(settings, fakes(), start=False) as (container, plain):
        transport = httpx.ASGITransport(app=create_app(container=container), raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://tokenforge.test", headers=plain.headers
        ) as client:
            assert_unavailable(await client.post("/v1/tokens", json=launch_body()), "5")


async def test_a_request_session_failing_after_the_route_is_a_503(settings):
    """The request-scoped session dependency itself raising (as the store does when
    leaving the block during an outage) is answered the same way."""

    async def broken_session():
        yield FailingSession(outage(1.5))

    async with running_stack(settings, fakes(), start=False) as (container, _):
        app = create_app(container=container)
        app.dependency_overrides[get_session] = broken_session
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://tokenforge.test") as client:
            assert_unavailable(await client.get("/v1/tokens"), "2")
            assert_unavailable(await client.get("/v1/tokens/abc"), "2")
            assert_unavailable(await client.get("/v1/jobs/abc"), "2")


def test_retry_after_ignores_hints_that_are_not_finite_numbers():
    for hint in (float("nan"), float("inf"), "3", True):
        error = TransientError("x", code=ErrorCode.DB_UNAVAILABLE)
        error.retry_after_s = hint
        assert retry_after_s(error) == 1


async def test_the_documented_503_states_retry_after():
    operation = create_app().openapi()["paths"]["/v1/tokens"]["get"]
    assert operation["responses"]["503"]["headers"]["Retry-After"]["schema"] == {"type": "integer", "minimum": 1}


async def test_an_outage_during_an_event_stream_ends_it_with_a_retry_hint(settings):
    """Once the stream has started no status can change: the client is told when to
    reconnect (SSE ``retry:``, milliseconds) and resumes with Last-Event-ID."""
    async with running_stack(settings, fakes(), start=False) as (container, plain):
        job_id = (await plain.post("/v1/tokens", json=launch_body())).json()["job"]["id"]  # stays queued
        real_sessions, calls = container.sessions, 0

        def sessions_failing_from_the_third():
            nonlocal calls
            calls += 1  # 1: the job lookup, 2: the first read of events, 3: the next read
            return real_sessions() if calls < 3 else failing_sessions(outage(2.0), "enter")()

        container.sessions = sessions_failing_from_the_third
        try:
            resp = await plain.get(f"/v1/jobs/{job_id}/events")
        finally:
            container.sessions = real_sessions
        assert resp.status_code == 200
        assert resp.text.count("event: status") == 1
        assert resp.text.endswith("retry: 2000\n\n")
