"""Passwords in the database, broker and cache URLs never reach a process's output: not in
``tokenforge serve``'s start-up lines (debug logging on, a cache that is down), not in the
error of a ``tokenforge api`` that cannot reach its database."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx

from tests.conftest import fresh_postgres_database
from tests.support.server import free_port, serve, stop

DB_PASSWORD = "DbSekret123"  # the test server trusts local connections: any password works
CACHE_PASSWORD = "CacheSekret123"


async def test_start_up_output_names_no_password(tmp_path):
    async with fresh_postgres_database() as url:
        env = {
            "TOKENFORGE_DATABASE_URL": url.replace("postgres@", f"postgres:{DB_PASSWORD}@"),
            "TOKENFORGE_CACHE_URL": f"redis://:{CACHE_PASSWORD}@127.0.0.1:{free_port()}/0",  # nothing listens
            "TOKENFORGE_LOG_LEVEL": "DEBUG",
        }
        assert DB_PASSWORD in env["TOKENFORGE_DATABASE_URL"]
        proc, base = serve(tmp_path / "data", "solana", env=env)
        try:
            async with httpx.AsyncClient(base_url=base, timeout=10) as client:
                ready = await client.get("/readyz")
                assert ready.json()["checks"]["cache"]["status"] == "down"
                await client.get("/v1/tokens")
        finally:
            stop(proc)
    output = proc.stderr.read().decode()
    assert "cache" in output  # the cache outage was logged
    assert DB_PASSWORD not in output and CACHE_PASSWORD not in output
    assert DB_PASSWORD not in ready.text and CACHE_PASSWORD not in ready.text


def test_an_unreachable_database_is_reported_without_its_password(tmp_path):
    env = {
        **os.environ,
        "TOKENFORGE_DATA_DIR": str(tmp_path / "data"),
        "TOKENFORGE_DATABASE_URL": f"postgresql+asyncpg://forge:{DB_PASSWORD}@127.0.0.1:{free_port()}/forge",
    }
    done = subprocess.run(
        [sys.executable, "-m", "tokenforge.cli.main", "api", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "cannot start" in done.stdout + done.stderr
    assert DB_PASSWORD not in done.stdout + done.stderr
