"""A small HTTP client for the TokenForge API (used by the CLI and the benchmark).

Writes carry a credential: :func:`api_client` sends ``Authorization: Bearer <key>`` on every
request when given an API key. A refused request raises :class:`ApiError` holding the
problem+json body; :meth:`ApiError.explain` says it in a line a person can act on.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import httpx
import orjson
from eth_account import Account
from solders.keypair import Keypair

FINAL_STATUSES = {"confirmed", "failed", "dead"}

#: How often :func:`create_token` waits out a ``429`` before giving up.
MAX_RATE_LIMIT_WAITS = 20

#: Where to get a credential, for messages about a missing one.
KEY_HINT = "pass --api-key or set TOKENFORGE_API_KEY (an operator makes one with `tokenforge api-keys create`)"


def throwaway_creator(chain: str) -> str:
    """A fresh address nobody keeps the key of (for demos when no --creator is given)."""
    if chain == "solana":
        return str(Keypair().pubkey())
    return Account.from_key(secrets.token_bytes(32)).address


def auth_headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def api_client(base_url: str, api_key: str | None, *, timeout_s: float = 30) -> httpx.AsyncClient:
    """A client of the API at ``base_url`` that sends ``api_key`` (if any) on every request."""
    return httpx.AsyncClient(base_url=base_url.rstrip("/"), headers=auth_headers(api_key), timeout=timeout_s)


class ApiError(Exception):
    def __init__(self, status: int, problem: dict) -> None:
        self.status = status
        self.problem = problem
        fields = ", ".join(f"{e['field']}: {e['message']}" for e in problem.get("errors") or [])
        super().__init__(f"HTTP {status}: {problem.get('title')}: {fields or problem.get('detail')}")

    @property
    def is_auth(self) -> bool:
        """A 401 (no or a bad credential) or 403 (the credential may not do this)."""
        return self.status in (401, 403)

    def explain(self) -> str:
        """One line for a person: what was refused and why, with how to get a key on a 401."""
        if self.status == 401:
            return f"not signed in: {self.problem.get('detail') or self.problem.get('title')}; {KEY_HINT}"
        if self.status == 403:
            return f"not allowed: {self.problem.get('detail') or self.problem.get('title')}"
        return str(self)


def raise_for_problem(resp: httpx.Response, *expected: int) -> None:
    """:class:`ApiError` unless ``resp`` has one of the ``expected`` statuses."""
    if resp.status_code in expected:
        return
    try:
        problem = resp.json()
    except ValueError:
        problem = {"title": resp.reason_phrase, "detail": resp.text[:200]}
    if not isinstance(problem, dict):
        problem = {"title": resp.reason_phrase, "detail": str(problem)[:200]}
    raise ApiError(resp.status_code, problem)


def _retry_after_s(resp: httpx.Response) -> float:
    try:
        return min(60.0, max(0.1, float(resp.headers.get("Retry-After", "1"))))
    except ValueError:
        return 1.0


async def create_token(client: httpx.AsyncClient, body: dict, *, idempotency_key: str | None = None) -> dict:
    """``POST /v1/tokens``; the ``202`` body. A ``429`` is waited out (``Retry-After``) up to
    :data:`MAX_RATE_LIMIT_WAITS` times: the refused request changed nothing."""
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    for _ in range(MAX_RATE_LIMIT_WAITS):
        resp = await client.post("/v1/tokens", json=body, headers=headers)
        if resp.status_code != 429:
            break
        await asyncio.sleep(_retry_after_s(resp))
    raise_for_problem(resp, 202)
    return resp.json()


async def follow_job(client: httpx.AsyncClient, job_id: str) -> AsyncIterator[dict]:
    """Yield each job event from the SSE stream until the job is final."""
    last_id: str | None = None
    while True:
        headers = {"Last-Event-ID": last_id} if last_id else {}
        try:
            async with client.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers, timeout=None) as resp:
                resp.raise_for_status()
                async for line in resp.aiter_lines():
                    if line.startswith("id:"):
                        last_id = line[3:].strip()
                    elif line.startswith("data:"):
                        event = orjson.loads(line[5:])
                        yield event
                        if event.get("final"):
                            return
        except (httpx.TransportError, httpx.RemoteProtocolError):
            continue  # reconnect and resume after the last event seen


async def get_json(client: httpx.AsyncClient, path: str, params: dict | None = None) -> dict:
    """``GET path``; :class:`ApiError` unless ``200``."""
    resp = await client.get(path, params=params)
    raise_for_problem(resp, 200)
    return resp.json()


async def dead_letters(client: httpx.AsyncClient, limit: int) -> list[dict]:
    """Up to ``limit`` dead jobs from ``GET /v1/ops/dead-letters``, most recently dead first
    (operator credential)."""
    items: list[dict] = []
    cursor: str | None = None
    while len(items) < limit:
        params: dict[str, str | int] = {"limit": min(500, limit - len(items))}
        if cursor:
            params["cursor"] = cursor
        page = await get_json(client, "/v1/ops/dead-letters", params)
        items.extend(page["items"])
        cursor = page.get("next_cursor")
        if not cursor:
            break
    return items


async def retry_dead_job(client: httpx.AsyncClient, job_id: str) -> dict:
    """``POST /v1/ops/jobs/{id}/retry`` (operator credential); the re-queued job."""
    resp = await client.post(f"/v1/ops/jobs/{job_id}/retry")
    raise_for_problem(resp, 202)
    return resp.json()
