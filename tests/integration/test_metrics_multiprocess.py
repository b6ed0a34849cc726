"""Prometheus multiprocess mode with real processes: counters of every process are summed
in any process's /metrics, and the live gauges of a process that was killed disappear."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import httpx
import pytest

from tests.support.server import free_port

pytestmark = pytest.mark.integration

COUNTING = textwrap.dedent("""
    import sys
    from pathlib import Path
    from tokenforge.config import Settings
    from tokenforge.observability.prometheus import setup_metrics

    setup_metrics(Settings(data_dir=Path(sys.argv[1]), metrics_dir=Path(sys.argv[2])))
    from tokenforge.observability.metrics import LAUNCHES, RPC_BREAKER_OPEN

    LAUNCHES.labels("solana", "accepted").inc(int(sys.argv[3]))
    RPC_BREAKER_OPEN.labels("solana", sys.argv[4]).set(1)
    print("counted", flush=True)
    sys.stdin.readline()  # stay alive until told
""")

SERVING = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from tokenforge.config import Settings
    from tokenforge.observability.prometheus import setup_metrics

    settings = Settings(data_dir=Path(sys.argv[1]), metrics_dir=Path(sys.argv[2]), chains={"solana": "embedded"})
    setup_metrics(settings)
    from tokenforge.bootstrap import build_container
    from tokenforge.observability.health_server import HealthServer

    async def main():
        container = await build_container(settings)
        server = HealthServer(container, port=int(sys.argv[3]), checks=("database", "broker"))
        await server.start()
        print("serving", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        await server.stop()
        await container.close()

    asyncio.run(main())
""")


def _start(script: str, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOKENFORGE_", "PROMETHEUS_"))}
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    line = proc.stdout.readline()  # the child's "ready" line (empty: it died)
    if not line.strip():
        proc.kill()
        raise AssertionError(f"child failed: {proc.stderr.read()[-3000:]}")
    return proc


def _finish(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


@pytest.mark.slow
def test_counters_are_summed_across_processes_and_dead_processes_gauges_vanish(tmp_path):
    metrics_dir = tmp_path / "metrics"
    data = str(tmp_path / "data")
    first = _start(COUNTING, data, str(metrics_dir), "3", "endpoint-a")
    second = _start(COUNTING, data, str(metrics_dir), "4", "endpoint-b")
    port = free_port()
    server = _start(SERVING, data, str(metrics_dir), str(port))
    try:
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/healthz", timeout=5).json() == {"status": "ok"}
        ready = httpx.get(f"{base}/readyz", timeout=5)
        assert ready.status_code == 200 and set(ready.json()["checks"]) == {"database", "broker"}

        seen = _samples(httpx.get(f"{base}/metrics", timeout=5).text)
        assert seen['tokenforge_launches_total{chain="solana",outcome="accepted"}'] == 7.0
        assert seen['tokenforge_rpc_breaker_open{chain="solana",endpoint="endpoint-a"}'] == 1.0
        assert seen['tokenforge_rpc_breaker_open{chain="solana",endpoint="endpoint-b"}'] == 1.0
        assert seen['tokenforge_dependency_up{dependency="database"}'] == 1.0  # the server's own readiness check

        first.send_signal(signal.SIGKILL)
        first.wait()
        seen = _samples(httpx.get(f"{base}/metrics", timeout=5).text)
        assert 'tokenforge_rpc_breaker_open{chain="solana",endpoint="endpoint-a"}' not in seen
        assert seen['tokenforge_rpc_breaker_open{chain="solana",endpoint="endpoint-b"}'] == 1.0
        assert seen['tokenforge_launches_total{chain="solana",outcome="accepted"}'] == 7.0  # counts happened
        assert not list(metrics_dir.glob(f"gauge_live*_{first.pid}.db"))
    finally:
        for proc in (first, second, server):
            _finish(proc)


def test_metrics_created_before_setup_are_refused(tmp_path):
    script = textwrap.dedent(f"""
        from pathlib import Path
        import tokenforge.observability.metrics
        from tokenforge.config import Settings
        from tokenforge.observability.prometheus import setup_metrics
        try:
            setup_metrics(Settings(data_dir=Path({str(tmp_path)!r}), metrics_dir=Path({str(tmp_path / "m")!r})))
        except RuntimeError as exc:
            print("refused:", exc)
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOKENFORGE_", "PROMETHEUS_"))}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env)
    assert "refused: setup_metrics must run before tokenforge.observability.metrics is imported" in done.stdout, (
        done.stderr[-2000:]
    )
