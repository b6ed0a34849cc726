"""RPC endpoint and key health, persisted so that any process can report it.

Breakers, failure counts and balances live in the process that uses the endpoints and
keys: a worker. :class:`ChainHealthReporter` (run by worker processes) writes each opened
chain's view to the ``chain_health`` table every ``interval_s``; :func:`chain_report` —
what ``GET /v1/chains`` answers — reads it back in any process, each entry with its
``reporter`` (``host:pid``), ``reported_at``, ``age_s`` and ``stale`` (not reported for
:data:`STALE_INTERVALS` intervals: its reporter stopped or cannot reach the database). For a
chain the answering process has opened itself, its own live view is reported instead.

Breaker state stays per process: each worker keeps its own breakers (an endpoint one worker
finds failing is tried again by another), and a table row holds the view of the worker that
reported last. Endpoints are named by their redacted label only (scheme, host, port: no API
key); keys by their address.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tokenforge.chains.registry import DeployerRegistry
from tokenforge.config import Settings
from tokenforge.domain.chains import CHAINS
from tokenforge.errors import TokenForgeError
from tokenforge.store.db import utcnow
from tokenforge.store.models import ChainHealthRow
from tokenforge.store.repositories import chain_health as repo

if TYPE_CHECKING:  # the pool imports aiohttp; embedded-only processes never need it
    from tokenforge.chains.rpc.pool import RpcPool

log = logging.getLogger(__name__)

#: An entry not reported for this many intervals is flagged ``stale``.
STALE_INTERVALS = 3
#: The fields :func:`chain_report` adds to every endpoint and key entry.
REPORT_FIELDS = ("reporter", "reported_at", "age_s", "stale")


def reporter_id() -> str:
    """This process, as named in ``chain_health.reporter``: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def live_health(deployers: DeployerRegistry, pools: Mapping[str, RpcPool], chain: str) -> dict[str, Any] | None:
    """This process's own view of ``chain`` (endpoints, keys, other deployer details), or
    None when it has not opened the chain."""
    deployer = deployers.opened(chain)
    if deployer is None:
        return None
    health = getattr(deployer, "health", None)
    details: dict[str, Any] = dict(health()) if health is not None else {}
    pool = pools.get(chain)
    return {
        "endpoints": pool.health() if pool is not None else [],
        "keys": details.pop("keys", []),
        "details": details,
    }


class ChainHealthReporter:
    """Writes the endpoint and key health of every chain this process has opened."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        deployers: DeployerRegistry,
        pools: Mapping[str, RpcPool],
        *,
        interval_s: float,
        reporter: str | None = None,
    ) -> None:
        self._sessions = sessions
        self._deployers = deployers
        self._pools = pools
        self._interval_s = interval_s
        self.reporter = reporter or reporter_id()

    def rows(self, now: datetime) -> dict[tuple[str, str], list[dict[str, Any]]]:
        """The rows to write, by (chain, kind), from this process's live view."""
        out: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for chain in self._deployers.chains:
            live = live_health(self._deployers, self._pools, chain)
            if live is None:
                continue
            for kind, entries, name_field in (
                (repo.ENDPOINT, live["endpoints"], "label"),
                (repo.KEY, live["keys"], "address"),
            ):
                out[(chain, kind)] = [
                    {
                        "chain": chain,
                        "kind": kind,
                        "name": entry[name_field],
                        "state": {**entry, "position": position},
                        "reporter": self.reporter,
                        "updated_at": now,
                    }
                    for position, entry in enumerate(entries)
                ]
        return out

    async def report(self) -> int:
        """Write one report; returns how many rows it wrote."""
        now = utcnow()
        batches = self.rows(now)
        written = 0
        async with self._sessions() as s:
            for (chain, kind), rows in batches.items():
                await repo.upsert(s, rows)
                await repo.purge_missing(s, chain, kind, [r["name"] for r in rows], older_than=now - self.stale_after())
                written += len(rows)
            await s.commit()
        return written

    def stale_after(self) -> timedelta:
        return timedelta(seconds=self._interval_s * STALE_INTERVALS)

    async def run(self) -> None:
        """Report every ``interval_s`` until cancelled; a failed report is logged once per
        outage and tried again at the next interval."""
        failing = False
        while True:
            try:
                await self.report()
                failing = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the reporter must outlive any fault (logged below)
                if not failing:
                    log.warning("chain health not reported: %s", exc, exc_info=not isinstance(exc, TokenForgeError))
                failing = True
            await asyncio.sleep(self._interval_s)  # periodic by design: nothing to await


def _entry(row: ChainHealthRow, now: datetime, stale_after: timedelta) -> dict[str, Any]:
    state = {k: v for k, v in row.state.items() if k != "position"}
    age = now - row.updated_at
    return {
        **state,
        "reporter": row.reporter,
        "reported_at": row.updated_at.isoformat().replace("+00:00", "Z"),
        "age_s": round(max(age.total_seconds(), 0.0), 3),
        "stale": age > stale_after,
    }


def _live_entry(entry: dict[str, Any], reporter: str, now: datetime) -> dict[str, Any]:
    return {
        **entry,
        "reporter": reporter,
        "reported_at": now.isoformat().replace("+00:00", "Z"),
        "age_s": 0.0,
        "stale": False,
    }


def _alerts(endpoints: list[dict[str, Any]], keys: list[dict[str, Any]]) -> list[str]:
    alerts = [f"{k['address']}: {k['alert']}" for k in keys if k.get("alert")]
    alerts += [f"endpoint {e['label']} is {e['state']}" for e in endpoints if e.get("state") != "closed"]
    alerts += [f"{e['label']}: no report for {e['age_s']:.0f} s" for e in endpoints if e["stale"]]
    alerts += [f"{k['address']}: no report for {k['age_s']:.0f} s" for k in keys if k["stale"]]
    return alerts


async def chain_report(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    deployers: DeployerRegistry,
    pools: Mapping[str, RpcPool],
) -> list[dict[str, Any]]:
    """Every configured chain with its endpoint and key health (``GET /v1/chains`` items):
    this process's live view for chains it has opened, the ``chain_health`` table's for the
    rest."""
    now = utcnow()
    stale_after = timedelta(seconds=settings.chain_health_interval_s * STALE_INTERVALS)
    async with sessions() as s:
        rows = await repo.all_rows(s)
    stored: dict[tuple[str, str], list[ChainHealthRow]] = {}
    for row in sorted(rows, key=lambda r: (r.state.get("position", 0), r.name)):
        stored.setdefault((row.chain, row.kind), []).append(row)
    me = reporter_id()
    items = []
    for name, cs in sorted(settings.chains.items()):
        live = live_health(deployers, pools, name)
        details: dict[str, Any] = {}
        if live is not None:
            endpoints = [_live_entry(e, me, now) for e in live["endpoints"]]
            keys = [_live_entry(k, me, now) for k in live["keys"]]
            details = live["details"]
        else:
            endpoints = [_entry(r, now, stale_after) for r in stored.get((name, repo.ENDPOINT), [])]
            keys = [_entry(r, now, stale_after) for r in stored.get((name, repo.KEY), [])]
        items.append(
            {
                "chain": name,
                "family": CHAINS[name].family.value,
                "network": cs.network.value,
                "open_in_this_process": live is not None,
                "endpoints": endpoints,
                "keys": keys,
                "alerts": _alerts(endpoints, keys),
                **details,
            }
        )
    return items
