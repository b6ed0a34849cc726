"""What the chaos runner starts and breaks: child processes in their own sessions, and the
two databases with the outage each can have.

SQLite's outage is another process holding the database file's write lock (``BEGIN
EXCLUSIVE``): TokenForge begins every transaction with ``BEGIN IMMEDIATE``, so each one waits
its busy timeout and fails with "database is locked" until the lock is released; nothing
about the file changes. PostgreSQL's is ``pg_ctl stop -m immediate`` of a temporary cluster
and a start on the same data directory and port (crash recovery on the way up).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from tests.support.pg_cluster import PostgresCluster

START_TIMEOUT_S = 180.0


class Child:
    """A child process in its own session, output appended to a log file (kept across restarts)."""

    def __init__(self, argv: list[str], env: dict, log_path: Path) -> None:
        self.argv, self.env, self.log_path = argv, env, log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def exit_code(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def kill(self) -> None:
        """SIGKILL to the whole process group: no shutdown code runs."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""


async def wait_http(url: str, child: Child, timeout_s: float = START_TIMEOUT_S) -> None:
    """Until ``GET url`` answers 200; raises if the child exits or the time runs out."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            if child.exit_code() is not None:
                raise RuntimeError(f"{child.argv[3]} exited with {child.exit_code()}: {child.log_tail()}")
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)  # polling another process: there is no event to await
    raise RuntimeError(f"{url} did not become ready: {child.log_tail()}")


# ----------------------------------------------------------------------------- databases
SQLITE_LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], timeout=120, isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()
conn.execute("ROLLBACK")
"""


class SqliteDatabase:
    """The embedded default; an outage is another process holding the file's write lock."""

    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path, self.env = path, {}
        self._locker: asyncio.subprocess.Process | None = None

    async def go_down(self) -> None:
        self._locker = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            SQLITE_LOCKER,
            str(self.path),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        if (await self._locker.stdout.readline()).strip() != b"locked":
            raise RuntimeError("could not take the SQLite write lock")

    async def come_back(self) -> None:
        """Closing the locker's stdin makes it roll back and exit."""
        self._locker.stdin.close()
        await asyncio.wait_for(self._locker.wait(), timeout=30)

    async def close(self) -> None:
        if self._locker is not None and self._locker.returncode is None:
            self._locker.kill()
            await self._locker.wait()


class PostgresDatabase:
    """A temporary cluster; an outage is ``pg_ctl stop -m immediate``, then a start on the same port."""

    name = "postgres"

    def __init__(self) -> None:
        self.cluster = PostgresCluster(database="chaos")
        try:
            self.cluster.start()
        except BaseException:
            self.cluster.close()
            raise
        self.env = {"TOKENFORGE_DATABASE_URL": self.cluster.url}

    async def go_down(self) -> None:
        await asyncio.to_thread(self.cluster.stop, True)

    async def come_back(self) -> None:
        await asyncio.to_thread(self.cluster.start)

    async def close(self) -> None:
        await asyncio.to_thread(self.cluster.close)
