"""The CLI as a user runs it: demo on the embedded default, launch against a server,
retry of a dead job."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.support.fake_deployer import FakeDeployer
from tests.support.server import stop
from tests.support.stack import running_stack, wait_final
from tokenforge.cli.operations import retry_job
from tokenforge.errors import TransientError

pytestmark = pytest.mark.slow


def _cli(*args: str, data_dir, timeout_s: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "TOKENFORGE_DATA_DIR": str(data_dir), "COLUMNS": "200"}
    env.pop("TOKENFORGE_API_KEY", None)
    return subprocess.run(
        [sys.executable, "-m", "tokenforge.cli.main", *args], env=env, capture_output=True, text=True, timeout=timeout_s
    )


def test_demo_launches_across_chains_and_prints_a_summary(tmp_path):
    result = _cli("demo", "--tokens", "6", "--chains", "solana,ethereum", data_dir=tmp_path / "data")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {m.group(1): int(m.group(2)) for m in re.finditer(r"│ (solana|ethereum)\s+│\s+(\d+) │", result.stdout)}
    assert rows == {"solana": 3, "ethereum": 3}, result.stdout


def _serve_capturing(data_dir, out_path) -> tuple[subprocess.Popen, str]:
    """``tokenforge serve`` on the embedded default (Solana only), its console in ``out_path``."""
    import json
    import time

    import httpx

    from tests.support.server import free_port

    port = free_port()
    env = {**os.environ, "TOKENFORGE_DATA_DIR": str(data_dir), "TOKENFORGE_CHAINS": json.dumps({"solana": "embedded"})}
    env.pop("TOKENFORGE_FAULT_CRASH_POINT", None)
    env.pop("TOKENFORGE_API_KEY", None)
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tokenforge.cli.main", "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.PIPE,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    stop(proc)
    raise AssertionError("server did not become ready")


KEY = re.compile(r"tfk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}")


def test_serve_prints_a_local_operator_key_once_and_the_cli_launches_with_keys(tmp_path):
    data_dir = tmp_path / "data"
    wallet = "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin"
    proc, base = _serve_capturing(data_dir, tmp_path / "first.txt")
    try:
        console = (tmp_path / "first.txt").read_text()
        keys = set(KEY.findall(console))
        assert len(keys) == 1, console
        operator = keys.pop()
        assert f"export TOKENFORGE_API_KEY={operator}" in console

        # an operator issues a creator key on the database while the server runs: stdout is the key alone
        made = _cli("api-keys", "create", "--role", "creator", "--wallet", wallet, "--label", "ci", data_dir=data_dir)
        assert made.returncode == 0, made.stderr
        creator = made.stdout.strip()
        assert KEY.fullmatch(creator), made.stdout
        assert "shown this once" in made.stderr and creator not in made.stderr

        # launch without --creator: the token is the creator key's wallet's
        args = (
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
        )
        ok = _cli(*args, "--api-key", creator, data_dir=data_dir)
        assert ok.returncode == 0, ok.stderr[-3000:]
        address = ok.stdout.strip().splitlines()[-1]
        assert re.fullmatch(r"[1-9A-HJ-NP-Za-km-z]{32,44}", address), ok.stdout
        assert "confirmed" in ok.stdout
        import httpx

        [token] = httpx.get(f"{base}/v1/tokens", params={"creator": wallet}).json()["items"]
        assert token["address"] == address

        bad_args = ("launch", "--chain", "solana", "--name", "Cli Coin", "--symbol", "bad!", "--supply", "1000")
        bad = _cli(*bad_args, "--api", base, "--api-key", creator, data_dir=data_dir)
        assert bad.returncode == 2
        assert "symbol" in bad.stderr

        # no key, or a revoked one: refused in one line saying why and how to get a key
        anonymous = _cli(*args, data_dir=data_dir)
        assert anonymous.returncode == 2
        assert "not signed in" in anonymous.stderr and "--api-key" in anonymous.stderr
        assert "Traceback" not in anonymous.stderr

        # demo launches for random creators: a creator key is refused, naming the operator role
        demo = _cli(
            "demo", "--tokens", "3", "--chains", "solana", "--api", base, "--api-key", creator, data_dir=data_dir
        )
        assert demo.returncode == 2
        assert "not allowed" in demo.stderr and "operator API key" in demo.stderr
        demo_ok = _cli(
            "demo", "--tokens", "2", "--chains", "solana", "--api", base, "--api-key", operator, data_dir=data_dir
        )
        assert demo_ok.returncode == 0, demo_ok.stderr[-2000:]

        # jobs through the operator API: the operator key may, the creator key may not
        dead = _cli("jobs", "dead", "--api", base, "--api-key", operator, data_dir=data_dir)
        assert dead.returncode == 0 and "no dead jobs" in dead.stdout, dead.stderr
        refused = _cli("jobs", "dead", "--api", base, "--api-key", creator, data_dir=data_dir)
        assert refused.returncode == 1
        assert "not allowed" in refused.stderr and "operator" in refused.stderr

        listing = _cli("api-keys", "list", data_dir=data_dir)
        assert listing.returncode == 0, listing.stderr
        for key in (operator, creator):
            assert key.split("_", 2)[2] not in listing.stdout  # never a secret
        assert "local operator" in listing.stdout and wallet in listing.stdout.replace("\n", "")

        revoked = _cli("api-keys", "revoke", creator.split("_")[1], data_dir=data_dir)
        assert revoked.returncode == 0, revoked.stderr
        after = _cli(*args, "--api-key", creator, data_dir=data_dir)
        assert after.returncode == 2 and "revoked" in after.stderr
    finally:
        stop(proc)

    # the next start names the key it issued before, and never shows a secret again
    proc, _ = _serve_capturing(data_dir, tmp_path / "second.txt")
    stop(proc)
    second = (tmp_path / "second.txt").read_text()
    assert KEY.search(second) is None, second
    assert f"operator key: {'_'.join(operator.split('_', 2)[:2])}…" in second
    assert "issued earlier" in second


def test_api_keys_commands_refuse_an_unmigrated_database_and_bad_input(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    unmigrated = _cli("api-keys", "create", "--role", "operator", data_dir=data_dir)
    assert unmigrated.returncode == 1
    assert "tokenforge migrate" in unmigrated.stderr and unmigrated.stdout == ""
    assert _cli("migrate", data_dir=data_dir).returncode == 0
    no_wallet = _cli("api-keys", "create", "--role", "creator", data_dir=data_dir)
    assert no_wallet.returncode == 1 and "wallet" in no_wallet.stderr and no_wallet.stdout == ""
    bad_expiry = _cli("api-keys", "create", "--role", "operator", "--expires", "soon", data_dir=data_dir)
    assert bad_expiry.returncode == 1 and "expires" in bad_expiry.stderr
    expiring = _cli("api-keys", "create", "--role", "operator", "--expires", "2h", data_dir=data_dir)
    assert expiring.returncode == 0, expiring.stderr
    listing = _cli("api-keys", "list", data_dir=data_dir)
    assert expiring.stdout.strip().split("_")[1] in listing.stdout.replace("\n", "")
    assert "never" in listing.stdout  # not used yet
    unknown = _cli("api-keys", "revoke", "0123456789abcdef", data_dir=data_dir)
    assert unknown.returncode == 1 and "no active API key" in unknown.stderr


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
