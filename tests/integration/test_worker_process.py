"""`tokenforge serve --worker-process` on PostgreSQL: API and worker in two processes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
from solders.keypair import Keypair

from tests.conftest import fresh_postgres_database
from tests.support.server import follow_until_final, operator_headers, serve, stop

pytestmark = pytest.mark.slow


def _worker_children(pid: int) -> list[int]:
    """Child processes started by multiprocessing's spawn (not its resource tracker)."""
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    workers = []
    for child in (int(p) for p in out.split()):
        cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
        if b"spawn_main" in cmdline and b"resource_tracker" not in cmdline:
            workers.append(child)
    return workers


def _launch_then_kill_the_worker(data_dir: Path, database_url: str) -> None:
    """Runs the server (blocking calls: a process and HTTP), launches, then kills its worker."""
    proc, base = serve(data_dir, "solana", args=("--worker-process",), env={"TOKENFORGE_DATABASE_URL": database_url})
    try:
        body = {
            "chain": "solana",
            "name": "Two Procs",
            "symbol": "TWO",
            "supply": 10,
            "creator": str(Keypair().pubkey()),
        }
        job_id = httpx.post(f"{base}/v1/tokens", json=body, headers=operator_headers(base), timeout=30).json()["job"][
            "id"
        ]
        job, events = follow_until_final(base, job_id)
        assert job["status"] == "confirmed"
        assert [e["status"] for e in events] == ["queued", "submitting", "submitted", "confirmed"]

        workers = _worker_children(proc.pid)
        assert workers, "the worker runs in a child process"
        os.kill(workers[0], signal.SIGKILL)
        assert proc.wait(timeout=30) != 0, "the server stops when its worker dies"
    finally:
        stop(proc)


async def test_launch_through_a_separate_worker_process_and_fail_fast_when_it_dies(tmp_path):
    async with fresh_postgres_database() as url:
        await asyncio.to_thread(_launch_then_kill_the_worker, tmp_path / "data", url)
