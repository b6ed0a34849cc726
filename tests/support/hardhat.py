"""Run a Hardhat node (``npx hardhat node``, chain id 31337) as a real process for tests.

``running_hardhat()`` starts the node from the repository's ``node_modules`` on a free port
with ``hardhat.config.js``, returns once ``eth_chainId`` answers, and ends the node's whole
process group on exit. Its output goes to a file, never to a pipe nobody reads. Without
``node_modules/hardhat`` (or ``npx``) the calling test skips locally and fails under CI=true.

The small JSON-RPC helpers drive Hardhat's own methods: balances, mining, automine, dropping
a pending transaction. ``tokenforge devnet`` answers the same methods, so they drive its EVM
chains too (``tests/support/devnet.py``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import require_tool
from tests.support.server import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
CHAIN_ID = 31337

#: Hardhat's first two default accounts (public test keys, each funded with 10000 ETH).
DEFAULT_PRIVATE_KEYS = (
    bytes.fromhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"),
    bytes.fromhex("59c6995e998f97a5a0044966f0945389dc9ee1f4ac4a0c6b09ae7082d2f7ac86"),
)

# Variables hardhat.config.js reads; inherited values are dropped so only the arguments count.
_CONFIG_ENV = ("HARDHAT_MINING_INTERVAL_MS", "HARDHAT_ACCOUNTS_JSON", "HARDHAT_LOGGING_ENABLED")
_OFFLINE_ENV = {
    "HARDHAT_DISABLE_TELEMETRY_PROMPT": "true",  # never ask for telemetry consent
    "CI": "true",  # Hardhat sends no analytics and shows no banners on CI
    "NPM_CONFIG_UPDATE_NOTIFIER": "false",  # npx does not look up newer npm versions
}
_START_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 10.0
_PORT_ATTEMPTS = 3


@dataclass
class HardhatNode:
    url: str
    port: int
    process: subprocess.Popen
    log_path: Path

    def stop(self) -> None:
        """Ends the node's process group (npx and the node it spawned); idempotent."""
        if self.process.poll() is None:
            _signal_group(self.process, signal.SIGTERM)
            try:
                self.process.wait(timeout=_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                _signal_group(self.process, signal.SIGKILL)
                self.process.wait()
        # npx may exit before its child: make sure nothing of the group is left
        _signal_group(self.process, signal.SIGKILL)

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def require_hardhat() -> None:
    """Skip locally, fail under CI=true, when the Hardhat node cannot be started."""
    require_tool("npx", shutil.which("npx"), "install Node.js 20")
    require_tool("Hardhat", REPO_ROOT / "node_modules" / "hardhat" / "package.json", "run `npm ci`")


@contextmanager
def running_hardhat(
    *,
    accounts: list[tuple[bytes, int]] | None = None,
    mining_interval_ms: int | None = None,
    log_path: Path | None = None,
) -> Iterator[HardhatNode]:
    """A Hardhat node until the block exits.

    ``accounts``: ``(private key, balance in wei)`` pairs replacing Hardhat's default accounts.
    ``mining_interval_ms``: no automine, one block every N ms (default: one block per tx).
    ``log_path``: keep the node's output there, with every JSON-RPC call logged; by default
    the output goes to a temporary file (shown if the node fails to start) and calls are not
    logged.
    """
    require_hardhat()
    env = {key: value for key, value in os.environ.items() if key not in _CONFIG_ENV}
    env.update(_OFFLINE_ENV)
    if mining_interval_ms is not None:
        env["HARDHAT_MINING_INTERVAL_MS"] = str(mining_interval_ms)
    if accounts is not None:
        env["HARDHAT_ACCOUNTS_JSON"] = json.dumps(
            [{"privateKey": "0x" + key.hex(), "balance": str(balance_wei)} for key, balance_wei in accounts]
        )
    with tempfile.TemporaryDirectory(prefix="hardhat-") as tmp:
        if log_path is None:
            log_path = Path(tmp) / "node.log"
        else:
            env["HARDHAT_LOGGING_ENABLED"] = "true"
        node = _start(env, log_path)
        try:
            yield node
        finally:
            node.stop()


def _start(env: dict[str, str], log_path: Path) -> HardhatNode:
    for _ in range(_PORT_ATTEMPTS):
        port = free_port()
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                ["npx", "--no-install", "hardhat", "node", "--hostname", "127.0.0.1", "--port", str(port)],
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        node = HardhatNode(url=f"http://127.0.0.1:{port}", port=port, process=process, log_path=log_path)
        try:
            _wait_ready(node)
            return node
        except _PortTaken:
            node.stop()  # another process took the free port between the check and the bind
        except BaseException:
            node.stop()
            raise
    pytest.fail(f"Hardhat node found no free port in {_PORT_ATTEMPTS} attempts")


class _PortTaken(Exception):
    pass


def _wait_ready(node: HardhatNode) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    backoff_s = 0.02
    with httpx.Client(timeout=1.0) as client:
        while True:
            if node.process.poll() is not None:
                tail = node.log_tail()
                if "EADDRINUSE" in tail:
                    raise _PortTaken
                pytest.fail(f"Hardhat node exited with {node.process.returncode} before answering:\n{tail}")
            try:
                chain_id = _call(client, node.url, "eth_chainId", [])
                if int(chain_id, 16) != CHAIN_ID:
                    pytest.fail(f"Hardhat node answers chain id {int(chain_id, 16)}, expected {CHAIN_ID}")
                return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"Hardhat node did not answer within {_START_TIMEOUT_S:.0f} s:\n{node.log_tail()}")
            time.sleep(backoff_s)  # polling a process that has no readiness signal
            backoff_s = min(backoff_s * 2, 0.25)


def _signal_group(process: subprocess.Popen, sig: signal.Signals) -> None:
    try:
        os.killpg(process.pid, sig)  # start_new_session=True: the group id is the npx pid
    except ProcessLookupError:
        pass


# ---------------------------------------------------------------------- JSON-RPC helpers


class RpcError(Exception):
    """A JSON-RPC error answer: ``code`` and the node's ``message``."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.data = data


def _call(client: httpx.Client, url: str, method: str, params: list) -> Any:
    resp = client.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    resp.raise_for_status()
    body = resp.json()
    if "error" in body:
        error = body["error"]
        raise RpcError(error.get("code", 0), error.get("message", ""), error.get("data"))
    return body["result"]


def rpc(url: str, method: str, params: list | None = None) -> Any:
    """One synchronous JSON-RPC call; raises :class:`RpcError` on an error answer."""
    with httpx.Client(timeout=10.0) as client:
        return _call(client, url, method, params or [])


def _hex(value: str | bytes) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return value if value.startswith("0x") else "0x" + value


def set_balance(url: str, address: str, wei: int) -> None:
    rpc(url, "hardhat_setBalance", [address, hex(wei)])


def drop_transaction(url: str, tx_hash: str | bytes) -> bool:
    """Removes a pending transaction from the node's mempool; True if it was there."""
    return bool(rpc(url, "hardhat_dropTransaction", [_hex(tx_hash)]))


def set_automine(url: str, enabled: bool) -> None:
    rpc(url, "evm_setAutomine", [enabled])


def mine(url: str) -> None:
    """Mines one block now (with whatever is pending)."""
    rpc(url, "evm_mine", [])
