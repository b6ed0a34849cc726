"""A small HTTP client for the TokenForge API (used by the CLI and the benchmark)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import httpx
import orjson
from eth_account import Account
from solders.keypair import Keypair

FINAL_STATUSES = {"confirmed", "failed", "dead"}


def throwaway_creator(chain: str) -> str:
    """A fresh address nobody keeps the key of (for demos when no --creator is given)."""
    if chain == "solana":
        return str(Keypair().pubkey())
    return Account.from_key(secrets.token_bytes(32)).address


class ApiError(Exception):
    def __init__(self, status: int, problem: dict) -> None:
        self.status = status
        self.problem = problem
        fields = ", ".join(f"{e['field']}: {e['message']}" for e in problem.get("errors") or [])
        super().__init__(f"HTTP {status}: {problem.get('title')}: {fields or problem.get('detail')}")


async def create_token(client: httpx.AsyncClient, body: dict, *, idempotency_key: str | None = None) -> dict:
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    resp = await client.post("/v1/tokens", json=body, headers=headers)
    if resp.status_code != 202:
        try:
            problem = resp.json()
        except ValueError:
            problem = {"title": resp.reason_phrase, "detail": resp.text[:200]}
        raise ApiError(resp.status_code, problem)
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


async def get_json(client: httpx.AsyncClient, path: str) -> dict:
    resp = await client.get(path)
    resp.raise_for_status()
    return resp.json()
