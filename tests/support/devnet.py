"""Run ``tokenforge devnet`` as a real subprocess for tests, and fund EVM accounts on it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.server import free_port

START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0


@dataclass
class Devnet:
    base_url: str
    process: subprocess.Popen
    data_dir: Path
    stdout_path: Path
    stderr_path: Path

    def evm_url(self, chain: str = "ethereum") -> str:
        return f"{self.base_url}/{chain}"

    @property
    def solana_url(self) -> str:
        return f"{self.base_url}/solana"

    def stdout(self) -> str:
        return self.stdout_path.read_text()

    def stderr(self) -> str:
        return self.stderr_path.read_text()


@contextmanager
def running_devnet(
    tmp_path: Path,
    *,
    slot_ms: int = 400,
    chains: str | None = None,
    data_dir: Path | None = None,
    in_memory: bool = False,
) -> Iterator[Devnet]:
    """Starts ``python -m tokenforge devnet`` on a free port with state under ``tmp_path``
    (or ``data_dir``), waits until ``GET /health`` answers, and stops it (SIGTERM, then kill)."""
    port = free_port()
    data_dir = data_dir or tmp_path / "devnet"
    args = [
        sys.executable,
        "-m",
        "tokenforge",
        "devnet",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--slot-ms",
        str(slot_ms),
    ]
    if chains:
        args += ["--chains", chains]
    if in_memory:
        args.append("--in-memory")
    tmp_path.mkdir(parents=True, exist_ok=True)
    stdout_path = tmp_path / f"devnet-{port}.stdout"
    stderr_path = tmp_path / f"devnet-{port}.stderr"
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:  # files: a chatty child never blocks
        proc = subprocess.Popen(args, stdout=out, stderr=err, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    devnet = Devnet(f"http://127.0.0.1:{port}", proc, data_dir, stdout_path, stderr_path)
    try:
        _wait_healthy(devnet)
        yield devnet
    finally:
        stop(proc)


def _wait_healthy(devnet: Devnet) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    delay_s = 0.02
    with httpx.Client(timeout=2) as client:
        while True:
            if devnet.process.poll() is not None:
                raise AssertionError(f"devnet exited with {devnet.process.returncode}: {devnet.stderr()[-3000:]}")
            try:
                if client.get(f"{devnet.base_url}/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"devnet did not become healthy: {devnet.stderr()[-3000:]}")
            time.sleep(delay_s)  # polling another process: there is no event to await
            delay_s = min(delay_s * 2, 0.25)


def stop(proc: subprocess.Popen) -> int:
    """SIGTERM, then kill after a grace period; returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def fund_evm(url: str, address: str, wei: int) -> None:
    """Sets ``address``'s balance to ``wei`` with ``hardhat_setBalance`` (works on Hardhat too)."""
    reply = httpx.post(
        url, json={"jsonrpc": "2.0", "id": 1, "method": "hardhat_setBalance", "params": [address, hex(wei)]}, timeout=30
    ).json()
    if "error" in reply:
        raise AssertionError(f"hardhat_setBalance failed: {reply['error']}")
