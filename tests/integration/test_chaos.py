"""The chaos runner (``bench/chaos.py``) in small: 20 launches over EVM and Solana on a
``tokenforge devnet``, through a real ``tokenforge serve``, with one fault each, read back
on chain with independent clients. Every accepted launch must be confirmed exactly once.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.pg_cluster import require_initdb

CHAOS = Path(__file__).resolve().parents[2] / "bench" / "chaos.py"
LAUNCHES = 20


def run_chaos(*args: str) -> dict:
    """Runs the runner; returns its last stdout line (the report), checking the exit code agrees."""
    proc = subprocess.run(
        [sys.executable, str(CHAOS), "--tokens", str(LAUNCHES), "--timeout-s", "120", *args],
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert proc.returncode in (0, 1), f"the run could not be carried out:\n{proc.stderr[-4000:]}"
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert proc.returncode == (0 if report["lost"] == report["doubled"] == 0 else 1)
    return report


def assert_every_launch_confirmed_once(report: dict) -> None:
    summary = {k: report[k] for k in ("accepted", "confirmed", "failed", "dead", "lost", "doubled")}
    assert summary == {"accepted": LAUNCHES, "confirmed": LAUNCHES, "failed": 0, "dead": 0, "lost": 0, "doubled": 0}, (
        report
    )


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_server_killed_mid_launches_loses_and_doubles_nothing(database):
    if database == "postgres":
        require_initdb()
    report = run_chaos("--scenario", "kill-server", "--kills", "1", "--database", database)
    assert report["faults_injected"] == 1
    assert report["faults"][0]["accepted_before"] < LAUNCHES, "the kill must land while launches are being sent"
    assert_every_launch_confirmed_once(report)


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize(("database", "outage_s"), [("sqlite", 12), ("postgres", 6)])
def test_database_outage_mid_launches_loses_and_doubles_nothing(database, outage_s):
    """SQLite's outage outlasts the server's busy timeout, so its transactions fail, not only wait."""
    if database == "postgres":
        require_initdb()
    report = run_chaos("--scenario", "db-outage", "--outage-s", str(outage_s), "--database", database)
    assert report["faults_injected"] == 1 and report["faults"][0]["down_s"] >= outage_s
    assert report["faults"][0]["accepted_before"] < LAUNCHES
    assert_every_launch_confirmed_once(report)
