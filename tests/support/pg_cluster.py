"""A throwaway PostgreSQL cluster owned by its caller, for tests and the chaos runner.

``initdb`` into a temporary directory, listen on 127.0.0.1 at a free port, create one
database; stop it (``-m immediate`` by default: the postmaster and every backend die at
once, as on a crash, and the next start runs crash recovery) and start it again on the
same data directory and port::

    with PostgresCluster() as pg:           # initdb, start, CREATE DATABASE
        env = {"TOKENFORGE_DATABASE_URL": pg.url}
        pg.stop()                           # clients see their connections drop
        pg.start()                          # back on the same port, data intact

The binaries come from Debian's ``/usr/lib/postgresql/<version>/bin`` (newest version).
PostgreSQL refuses to run as root, so when we are root every command runs as the
``postgres`` OS user (``runuser -u postgres --``). Authentication is ``trust``, for the
loopback interface only. ``fsync`` is off: a stop, immediate or not, is a process crash,
never a machine crash, so the page cache keeps every committed write either way.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.server import free_port

PG_ROOT = Path("/usr/lib/postgresql")
START_TIMEOUT_S = 60
INSTALL_HINT = "Debian package postgresql (initdb in /usr/lib/postgresql/*/bin)"


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries (``initdb``, ``pg_ctl``) are not installed."""


def pg_bin_dir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding ``initdb``, or None."""
    found = [p.parent for p in PG_ROOT.glob("*/bin/initdb") if p.parent.parent.name.isdigit()]
    return max(found, key=lambda p: int(p.parent.name)) if found else None


def require_initdb() -> Path:
    """In tests: the binaries' directory; skips the test when they are absent (fails under CI=true)."""
    from tests.conftest import require_tool

    bin_dir = pg_bin_dir()
    require_tool("PostgreSQL server (initdb)", bin_dir / "initdb" if bin_dir else None, INSTALL_HINT)
    return bin_dir


class PostgresCluster:
    """One cluster in a temporary directory; a context manager (start on enter, remove on exit).

    ``url`` is the SQLAlchemy asyncpg URL of ``database``; ``port`` stays the same across
    restarts. Raises :class:`PostgresUnavailable` when the binaries are missing and
    ``RuntimeError`` (with the server log's tail) when a command fails.
    """

    def __init__(self, *, database: str = "tokenforge", port: int | None = None) -> None:
        bin_dir = pg_bin_dir()
        if bin_dir is None:
            raise PostgresUnavailable(f"initdb not found; install the {INSTALL_HINT}")
        self._bin = bin_dir
        self.database = database
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.base_dir = Path(tempfile.mkdtemp(prefix="tokenforge-pg-"))
        self.data_dir = self.base_dir / "data"
        self.log_path = self.base_dir / "postgres.log"
        self._as_owner: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses root; its own OS user owns the files
            owner = pwd.getpwnam("postgres")
            os.chown(self.base_dir, owner.pw_uid, owner.pw_gid)
            self._as_owner = ["runuser", "-u", "postgres", "--"]
        self._initialized = False
        self._running = False

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@{self.host}:{self.port}/{self.database}"

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> None:
        """Start the server (initdb and CREATE DATABASE the first time); returns once it accepts connections."""
        if self._running:
            return
        if not self._initialized:
            self._run(
                "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            )
        options = (
            f"-p {self.port} -k {self.base_dir} -c listen_addresses={self.host} -c fsync=off -c max_connections=200"
        )
        self._run(
            "pg_ctl",
            "start",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_path),
            "-w",
            "-t",
            str(START_TIMEOUT_S),
            "-o",
            options,
        )
        self._running = True
        if not self._initialized:
            self._run("createdb", "-h", self.host, "-p", str(self.port), "-U", "postgres", self.database)
            self._initialized = True

    def stop(self, immediate: bool = True) -> None:
        """Stop the server: ``immediate`` kills it without a checkpoint (crash recovery on the
        next start); otherwise a fast shutdown (connections closed, checkpoint written)."""
        if not self._running:
            return
        self._run(
            "pg_ctl",
            "stop",
            "-D",
            str(self.data_dir),
            "-w",
            "-t",
            str(START_TIMEOUT_S),
            "-m",
            "immediate" if immediate else "fast",
        )
        self._running = False

    def close(self) -> None:
        """Stop the server if it runs and remove the cluster's directory."""
        try:
            self.stop(immediate=True)
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def __enter__(self) -> PostgresCluster:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def _run(self, tool: str, *args: str) -> None:
        result = subprocess.run(
            [*self._as_owner, str(self._bin / tool), *args],
            cwd=self.base_dir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S * 2,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{tool} failed ({result.returncode}): {result.stderr.strip()[-2000:]}\nserver log: {self.log_tail()}"
            )
