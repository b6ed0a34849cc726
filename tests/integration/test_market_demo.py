"""``tokenforge demo --market`` as a user runs it on the embedded default: tokens launched,
traded until one graduates, every trade indexed, a summary printed, well within a minute."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.slow


def test_market_demo_graduates_a_token_and_indexes_every_trade(tmp_path):
    env = {
        **os.environ,
        "TOKENFORGE_DATA_DIR": str(tmp_path / "data"),
        "TOKENFORGE_CHAINS": json.dumps({"ethereum": "embedded"}),
        "COLUMNS": "200",
    }
    env.pop("TOKENFORGE_API_KEY", None)
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "tokenforge.cli.main", "demo", "--market", "--chains", "ethereum"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed_s = time.monotonic() - started
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    out = result.stdout
    assert re.search(r"tokens launched\s+│\s+3 │", out), out
    indexed = re.search(r"trades indexed\s+│\s+(\d+) of (\d+) │", out)
    assert indexed and indexed.group(1) == indexed.group(2) and int(indexed.group(1)) > 10, out
    graduations = re.search(r"graduations \(chain / indexed\)\s+│\s+(\d+) / (\d+) │", out)
    assert graduations and int(graduations.group(1)) >= 1 and graduations.group(2) == graduations.group(1), out
    buy_gas = re.search(r"gas per buy \(p50\)\s+│\s+(\d+) │", out)
    assert buy_gas and int(buy_gas.group(1)) <= 80_000, out
    assert re.search(r"index lag p50 / p99 \(ms\)\s+│\s+\d+ / \d+ │", out), out
    assert elapsed_s < 60, f"the demo took {elapsed_s:.0f} s"
