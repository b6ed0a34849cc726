"""The JSON-RPC path never imports py-evm, eth-tester or the embedded chains.

Checked in a fresh interpreter: every module a process that reaches its chains over
JSON-RPC imports, and the deployer openers ``tokenforge.bootstrap.deployer_factories``
builds for local networks. (``py_ecc`` comes with eth-account and ``solders.litesvm`` with
any solders import; LiteSVM's chain is only started by the embedded Solana chain.)
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

_PROBE = textwrap.dedent("""
    import json, sys, tempfile, pathlib

    HEAVY = ("eth", "eth_tester", "tokenforge.chains.evm.embedded", "tokenforge.chains.solana.embedded",
             "tokenforge.devnet")

    def heavy():
        return sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in HEAVY))

    import tokenforge.api.app
    import tokenforge.bootstrap
    import tokenforge.chains.evm.keeper
    import tokenforge.chains.evm.open
    import tokenforge.chains.evm.pooled_provider
    import tokenforge.chains.solana.open
    import tokenforge.chains.solana.pooled_provider
    from tokenforge.config import Settings
    from tokenforge.keys.local import LocalKeyStore

    data_dir = pathlib.Path(tempfile.mkdtemp())
    settings = Settings(data_dir=data_dir, chains={
        "ethereum": {"network": "local", "endpoints": ["http://127.0.0.1:9/ethereum"]},
        "solana": {"network": "local", "endpoints": ["http://127.0.0.1:9/solana"]},
    })
    factories = tokenforge.bootstrap.deployer_factories(settings, LocalKeyStore(data_dir), None)
    assert sorted(factories) == ["ethereum", "solana"]
    after_rpc = heavy()
    import tokenforge.chains.solana.embedded  # what the embedded opener loads: the probe sees it
    print(json.dumps({"after_rpc": after_rpc, "after_embedded": heavy()}))
""")


def test_json_rpc_openers_import_no_embedded_chain():
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["after_rpc"] == []
    assert "tokenforge.chains.solana.embedded" in seen["after_embedded"]
