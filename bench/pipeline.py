#!/usr/bin/env python
"""Launch N tokens through the HTTP API and print figures.

Starts ``tokenforge serve`` in a subprocess on a free port with a fresh data directory
(unless --api points at a running server), POSTs N launches with bounded concurrency,
waits until every job is final, and prints, as its LAST line, one JSON object:

    chain, network, deployer_keys, tokens, confirmed, failed, accepted_per_s,
    confirmed_per_s, create_p50_ms, create_p99_ms, e2e_p50_ms, e2e_p99_ms, gas_per_launch,
    cpu_ms_per_launch, node_cpu_ms_per_launch

``--network embedded`` (default) uses the in-process chains. ``--network hardhat`` starts
a Hardhat node (EVM chains) and ``--network devnet`` a ``tokenforge devnet`` process, and
the server reaches them over JSON-RPC through its RPC pool, exactly as it reaches a real
network; ``--deployer-keys K`` spreads EVM launches over K keys.

``--stack cluster`` (with ``--network devnet``) runs the same launches through HAProxy in
front of ``--apis`` ``tokenforge api`` processes, ``--relays`` relays and ``--workers``
workers on PostgreSQL (a throw-away cluster), RabbitMQ (a vhost on the server at
127.0.0.1:5672) and Redis (``tests/support/cluster.py``), and adds ``stack``, ``cluster``
and ``cpu_ms_per_launch_by_kind``: api, relay, worker, postgres, rabbitmq (the broker's
``beam.smp``: it serves every vhost), redis, devnet, haproxy and the load generator (this
process).

e2e is server-side (job finished_at − created_at); cpu_ms_per_launch is the TokenForge
processes' user+system CPU time (the server, or the cluster's API, relay and worker
processes) divided by N (null with --api); node_cpu_ms_per_launch is the chain node's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for tests/support

import httpx
from eth_account import Account
from solders.keypair import Keypair
from tests.support.auth import env_key
from tests.support.cluster import Cluster, tree_cpu_s
from tests.support.server import free_port


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def creator_for(chain: str) -> str:
    return str(Keypair().pubkey()) if chain == "solana" else Account.from_key(secrets.token_bytes(32)).address


async def wait_ready(client: httpx.AsyncClient, proc: subprocess.Popen | None, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            if (await client.get("/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.2)
    raise SystemExit("server did not become ready")


REPO = Path(__file__).resolve().parents[1]


def wait_rpc(url: str, proc: subprocess.Popen, payload: dict, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"chain node exited with {proc.returncode}")
        try:
            if httpx.post(url, json=payload, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"chain node at {url} did not answer")


def start_node(args: argparse.Namespace, workdir: str) -> tuple[subprocess.Popen | None, str | None]:
    """Starts the chain node --network asks for; returns it and the chain's RPC URL."""
    port = free_port()
    if args.network == "hardhat":
        if args.chain == "solana":
            raise SystemExit("Hardhat serves EVM chains only; use --network devnet for Solana")
        env = {**os.environ, "HARDHAT_DISABLE_TELEMETRY_PROMPT": "true", "CI": "true"}
        if args.block_ms:
            env["HARDHAT_MINING_INTERVAL_MS"] = str(args.block_ms)
        proc = subprocess.Popen(
            ["npx", "--no-install", "hardhat", "node", "--hostname", "127.0.0.1", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        wait_rpc(url, proc, {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []})
        return proc, url
    if args.network == "devnet":
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tokenforge",
                "devnet",
                "--port",
                str(port),
                "--data-dir",
                os.path.join(workdir, "devnet"),
                "--chains",
                args.chain,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}/{args.chain}"
        method = "getHealth" if args.chain == "solana" else "eth_chainId"
        wait_rpc(url, proc, {"jsonrpc": "2.0", "id": 1, "method": method, "params": []})
        return proc, url
    return None, None


def chain_settings(args: argparse.Namespace, rpc_url: str | None) -> dict:
    if rpc_url is None:
        return {args.chain: {"network": "embedded", "deployer_keys": args.deployer_keys}}
    dev_fund = 10**24 if args.chain != "solana" else 10**15
    return {
        args.chain: {
            "network": "local",
            "endpoints": [rpc_url],
            "deployer_keys": args.deployer_keys,
            "dev_fund_base_units": dev_fund,
        }
    }


def start_server(args: argparse.Namespace, workdir: str, rpc_url: str | None) -> tuple[subprocess.Popen, str]:
    """Starts ``tokenforge serve`` on a free port; returns it and its base URL (not ready yet)."""
    port = free_port()
    env = {
        **os.environ,
        "TOKENFORGE_DATA_DIR": os.path.join(workdir, "data"),
        "TOKENFORGE_CHAINS": json.dumps(chain_settings(args, rpc_url)),
        "TOKENFORGE_LOG_LEVEL": "WARNING",
        "TOKENFORGE_RATE_LIMITS_ENABLED": "false",  # one client, raw throughput
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "tokenforge.cli.main", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    return proc, f"http://127.0.0.1:{port}"


def stop_process(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, 15)
    except (ProcessLookupError, PermissionError):
        proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)


#: CPU seconds so far by process kind (None: not measured).
CpuSample = Callable[[], dict[str, float | None]]
#: Kinds whose CPU is TokenForge's own (``cpu_ms_per_launch``); the chain node's is ``devnet``/``node``.
TOKENFORGE_KINDS = ("server", "api", "relay", "worker")
NODE_KINDS = ("node", "devnet")


def cpu_per_launch(cpu0: dict, cpu1: dict, tokens: int) -> dict:
    """``cpu_ms_per_launch`` (TokenForge's processes), ``node_cpu_ms_per_launch`` and, for the
    cluster, every kind's figure."""

    def per_launch(kinds) -> float | None:
        known = [k for k in kinds if cpu0.get(k) is not None and cpu1.get(k) is not None]
        return round(sum(cpu1[k] - cpu0[k] for k in known) * 1000 / tokens, 2) if known else None

    figures = {
        "cpu_ms_per_launch": per_launch(TOKENFORGE_KINDS),
        "node_cpu_ms_per_launch": per_launch(NODE_KINDS),
    }
    if "api" in cpu0:
        figures["cpu_ms_per_launch_by_kind"] = {k: per_launch([k]) for k in cpu0}
    return figures


def own_cpu_s() -> float:
    """This process's CPU seconds (the load generator), without its children."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run(args: argparse.Namespace) -> dict:
    if args.stack == "cluster":
        return await run_cluster(args)
    proc = None
    node = None
    tmp = None
    base = args.api
    if base is None:
        tmp = tempfile.TemporaryDirectory(prefix="tokenforge-bench-")
        # starting processes (and waiting for the node to answer) blocks: off the event loop
        node, rpc_url = await asyncio.to_thread(start_node, args, tmp.name)
        proc, base = await asyncio.to_thread(start_server, args, tmp.name, rpc_url)

    def cpu_sample() -> dict[str, float | None]:
        return {"server": tree_cpu_s(proc.pid) if proc else None, "node": tree_cpu_s(node.pid) if node else None}

    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    try:
        async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
            await wait_ready(client, proc)
            key = await asyncio.to_thread(env_key, {"TOKENFORGE_DATA_DIR": os.path.join(tmp.name, "data")})
            client.headers["Authorization"] = f"Bearer {key}"
            return await measure(args, client, cpu_sample)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        stop_process(node)
        if tmp is not None:
            tmp.cleanup()


async def run_cluster(args: argparse.Namespace) -> dict:
    """The same launches through HAProxy in front of the cluster of ``tests/support/cluster.py``
    (2 API processes, 2 relays, 2 workers, PostgreSQL, RabbitMQ, Redis, the devnet)."""

    def settings(chains: list[str], devnet_url: str) -> dict:
        return chain_settings(args, f"{devnet_url}/{args.chain}")

    cluster = Cluster(
        chains=[args.chain],
        chain_settings=settings,
        apis=args.apis,
        relays=args.relays,
        workers=args.workers,
        worker_concurrency=args.worker_concurrency,
        postgres=args.postgres,
        say=lambda text: print(text, file=sys.stderr),
    )

    def cpu_sample() -> dict[str, float | None]:
        return {**cluster.cpu_s_by_kind(), "load_generator": own_cpu_s()}

    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with (
        cluster,
        httpx.AsyncClient(base_url=cluster.base_url, timeout=60, limits=limits, headers=cluster.headers) as client,
    ):
        await wait_ready(client, None)
        result = await measure(args, client, cpu_sample)
    return {**result, "stack": "cluster", "cluster": {k: getattr(args, k) for k in ("apis", "relays", "workers")}}


async def measure(args: argparse.Namespace, client: httpx.AsyncClient, cpu_sample: CpuSample) -> dict:
    """Warm up, drive ``args.tokens`` launches, wait until all are final; the JSON line's figures."""
    # warm-up launch: opens the chain (factory deployment etc.) outside the measurement
    await client.post(
        "/v1/tokens",
        json={
            "chain": args.chain,
            "name": "Warm Up",
            "symbol": "WARM",
            "supply": 1,
            "creator": creator_for(args.chain),
        },
    )
    cpu0 = cpu_sample()
    sem = asyncio.Semaphore(args.concurrency)
    create_ms: list[float] = []
    job_ids: list[str] = []

    async def one(i: int) -> None:
        body = {
            "chain": args.chain,
            "name": f"Bench Token {i}",
            "symbol": f"B{i}",
            "supply": "1000000000",
            "creator": creator_for(args.chain),
        }
        async with sem:
            t0 = time.perf_counter()
            resp = await client.post("/v1/tokens", json=body)
            create_ms.append((time.perf_counter() - t0) * 1000)
        if resp.status_code != 202:
            raise SystemExit(f"launch refused: {resp.status_code} {resp.text}")
        job_ids.append(resp.json()["job"]["id"])

    started = time.perf_counter()
    if args.rate:
        # open loop: launches arrive at a fixed rate whatever the latency, as users do
        tasks = []
        for i in range(args.tokens):
            delay = started + i / args.rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    else:
        await asyncio.gather(*(one(i) for i in range(args.tokens)))
    accepted_s = time.perf_counter() - started
    deadline = time.monotonic() + args.timeout_s
    while time.monotonic() < deadline:  # cheap: one indexed query per poll
        page = (await client.get("/v1/tokens", params={"status": "pending", "limit": 1})).json()
        if not page["items"]:
            break
        await asyncio.sleep(0.1)
    cpu1 = cpu_sample()
    jobs: dict[str, dict] = {}
    errors: dict[str, int] = {}
    for i in range(0, len(job_ids), 100):
        results = await asyncio.gather(*(client.get(f"/v1/jobs/{j}") for j in job_ids[i : i + 100]))
        for resp in results:
            job = resp.json()
            if job["final"]:
                jobs[job["id"]] = job
            if job["status"] != "confirmed":
                code = (job.get("error") or {}).get("code") or job["status"]
                errors[code] = errors.get(code, 0) + 1
    finished_s = time.perf_counter() - started
    confirmed = [j for j in jobs.values() if j["status"] == "confirmed"]
    e2e = [
        (datetime.fromisoformat(j["finished_at"]) - datetime.fromisoformat(j["created_at"])).total_seconds() * 1000
        for j in confirmed
    ]
    gas = None
    if args.chain != "solana" and confirmed:
        sample = confirmed[: min(len(confirmed), 200)]
        tokens = await asyncio.gather(*(client.get(f"/v1/tokens/{j['token_id']}") for j in sample))
        used = [t.json()["gas_used"] for t in tokens if t.json()["gas_used"]]
        gas = round(sum(used) / len(used)) if used else None
    last_confirm = max((datetime.fromisoformat(j["finished_at"]) for j in confirmed), default=None)
    first_create = min((datetime.fromisoformat(j["created_at"]) for j in jobs.values()), default=None)
    span_s = (last_confirm - first_create).total_seconds() if last_confirm and first_create else finished_s
    return {
        "chain": args.chain,
        "network": args.network,
        "deployer_keys": args.deployer_keys,
        "tokens": args.tokens,
        "confirmed": len(confirmed),
        "failed": args.tokens - len(confirmed),
        "errors": errors,
        "accepted_per_s": round(args.tokens / accepted_s, 1),
        "confirmed_per_s": round(len(confirmed) / span_s, 1) if span_s > 0 else None,
        "create_p50_ms": round(percentile(create_ms, 50), 2),
        "create_p99_ms": round(percentile(create_ms, 99), 2),
        "e2e_p50_ms": round(percentile(e2e, 50), 1) if e2e else None,
        "e2e_p99_ms": round(percentile(e2e, 99), 1) if e2e else None,
        "gas_per_launch": gas,
        **cpu_per_launch(cpu0, cpu1, args.tokens),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chain", choices=["solana", "ethereum", "bsc", "base"], default="solana")
    parser.add_argument("--tokens", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight at once (at most)")
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="open loop: offer this many launches per second (default: as fast as allowed)",
    )
    parser.add_argument(
        "--network",
        choices=["embedded", "hardhat", "devnet"],
        default="embedded",
        help="where the chain runs: in process, a Hardhat node, or a tokenforge devnet (JSON-RPC)",
    )
    parser.add_argument("--deployer-keys", type=int, default=1, help="EVM deployer keys used in parallel")
    parser.add_argument(
        "--block-ms",
        type=int,
        default=None,
        help="Hardhat only: mine a block every N ms instead of one per transaction",
    )
    parser.add_argument("--api", default=None, help="benchmark a running server instead of starting one")
    parser.add_argument(
        "--stack",
        choices=["one", "cluster"],
        default="one",
        help="one: tokenforge serve (one process); cluster: API processes behind HAProxy, relays and "
        "workers on PostgreSQL, RabbitMQ and Redis (needs --network devnet)",
    )
    parser.add_argument("--apis", type=int, default=2, help="cluster: API processes (default 2)")
    parser.add_argument("--relays", type=int, default=2, help="cluster: relay processes (default 2)")
    parser.add_argument("--workers", type=int, default=2, help="cluster: worker processes (default 2)")
    parser.add_argument("--worker-concurrency", type=int, default=None, help="cluster: launches per chain per worker")
    parser.add_argument(
        "--postgres",
        choices=["own", "shared"],
        default="own",
        help="cluster: a throw-away PostgreSQL cluster (default) or a database on the server at 127.0.0.1:5432",
    )
    parser.add_argument("--timeout-s", type=float, default=600)
    args = parser.parse_args()
    if args.stack == "cluster" and (args.network != "devnet" or args.api):
        parser.error("--stack cluster runs on --network devnet and starts its own processes (no --api)")
    result = asyncio.run(run(args))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
