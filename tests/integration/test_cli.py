"""The CLI as a user runs it: demo on the embedded default, launch against a server,
retry of a dead job."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.support.fake_deployer import FakeDeployer
from tests.support.server import serve, stop
from tests.support.stack import running_stack, wait_final
from tokenforge.cli.operations import retry_job
from tokenforge.errors import TransientError

pytestmark = pytest.mark.slow


def _cli(*args: str, data_dir, timeout_s: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "TOKENFORGE_DATA_DIR": str(data_dir), "COLUMNS": "120"}
    return subprocess.run(
        [sys.executable, "-m", "tokenforge.cli.main", *args], env=env, capture_output=True, text=True, timeout=timeout_s
    )


def test_demo_launches_across_chains_and_prints_a_summary(tmp_path):
    result = _cli("demo", "--tokens", "6", "--chains", "solana,ethereum", data_dir=tmp_path / "data")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {m.group(1): int(m.group(2)) for m in re.finditer(r"│ (solana|ethereum)\s+│\s+(\d+) │", result.stdout)}
    assert rows == {"solana": 3, "ethereum": 3}, result.stdout


def test_launch_prints_the_address_and_refuses_bad_input_naming_the_field(tmp_path):
    data_dir = tmp_path / "data"
    proc, base = serve(data_dir, "solana", None)
    try:
        ok = _cli(
            "launch",
            "--chain",
            "solana",
            "--name",
            "Cli Coin",
            "--symbol",
            "CLI",
            "--supply",
            "1000",
            "--api",
            base,
            data_dir=data_dir,
        )
        bad = _cli(
            "launch",
            "--chain",
            "solana",
            "--name",
            "Cli Coin",
            "--symbol",
            "bad!",
            "--supply",
            "1000",
            "--api",
            base,
            data_dir=data_dir,
        )
    finally:
        stop(proc)
    assert ok.returncode == 0, ok.stderr[-3000:]
    address = ok.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"[1-9A-HJ-NP-Za-km-z]{32,44}", address), ok.stdout
    assert "confirmed" in ok.stdout
    assert bad.returncode == 2
    assert "symbol" in bad.stderr


async def test_operator_retry_revives_a_dead_job(settings):
    settings.max_attempts = 1
    fake = FakeDeployer()
    fake.fail_next("sign", TransientError("rpc down", code="rpc_unavailable"))
    async with running_stack(settings, {"ethereum": fake}) as (_, client):
        body = {
            "chain": "ethereum",
            "name": "Revived",
            "symbol": "REV",
            "supply": 5,
            "creator": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        }
        job_id = (await client.post("/v1/tokens", json=body)).json()["job"]["id"]
        assert (await wait_final(client, job_id))["status"] == "dead"
        await retry_job(settings, job_id)
        job = await wait_final(client, job_id)
        assert job["status"] == "confirmed"
        assert job["attempts"] == 0
        token = (await client.get(f"/v1/tokens/{job['token_id']}")).json()
        assert token["status"] == "live"


def test_jobs_list_shows_dead_letters(tmp_path):
    assert _cli("migrate", data_dir=tmp_path / "data").returncode == 0
    result = _cli("jobs", "list", "--status", "dead", data_dir=tmp_path / "data")
    assert result.returncode == 0, result.stderr
    assert "dead jobs" in result.stdout
    bad = _cli("jobs", "list", "--status", "zombie", data_dir=tmp_path / "data")
    assert bad.returncode != 0


def test_keys_list_shows_every_full_address_to_fund(tmp_path):
    import json
    import os
    import subprocess
    import sys

    from tokenforge.keys.local import LocalKeyStore

    env = {
        **os.environ,
        "TOKENFORGE_DATA_DIR": str(tmp_path),
        "COLUMNS": "60",
        "TOKENFORGE_CHAINS": json.dumps(
            {"ethereum": {"network": "embedded", "deployer_keys": 3}, "solana": "embedded"}
        ),
    }
    out = subprocess.run(
        [sys.executable, "-m", "tokenforge", "keys", "list"], env=env, capture_output=True, text=True, check=True
    ).stdout
    store = LocalKeyStore(tmp_path)
    from eth_account import Account

    for key in store.evm_deployer_keys("ethereum", 3):
        assert Account.from_key(key).address in out.replace("\n", "")
    assert store.solana_payer_address("solana") in out.replace("\n", "")
    assert "deployer 2" in out


def test_serve_listens_on_tokenforge_port_without_a_port_option(tmp_path):
    import json
    import time

    import httpx

    from tests.support.server import free_port

    port = free_port()
    env = {
        **os.environ,
        "TOKENFORGE_DATA_DIR": str(tmp_path),
        "TOKENFORGE_CHAINS": json.dumps({"solana": "embedded"}),
        "TOKENFORGE_HOST": "127.0.0.1",
        "TOKENFORGE_PORT": str(port),
    }
    env.pop("TOKENFORGE_FAULT_CRASH_POINT", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tokenforge.cli.main", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        ready = None
        while ready is None and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
            except httpx.TransportError:
                time.sleep(0.1)
    finally:
        stop(proc)
    assert ready is not None, "the server never answered on TOKENFORGE_PORT"
    assert ready.json()["status"] == "ok"
