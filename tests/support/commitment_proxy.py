"""A JSON-RPC proxy in front of a Solana node that holds signature statuses below a commitment.

``tokenforge devnet`` finalizes every transaction at once; a real cluster reports a
transaction ``processed``, then ``confirmed``, then ``finalized``. Behind this proxy the
node's ``getSignatureStatuses`` answers report at most the level set with
:meth:`CommitmentProxy.report_at_most` (``None``: as the node says), so a client's wait for
its commitment can be observed. Everything else is forwarded unchanged. It runs on the
caller's event loop::

    async with CommitmentProxy(devnet.solana_url) as proxy:
        proxy.report_at_most("confirmed")
        ... AsyncClient(proxy.url) ...
"""

from __future__ import annotations

import json
from typing import Any, Self

import aiohttp
from aiohttp import web

_RANK = {"processed": 0, "confirmed": 1, "finalized": 2}


class CommitmentProxy:
    def __init__(self, upstream_url: str) -> None:
        self.upstream_url = upstream_url
        self.cap: str | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.url = ""

    def report_at_most(self, level: str | None) -> None:
        if level is not None and level not in _RANK:
            raise ValueError(f"unknown commitment {level!r}")
        self.cap = level

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        assert self._session is not None
        async with self._session.post(
            self.upstream_url, data=body, headers={"Content-Type": "application/json"}
        ) as upstream:
            answer = await upstream.json(content_type=None)
        sent = _json(body)
        if isinstance(sent, list):
            answer = [self._rewrite(q, a) for q, a in zip(sent, answer, strict=False)]
        else:
            answer = self._rewrite(sent, answer)
        return web.json_response(answer)

    def _rewrite(self, sent: Any, answer: Any) -> Any:
        if self.cap is None or not isinstance(sent, dict) or sent.get("method") != "getSignatureStatuses":
            return answer
        for entry in (answer.get("result") or {}).get("value") or []:
            if entry is None:
                continue
            level = entry.get("confirmationStatus") or "finalized"
            if _RANK[level] > _RANK[self.cap]:
                entry["confirmationStatus"] = self.cap
                entry["confirmations"] = None if self.cap == "finalized" else 0
        return answer


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None
