"""Readiness: required dependencies make a process unavailable, optional ones degraded."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from types import SimpleNamespace

from prometheus_client import REGISTRY

from tokenforge.config import Settings
from tokenforge.errors import ErrorCode, TransientError
from tokenforge.observability.readiness import check_readiness, safe_error


class _Session:
    def __init__(self, fault: BaseException | None, hang: bool) -> None:
        self._fault, self._hang = fault, hang

    async def execute(self, _statement):
        if self._hang:
            await asyncio.Event().wait()
        if self._fault is not None:
            raise self._fault


def _sessions(fault: BaseException | None = None, *, hang: bool = False):
    @asynccontextmanager
    async def sessions():
        yield _Session(fault, hang)

    return sessions


class _Pingable:
    def __init__(self, fault: BaseException | None = None) -> None:
        self._fault = fault

    async def ping(self) -> None:
        if self._fault is not None:
            raise self._fault


class _Pool:
    def __init__(self, *states: str) -> None:
        self._states = states

    def health(self) -> list[dict]:
        return [{"label": f"https://rpc{i}.example.com/…", "state": s} for i, s in enumerate(self._states)]


def _container(tmp_path, *, sessions=None, queue=None, cache=None, pools=None, chains=None):
    settings = Settings(data_dir=tmp_path, chains=chains or {"solana": "embedded"})
    container = SimpleNamespace(
        settings=settings,
        sessions=sessions or _sessions(),
        queue=queue or object(),
        pools=pools or {},
        deployers=None,
    )
    if cache is not None:
        container.cache = cache
    return container


def _rpc_chains():
    return {"ethereum": {"network": "testnet", "endpoints": ["https://a.example.com", "https://b.example.com"]}}


async def test_everything_up_is_ok(tmp_path):
    report = await check_readiness(_container(tmp_path, queue=_Pingable(), cache=_Pingable()))
    assert report.status == "ok" and report.http_status == 200
    assert set(report.checks) == {"database", "broker", "cache", "chain:solana"}
    assert all(c.status == "ok" and c.error is None for c in report.checks.values())
    assert REGISTRY.get_sample_value("tokenforge_dependency_up", {"dependency": "cache"}) == 1.0


async def test_database_down_is_unavailable(tmp_path):
    fault = TransientError("the database is unavailable", code=ErrorCode.DB_UNAVAILABLE)
    report = await check_readiness(_container(tmp_path, sessions=_sessions(fault)))
    assert report.status == "unavailable" and report.http_status == 503
    assert report.checks["database"].status == "down"
    assert "db_unavailable" in report.checks["database"].error
    assert REGISTRY.get_sample_value("tokenforge_dependency_up", {"dependency": "database"}) == 0.0


async def test_a_hanging_database_is_down_after_the_timeout(tmp_path):
    report = await check_readiness(_container(tmp_path, sessions=_sessions(hang=True)), timeout_s=0.05)
    assert report.http_status == 503
    assert report.checks["database"].error == "no answer within 0.05 s"


async def test_broker_down_is_unavailable_and_its_url_password_is_not_shown(tmp_path):
    queue = _Pingable(ConnectionError("cannot reach amqp://tokenforge:s3cret@rabbit:5672/"))
    report = await check_readiness(_container(tmp_path, queue=queue))
    assert report.status == "unavailable"
    error = report.checks["broker"].error
    assert "s3cret" not in error and "amqp://***@rabbit:5672/" in error


async def test_cache_down_only_degrades(tmp_path):
    report = await check_readiness(_container(tmp_path, cache=_Pingable(OSError("connection refused"))))
    assert report.status == "degraded" and report.http_status == 200
    assert report.checks["cache"].status == "down"
    assert REGISTRY.get_sample_value("tokenforge_dependency_up", {"dependency": "cache"}) == 0.0


async def test_no_cache_is_not_checked(tmp_path):
    report = await check_readiness(_container(tmp_path))
    assert "cache" not in report.checks


async def test_rpc_breakers_open_make_a_chain_degraded_or_down_and_the_process_degraded(tmp_path):
    some = await check_readiness(
        _container(tmp_path, chains=_rpc_chains(), pools={"ethereum": _Pool("open", "closed")})
    )
    assert some.status == "degraded"
    assert some.checks["chain:ethereum"].status == "degraded"
    assert "https://rpc0.example.com/…" in some.checks["chain:ethereum"].error
    every = await check_readiness(
        _container(tmp_path, chains=_rpc_chains(), pools={"ethereum": _Pool("open", "half_open")})
    )
    assert every.status == "degraded" and every.http_status == 200
    assert every.checks["chain:ethereum"].status == "down"
    assert REGISTRY.get_sample_value("tokenforge_dependency_up", {"dependency": "chain:ethereum"}) == 0.0


async def test_a_chain_this_process_has_not_opened_is_judged_by_what_workers_reported(tmp_path, monkeypatch):
    reports = {"endpoints": []}

    async def chain_report(settings, sessions, deployers, pools):
        return [{"chain": "ethereum", **reports}]

    monkeypatch.setattr("tokenforge.chains.health.chain_report", chain_report)
    container = _container(tmp_path, chains=_rpc_chains())
    unreported = await check_readiness(container)
    assert unreported.checks["chain:ethereum"].status == "degraded"
    assert "no worker has reported" in unreported.checks["chain:ethereum"].error

    reports["endpoints"] = [
        {"label": "https://rpc0.example.com/…", "state": "open", "stale": False},
        {"label": "https://rpc1.example.com/…", "state": "closed", "stale": True},  # too old to count
    ]
    report = await check_readiness(container)
    assert report.checks["chain:ethereum"].status == "down"
    assert report.status == "degraded", "a chain down does not make the process unready"


async def test_only_the_requested_groups_are_checked(tmp_path):
    report = await check_readiness(_container(tmp_path, cache=_Pingable()), checks=("database",))
    assert set(report.checks) == {"database"}


def test_safe_error_hides_credentials_and_is_short():
    text = safe_error(RuntimeError("postgresql+asyncpg://app:hunter2@db:5432/tf " + "x" * 500))
    assert "hunter2" not in text and len(text) <= 200
    assert text.startswith("RuntimeError: postgresql+asyncpg://***@db:5432/tf")
