"""``tokenforge serve`` pointed at ``tokenforge devnet``, both as real processes.

Shown here: a server whose EVM deployer key holds nothing (no ``dev_fund_base_units``)
stops at start with one clear line naming the key, not a traceback; a process that
reaches every chain over JSON-RPC opens its deployers without loading py-evm, eth-tester
or the embedded chains.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from eth_account import Account

from tests.support.devnet import running_devnet
from tests.support.server import free_port
from tokenforge.keys.local import LocalKeyStore

SERVE_TIMEOUT_S = 120


def test_serving_on_the_devnet_without_dev_funding_stops_with_one_clear_line(tmp_path):
    with running_devnet(tmp_path, chains="ethereum", in_memory=True) as devnet:
        data_dir = tmp_path / "data"
        env = {
            **os.environ,
            "TOKENFORGE_DATA_DIR": str(data_dir),
            "TOKENFORGE_CHAINS": json.dumps({"ethereum": {"network": "local", "endpoints": [devnet.evm_url()]}}),
        }
        env.pop("TOKENFORGE_FAULT_CRASH_POINT", None)
        done = subprocess.run(
            [sys.executable, "-m", "tokenforge", "serve", "--port", str(free_port())],
            env=env,
            capture_output=True,
            text=True,
            timeout=SERVE_TIMEOUT_S,
        )
    address = Account.from_key(LocalKeyStore(data_dir).evm_deployer_key("ethereum")).address  # EIP-55 form
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    failures = [line for line in done.stderr.splitlines() if "cannot start" in line]
    assert len(failures) == 1, done.stderr
    (line,) = failures
    assert "dev_funding_required" in line and f"deployer key {address} holds 0 wei" in line
    assert "set dev_fund_base_units for ethereum" in line and "fund the key" in line


_PROBE = textwrap.dedent("""
    import asyncio, json, pathlib, sys

    from tokenforge.bootstrap import deployer_factories
    from tokenforge.config import Settings
    from tokenforge.keys.local import LocalKeyStore
    from tokenforge.store.db import make_engine, make_sessionmaker
    from tokenforge.store.migrate import upgrade_to_head

    HEAVY = ("eth", "eth_tester", "tokenforge.chains.evm.embedded", "tokenforge.chains.solana.embedded",
             "tokenforge.devnet")

    def heavy():
        return sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in HEAVY))

    async def main(data_dir, evm_url, solana_url):
        engine = make_engine(f"sqlite+aiosqlite:///{data_dir / 'tf.db'}")
        await upgrade_to_head(engine)
        settings = Settings(data_dir=data_dir, chains={
            "ethereum": {"network": "local", "endpoints": [evm_url], "dev_fund_base_units": 10**21},
            "solana": {"network": "local", "endpoints": [solana_url], "dev_fund_base_units": 10**13},
        })
        factories = deployer_factories(settings, LocalKeyStore(data_dir), make_sessionmaker(engine))
        opened = [await factories[chain]() for chain in ("ethereum", "solana")]
        health = [d.health() for d in opened]
        for deployer in opened:
            await deployer.close()
        await engine.dispose()
        return health

    health = asyncio.run(main(pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]))
    after_rpc = heavy()
    import tokenforge.chains.evm.embedded  # the probe itself: loading it shows up
    print(json.dumps({"after_rpc": after_rpc, "after_embedded": heavy(), "health": health}))
""")


def test_json_rpc_deployers_open_without_py_evm_or_the_embedded_chains(tmp_path):
    """py-evm (``eth``), eth-tester and TokenForge's embedded chains stay unloaded. (web3's
    ``eth_account`` brings ``py_ecc`` and solana's ``solders`` brings ``solders.litesvm``
    with every import; LiteSVM's chain is only started by the embedded Solana chain.)"""
    with running_devnet(tmp_path, chains="ethereum,solana", in_memory=True) as devnet:
        data_dir = tmp_path / "data"
        data_dir.mkdir()
        done = subprocess.run(
            [sys.executable, "-c", _PROBE, str(data_dir), devnet.evm_url(), devnet.solana_url],
            capture_output=True,
            text=True,
            timeout=SERVE_TIMEOUT_S,
            env={k: v for k, v in os.environ.items() if not k.startswith("TOKENFORGE_")},
        )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["after_rpc"] == []
    assert "eth" in seen["after_embedded"] and "tokenforge.chains.evm.embedded" in seen["after_embedded"]
    evm, solana = seen["health"]
    assert len(evm["keys"]) == 1 and 0 < int(evm["keys"][0]["balance_base_units"]) <= 10**21  # paid the factory
    assert solana["keys"][0]["role"] == "payer" and int(solana["keys"][0]["balance_base_units"]) >= 10**13
