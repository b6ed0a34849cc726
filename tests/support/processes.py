"""Run ``tokenforge migrate|api|relay|worker|sweeper`` as real processes for tests.

Each process writes its output to files under the test's directory (a chatty child never
blocks on a full pipe); :meth:`RoleProcess.wait_ready` waits for the role's ready line (or,
for the API, for ``/readyz``).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx

from tests.conftest import UNREACHED_RATE_LIMITS, require_service
from tests.support.server import free_port

START_TIMEOUT_S = 120.0
READY = re.compile(r"^tokenforge (\w+) ready(?:; health on (http://\S+))?$", re.MULTILINE)
RABBIT_HOST, RABBIT_PORT = "127.0.0.1", 5672


def tokenforge(*args: str) -> list[str]:
    return [sys.executable, "-m", "tokenforge", *args]


def role_env(data_dir: Path, database_url: str, *, broker_url: str = "memory://", chains: dict | None = None, **extra):
    """The environment of every process of one test deployment (rate limit budgets no test
    reaches unless ``extra`` sets them: ``rate_limit_writes_ip="5/minute"``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENFORGE_")}
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "TOKENFORGE_DATA_DIR": str(data_dir),
            "TOKENFORGE_DATABASE_URL": database_url,
            "TOKENFORGE_BROKER_URL": broker_url,
            "TOKENFORGE_CHAINS": json.dumps(chains or {"solana": "embedded"}),
            **{f"TOKENFORGE_{k.upper()}": v for k, v in UNREACHED_RATE_LIMITS.items()},
            **{f"TOKENFORGE_{k.upper()}": str(v) for k, v in extra.items()},
        }
    )
    return env


def devnet_solana(solana_url: str) -> dict:
    """Chain settings: Solana on ``tokenforge devnet``, the payer funded at start."""
    return {"solana": {"network": "local", "endpoints": [solana_url], "dev_fund_base_units": 10**13}}


@contextmanager
def rabbit_vhost() -> Iterator[str]:
    """A fresh vhost on the shared RabbitMQ (deleted afterwards); yields its AMQP URL."""
    require_service("RabbitMQ", RABBIT_HOST, RABBIT_PORT)
    vhost = f"tf-test-{secrets.token_hex(4)}"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True, capture_output=True, timeout=60)
    try:
        subprocess.run(
            ["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        yield f"amqp://guest:guest@{RABBIT_HOST}:{RABBIT_PORT}/{quote(vhost, safe='')}"
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True, timeout=60)


@dataclass
class RoleProcess:
    name: str
    process: subprocess.Popen
    stdout_path: Path
    stderr_path: Path
    base_url: str | None = None  # the API's
    health_url: str | None = None

    def stdout(self) -> str:
        return self.stdout_path.read_text()

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> RoleProcess:
        deadline = time.monotonic() + timeout_s
        delay_s = 0.02
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.process.returncode}: {self.stderr()[-3000:]}")
            if self._ready():
                return self
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} did not become ready: {self.stderr()[-3000:]}")
            time.sleep(delay_s)  # another process: there is no event to await
            delay_s = min(delay_s * 2, 0.2)

    def _ready(self) -> bool:
        if self.base_url is not None:
            try:
                return httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False
        found = READY.search(self.stdout())
        if found:
            self.health_url = found.group(2)
        return found is not None

    def terminate(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout_s: float = 60.0) -> int:
        return self.process.wait(timeout=timeout_s)

    def stop(self) -> None:
        """SIGTERM, then kill after a grace period."""
        self.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start(name: str, args: list[str], env: dict, workdir: Path) -> RoleProcess:
    """Start ``tokenforge <args>``; an ``api`` gets a free port (``base_url``) unless given."""
    workdir.mkdir(parents=True, exist_ok=True)
    base_url = None
    if args[0] == "api" and "--port" not in args:
        port = free_port()
        args = [*args, "--port", str(port)]
        base_url = f"http://127.0.0.1:{port}"
    stdout_path, stderr_path = workdir / f"{name}.stdout", workdir / f"{name}.stderr"
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        proc = subprocess.Popen(tokenforge(*args), stdout=out, stderr=err, env=env)
    return RoleProcess(name, proc, stdout_path, stderr_path, base_url)


def migrate(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(tokenforge("migrate"), env=env, capture_output=True, text=True, timeout=120)


def operator_key(env: dict) -> str:
    """An operator API key in the (migrated) database of the deployment ``env`` describes."""
    from tests.support.auth import env_key

    return env_key(env)


@contextmanager
def running(*procs: RoleProcess) -> Iterator[tuple[RoleProcess, ...]]:
    """Stop every process at the end, whatever happens."""
    try:
        yield procs
    finally:
        for proc in procs:
            proc.stop()
