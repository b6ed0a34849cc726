"""Chains this server launches on, with the health of their RPC endpoints and keys.

``keys`` lists what pays for launches, each with its address, last balance read and alert:
an EVM chain's deployer keys (``"role": "deployer"``), a Solana chain's payer
(``"role": "payer"``). ``alerts`` repeats every key alert and every endpoint whose circuit is
not closed.

Any API process can answer: worker processes persist what they see
(:mod:`tokenforge.chains.health`), and each endpoint and key entry says who reported it
(``reporter``), when (``reported_at``, ``age_s``), and whether that report is ``stale``.
Breaker state is per worker process; an entry shows the view of the worker that reported last.
"""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Response

from tokenforge.api.deps import CacheDep, ContainerDep
from tokenforge.cache import CHAIN_LIST
from tokenforge.chains.health import chain_report, reporter_id

router = APIRouter(tags=["operations"])


@router.get(
    "/v1/chains",
    response_model=dict,
    summary="Chains, RPC endpoint health (circuit breakers), deployer keys and payers",
)
async def list_chains(container: ContainerDep, cache: CacheDep) -> Response:
    async def load() -> bytes:
        items = await chain_report(container.settings, container.sessions, container.deployers, container.pools)
        return orjson.dumps({"items": items})

    # Cached for a second or two (ages in it are that old at most). A process with chains
    # open reports its own live view: cached under its own key, never shared.
    live = any(container.deployers.opened(name) is not None for name in container.settings.chains)
    body = await cache.read(CHAIN_LIST, reporter_id() if live else "stored", load)
    return Response(body, media_type="application/json")
