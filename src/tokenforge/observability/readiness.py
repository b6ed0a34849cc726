"""Readiness: can this process do its work now, and what is impaired?

Each dependency is checked concurrently with a short timeout and named ``ok``,
``degraded`` or ``down``:

* ``database`` — ``SELECT 1``. Down: the process is **unavailable** (HTTP 503).
* ``broker`` — the queue's optional ``async ping()`` (the in-process queue has none and is
  always ok). Down: unavailable.
* ``cache`` — the container's cache, if it has one, through its ``async ping()``. Down
  makes the process **degraded** only (HTTP 200): reads fall back to the database.
* ``chain:<name>`` — the chain's RPC pool as this process sees it (breakers are per
  process): every endpoint's breaker open → down, some → degraded. Embedded chains and
  chains this process has not opened (an API process opens none) are ok. A chain that is
  down degrades the process: launches wait in the queue, restarting would not help.

Each result also sets ``tokenforge_dependency_up{dependency}`` (1 ok, 0.5 degraded,
0 down). Error texts are short and never carry URLs with credentials.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import text

from tokenforge.domain.chains import Network
from tokenforge.errors import TokenForgeError
from tokenforge.observability.metrics import DEPENDENCY_UP

if TYPE_CHECKING:
    from tokenforge.bootstrap import Container

State = Literal["ok", "degraded", "down"]
#: What a probe found, with an error text when not ok.
Outcome = tuple[State, str | None]
#: Dependencies without which the process cannot work (down → unavailable).
REQUIRED = frozenset({"database", "broker"})
#: Every dependency group a process may check; health servers choose theirs.
ALL_CHECKS = ("database", "broker", "cache", "chains")
_UP = {"ok": 1.0, "degraded": 0.5, "down": 0.0}
_CREDENTIALS = re.compile(r"([a-z][a-z0-9+.-]*://)[^/\s@]*@", re.IGNORECASE)
_MAX_ERROR = 200


@dataclass(frozen=True, slots=True)
class Check:
    status: State
    latency_ms: float
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "latency_ms": self.latency_ms, "error": self.error}


@dataclass(frozen=True, slots=True)
class Readiness:
    """``status``: ok, degraded (works, something optional is impaired) or unavailable."""

    status: Literal["ok", "degraded", "unavailable"]
    checks: dict[str, Check]

    @property
    def http_status(self) -> int:
        return 503 if self.status == "unavailable" else 200

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "checks": {name: check.as_dict() for name, check in self.checks.items()}}


async def check_readiness(
    container: Container,
    *,
    checks: Collection[str] = ALL_CHECKS,
    required: Collection[str] = REQUIRED,
    timeout_s: float = 1.0,
) -> Readiness:
    """Check the dependency groups named in ``checks`` (:data:`ALL_CHECKS`) concurrently;
    one of ``required`` down makes the process unavailable, any other only degraded."""
    probes: dict[str, Awaitable[Outcome]] = {}
    if "database" in checks:
        probes["database"] = _database(container)
    if "broker" in checks:
        probes["broker"] = _ping(container.queue)
    cache = getattr(container, "cache", None)
    if "cache" in checks and cache is not None:
        probes["cache"] = _ping(cache)
    if "chains" in checks:
        reported = _Reported(container)
        for chain in container.settings.chains:
            probes[f"chain:{chain}"] = _chain(container, chain, reported)
    names = list(probes)
    results = await asyncio.gather(*(_timed(probes[name], timeout_s) for name in names))
    by_name = dict(zip(names, results, strict=True))
    for name, check in by_name.items():
        DEPENDENCY_UP.labels(name).set(_UP[check.status])
    if any(check.status == "down" for name, check in by_name.items() if name in required):
        status: Literal["ok", "degraded", "unavailable"] = "unavailable"
    elif any(check.status != "ok" for check in by_name.values()):
        status = "degraded"
    else:
        status = "ok"
    return Readiness(status, by_name)


async def _timed(probe: Awaitable[Outcome], timeout_s: float) -> Check:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):
            state, error = await probe
    except TimeoutError:
        return Check("down", _ms(started), f"no answer within {timeout_s:g} s")
    except Exception as exc:  # noqa: BLE001 - any failure of a probe is that dependency being down
        return Check("down", _ms(started), safe_error(exc))
    return Check(state, _ms(started), error)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def safe_error(exc: BaseException) -> str:
    """A short description of ``exc`` without credentials in URLs."""
    if isinstance(exc, TokenForgeError):
        message = str(exc)
    else:
        message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return _CREDENTIALS.sub(r"\1***@", message)[:_MAX_ERROR]


async def _database(container: Container) -> Outcome:
    async with container.sessions() as session:
        await session.execute(text("SELECT 1"))
    return "ok", None


async def _ping(adapter: object) -> Outcome:
    ping = getattr(adapter, "ping", None)
    if ping is not None:
        await ping()
    return "ok", None


class _Reported:
    """The endpoint health workers wrote to the database (``chain_health``), read once per
    readiness check: a process that has not opened a chain (the API) judges it by that."""

    def __init__(self, container: Container) -> None:
        self._container = container
        self._items: asyncio.Task[dict[str, list[dict[str, Any]]]] | None = None

    async def endpoints(self, chain: str) -> list[dict[str, Any]]:
        if self._items is None:
            self._items = asyncio.ensure_future(self._read())
        return (await asyncio.shield(self._items)).get(chain, [])

    async def _read(self) -> dict[str, list[dict[str, Any]]]:
        from tokenforge.chains.health import chain_report

        c = self._container
        items = await chain_report(c.settings, c.sessions, c.deployers, c.pools)
        return {item["chain"]: item["endpoints"] for item in items}


async def _chain(container: Container, chain: str, reported: _Reported) -> Outcome:
    if container.settings.chains[chain].network is Network.EMBEDDED:
        return "ok", None
    pool = container.pools.get(chain)
    if pool is not None:
        endpoints = pool.health()
    else:
        endpoints = [e for e in await reported.endpoints(chain) if not e.get("stale")]
        if not endpoints:
            return "degraded", "no worker has reported this chain's endpoints lately"
    failing = [e["label"] for e in endpoints if e["state"] != "closed"]
    if not failing:
        return "ok", None
    state: State = "down" if len(failing) == len(endpoints) else "degraded"
    return state, f"circuit open for {', '.join(failing)}"[:_MAX_ERROR]
