"""The chaos runner's cluster scenarios (``bench/chaos.py``): real PostgreSQL, RabbitMQ, Redis
and devnet, 2 API processes behind HAProxy, 2 relays and 2 workers on 127.0.0.1, with faults
injected while launches over EVM and Solana are driven through HAProxy; every launch read
back on chain with independent clients. Every accepted launch must be confirmed exactly once
and no read through HAProxy may fail.

RabbitMQ is the shared broker at 127.0.0.1:5672 (a vhost per run); the scenarios stop and
start its application, so they must not run beside other tests that use it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_service, require_tool
from tests.support.pg_cluster import require_initdb

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHAOS = Path(__file__).resolve().parents[2] / "bench" / "chaos.py"
#: The issue's size: about 100 s on a 2-core machine shared with other work (docs/benchmarks.md).
CLUSTER_LAUNCHES = 500
OUTAGE_LAUNCHES = 60


@pytest.fixture(autouse=True)
def cluster_services():
    require_initdb()
    require_service("RabbitMQ", "127.0.0.1", 5672)
    for tool, package in (("rabbitmqctl", "rabbitmq-server"), ("redis-server", "redis-server"), ("haproxy", "haproxy")):
        require_tool(tool, shutil.which(tool), f"Debian package {package}")


def run_chaos(*args: str, timeout_s: float) -> dict:
    """Runs the runner; returns its last stdout line (the report), checking the exit code agrees."""
    proc = subprocess.run(
        [sys.executable, str(CHAOS), "--timeout-s", "240", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    assert proc.returncode in (0, 1), f"the run could not be carried out:\n{proc.stderr[-4000:]}"
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert proc.returncode == (0 if report["lost"] == report["doubled"] == 0 else 1)
    return report


def assert_every_launch_confirmed_once(report: dict, launches: int) -> None:
    summary = {k: report[k] for k in ("accepted", "confirmed", "failed", "dead", "lost", "doubled", "read_errors")}
    expected = {"accepted": launches, "confirmed": launches, "failed": 0, "dead": 0, "lost": 0, "doubled": 0}
    # the reasons first: the whole report is long and the assertion's text is cut
    detail = {k: report.get(k) for k in ("read_error_reasons", "faults")}
    assert summary == {**expected, "read_errors": 0}, (detail, report)
    assert report["reads"] > 0 and report["crashes"] == [], report


@pytest.mark.timeout(1500)
def test_cluster_survives_kills_and_service_restarts_losing_and_doubling_nothing():
    report = run_chaos("--scenario", "cluster", "--launches", str(CLUSTER_LAUNCHES), timeout_s=1440)
    assert (report["kills"], report["restarts"]) == (3, 2), report["faults"]
    killed = {f["fault"] for f in report["faults"] if f["fault"].startswith("kill")}
    assert killed == {"kill -9 worker", "kill -9 relay", "kill -9 api"}
    assert all(f["accepted_before"] < CLUSTER_LAUNCHES for f in report["faults"]), "faults land mid-run"
    assert_every_launch_confirmed_once(report, CLUSTER_LAUNCHES)


@pytest.mark.timeout(900)
def test_creates_are_accepted_while_the_broker_is_down_and_drain_after():
    report = run_chaos(
        "--scenario", "broker-down", "--launches", str(OUTAGE_LAUNCHES), "--outage-s", "15", timeout_s=840
    )
    (outage,) = report["faults"]
    assert outage["down_s"] >= 15
    assert outage["accepted_while_down"] > 0, "creates must keep being accepted into the outbox"
    assert_every_launch_confirmed_once(report, OUTAGE_LAUNCHES)


@pytest.mark.timeout(900)
def test_reads_never_fail_while_the_cache_is_down():
    report = run_chaos(
        "--scenario", "cache-down", "--launches", str(OUTAGE_LAUNCHES), "--outage-s", "10", timeout_s=840
    )
    (outage,) = report["faults"]
    assert outage["down_s"] >= 10 and outage["reads_while_down"] > 0
    assert_every_launch_confirmed_once(report, OUTAGE_LAUNCHES)
