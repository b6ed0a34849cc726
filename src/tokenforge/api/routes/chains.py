"""Chains this server launches on, with the health of their RPC endpoints and keys.

``keys`` lists what pays for launches, each with its address, last balance read and alert:
an EVM chain's deployer keys (``"role": "deployer"``), a Solana chain's payer
(``"role": "payer"``). ``alerts`` repeats every key alert and every endpoint whose circuit is
not closed.
"""

from __future__ import annotations

from fastapi import APIRouter

from tokenforge.api.deps import ContainerDep
from tokenforge.domain.chains import CHAINS

router = APIRouter(tags=["operations"])


@router.get("/v1/chains", summary="Chains, RPC endpoint health (circuit breakers), deployer keys and payers")
async def list_chains(container: ContainerDep) -> dict:
    items = []
    for name, cs in sorted(container.settings.chains.items()):
        deployer = container.deployers.opened(name)
        pool = container.pools.get(name)
        health = getattr(deployer, "health", None)
        details = health() if health is not None else {}
        keys = details.get("keys", [])
        endpoints = pool.health() if pool is not None else []
        items.append(
            {
                "chain": name,
                "family": CHAINS[name].family.value,
                "network": cs.network.value,
                # Deployers open in the worker; a process without one reports nothing it has not seen.
                "open_in_this_process": deployer is not None,
                "endpoints": endpoints,
                "keys": keys,
                "alerts": [f"{k['address']}: {k['alert']}" for k in keys if k.get("alert")]
                + [f"endpoint {e['label']} is {e['state']}" for e in endpoints if e["state"] != "closed"],
                **{k: v for k, v in details.items() if k != "keys"},
            }
        )
    return {"items": items}
