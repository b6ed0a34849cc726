from __future__ import annotations

import os
import socket
import uuid
from contextlib import asynccontextmanager

import pytest

CI = os.environ.get("CI", "").lower() == "true"


def require_service(name: str, host: str, port: int) -> None:
    """Skip when a service is absent locally; under CI=true a missing service is a failure."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return
    except OSError:
        if CI:
            pytest.fail(f"{name} is not reachable at {host}:{port} (required under CI=true)")
        pytest.skip(f"{name} is not reachable at {host}:{port}")


def require_tool(name: str, path: str | os.PathLike | None, install_hint: str) -> None:
    """Skip when a tool is absent locally (``path`` None or missing); under CI=true it is a failure."""
    if path is not None and os.path.exists(path):
        return
    if CI:
        pytest.fail(f"{name} is not installed ({install_hint}; required under CI=true)")
    pytest.skip(f"{name} is not installed ({install_hint})")


@pytest.fixture
def settings(tmp_path):
    from tokenforge.config import Settings

    return Settings(
        data_dir=tmp_path / "data",
        confirm_poll_s=0.01,
        retry_base_s=0.01,
        retry_max_s=0.05,
        webhook_retry_base_s=0.01,
        webhook_retry_max_s=0.05,
        relay_poll_s=0.05,
        **UNREACHED_RATE_LIMITS,
    )


#: Rate limits on, with budgets no test reaches unless it sets its own (one client sends all).
UNREACHED_RATE_LIMITS = {
    f"rate_limit_{budget}": "1000000/minute"
    for budget in ("reads_ip", "reads_identity", "writes_ip", "writes_identity", "signin_ip")
}


PG_HOST, PG_PORT = "127.0.0.1", 5432


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user="postgres", database="postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@asynccontextmanager
async def fresh_postgres_database():
    """A fresh, empty PostgreSQL database (dropped afterwards); yields its SQLAlchemy URL."""
    require_service("PostgreSQL", PG_HOST, PG_PORT)
    name = f"tf_test_{uuid.uuid4().hex[:12]}"
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+asyncpg://postgres@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def postgres_url():
    async with fresh_postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
async def any_db_settings(request, settings):
    """The same settings on each database backend TokenForge supports."""
    if request.param == "sqlite":
        yield settings
        return
    async with fresh_postgres_database() as url:
        settings.database_url = url
        yield settings
