#!/usr/bin/env python
"""Chaos runner: launch tokens through a real ``tokenforge serve`` while one fault is injected,
then check every launch on its chain with independent clients.

Starts a ``tokenforge devnet`` process (EVM and Solana JSON-RPC), a database (the SQLite
default, or ``--database postgres``: a temporary cluster owned by this runner) and
``tokenforge serve`` on a fresh data directory. It drives ``--tokens`` launches through the
HTTP API, spread evenly over ``--chains``, with at most ``--concurrency`` in flight, injects
the scenario's fault, waits until every job is final, and checks each token on its chain
from outside the server: web3.py reads the ERC-20 (code present; name, symbol, totalSupply
and the creator's balance as requested), solana-py and an independent decoder read the Token-2022 mint.

Scenarios:

  kill-server  ``kill -9`` the server ``--kills`` times while launches are in flight (each
               time ``--kill-every-accepted`` more launches were accepted, default
               tokens/(kills+1), or every ``--kill-interval-s``) and start it again at once
               on the same data directory and database.
  db-outage    the database goes away for ``--outage-s`` once half the launches are accepted
               and comes back; the server is not restarted. PostgreSQL: the cluster is stopped
               with ``pg_ctl -m immediate`` and started again on the same data and port.
               SQLite: another process takes the file's write lock (``BEGIN EXCLUSIVE``) and
               holds it; the server's transactions (all ``BEGIN IMMEDIATE``) wait their busy
               timeout and fail with "database is locked" until it is released.

The client behaves as a well-written API client: each launch has one Idempotency-Key, and a
request whose connection failed or that was answered 429 or 5xx is sent again with the same
key and body, after the answer's Retry-After (else an exponential backoff), for up to
``--timeout-s``. Other answers are final for that launch ("refused").

If the server exits by itself, the runner stops waiting (``server_crashes``), lets the
fault finish and starts the server again only to read the results back.

Counting. ``accepted``: distinct jobs, whether the client saw the 202 or not (the server's
token list is read back per creator; every launch has its own fresh creator). ``confirmed``,
``failed``, ``dead``: final job states. ``lost``: accepted jobs that are not final
``--timeout-s`` after the fault ended and the last launch was answered, that the server no
longer knows, or that are confirmed but whose token is not on chain as requested.
``doubled``: launches (one Idempotency-Key) that became more than one job or more than one
token on chain (EVM: ``Transfer`` events from the zero address to the creator; Solana:
successful transactions naming the creator).

The LAST stdout line is one JSON object: those keys, ``scenario``, ``faults_injected`` and
``wall_s`` (first launch sent → all final) first, then details: ``unaccepted`` launches
(refused or no 202 in time, by answer), the parts of ``lost``, ``retries`` and their
reasons, create latency of the answered attempt (``create_p50_ms``, ``create_p99_ms``),
server-side ``e2e_s`` per chain (job finished − created), ``settled_s`` (end of the last
fault → all final) and each fault with its timings. Progress goes to stderr. Exit code 0
when lost == doubled == 0, else 1; 2 (and no JSON) when the run could not be carried out
(a process did not start, the fault could not be injected or undone).

Processes and databases: ``chaos_targets.py``; the independent chain reads: ``chaos_readers.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]  # chaos_*.py beside this file; tests/support

import httpx  # noqa: E402
from chaos_readers import reader_for  # noqa: E402
from chaos_targets import Child, PostgresDatabase, SqliteDatabase, wait_http  # noqa: E402
from eth_account import Account  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: E402
from solders.keypair import Keypair  # noqa: E402
from tests.support.pg_cluster import PostgresUnavailable  # noqa: E402
from tests.support.server import free_port  # noqa: E402

REQUEST_TIMEOUT_S = 30.0
SUPPLY = 1_000_000
DECIMALS = {"solana": 9}  # EVM chains: 18
err = Console(stderr=True)


# ----------------------------------------------------------------------------- the client
@dataclass
class Launch:
    index: int
    chain: str
    key: str
    body: dict
    job_ids: set[str] = field(default_factory=set)
    refused: str | None = None
    attempts: int = 0
    create_ms: float | None = None
    retry_reasons: Counter = field(default_factory=Counter)

    @property
    def creator(self) -> str:
        return self.body["creator"]

    @property
    def name(self) -> str:
        return self.body["name"]

    @property
    def symbol(self) -> str:
        return self.body["symbol"]

    @property
    def decimals(self) -> int:
        return self.body["decimals"]

    @property
    def supply_base_units(self) -> int:
        return SUPPLY * 10**self.decimals


def make_launches(tokens: int, chains: list[str]) -> list[Launch]:
    tag = secrets.token_hex(3)
    launches = []
    for i in range(tokens):
        chain = chains[i % len(chains)]
        creator = str(Keypair().pubkey()) if chain == "solana" else Account.create().address
        body = {
            "chain": chain,
            "name": f"Chaos {tag} {i}",
            "symbol": f"CH{i}",
            "decimals": DECIMALS.get(chain, 18),
            "supply": str(SUPPLY),
            "creator": creator,
        }
        launches.append(Launch(i, chain, f"chaos-{tag}-{i}", body))
    return launches


def retry_after_s(resp: httpx.Response) -> float | None:
    try:
        return max(0.0, float(resp.headers["retry-after"]))
    except (KeyError, ValueError):
        return None


async def post_launch(client: httpx.AsyncClient, launch: Launch, deadline: float) -> bool:
    """POST until a 202 (True) or a final refusal/the deadline (False); same key and body every time."""
    backoff_s = 0.1
    while True:
        launch.attempts += 1
        started = time.perf_counter()
        wait_s = None
        try:
            resp = await client.post("/v1/tokens", json=launch.body, headers={"Idempotency-Key": launch.key})
        except httpx.TransportError as exc:
            launch.retry_reasons[type(exc).__name__] += 1  # the server is down or cut the connection
        else:
            if resp.status_code == 202:
                launch.job_ids.add(resp.json()["job"]["id"])
                launch.create_ms = (time.perf_counter() - started) * 1000
                return True
            if resp.status_code != 429 and resp.status_code < 500:
                launch.refused = str(resp.status_code)
                err.print(f"launch {launch.index} refused: {resp.status_code} {resp.text[:300]}")
                return False
            wait_s = retry_after_s(resp)
            launch.retry_reasons[f"{resp.status_code}{'+Retry-After' if wait_s is not None else ''}"] += 1
        if time.monotonic() >= deadline:
            launch.refused = "no_202_before_deadline"
            return False
        await asyncio.sleep(min(wait_s if wait_s is not None else backoff_s, max(0.0, deadline - time.monotonic())))
        backoff_s = min(backoff_s * 2, 2.0)


async def count_pending(client: httpx.AsyncClient) -> int | None:
    """Tokens whose launch is not final, or None when the server cannot say right now."""
    count, cursor = 0, None
    try:
        while True:
            params = {"status": "pending", "limit": 200, **({"cursor": cursor} if cursor else {})}
            resp = await client.get("/v1/tokens", params=params, timeout=5)
            if resp.status_code != 200:
                return None
            page = resp.json()
            count += len(page["items"])
            if not (cursor := page["next_cursor"]):
                return count
    except httpx.TransportError:
        return None


async def get_with_retries(client: httpx.AsyncClient, url: str, **params) -> httpx.Response:
    """A read that outlasts a busy or recovering server (404 is an answer)."""
    for attempt in range(30):
        try:
            resp = await client.get(url, params=params or None)
            if resp.status_code < 500 and resp.status_code != 429:
                return resp
        except httpx.TransportError:
            pass
        await asyncio.sleep(min(0.1 * 2**attempt, 2.0))
    raise RuntimeError(f"GET {url} kept failing")


async def server_tokens_by_creator(client: httpx.AsyncClient) -> dict[str, list[dict]]:
    found, cursor = defaultdict(list), None
    while True:
        page = (
            await get_with_retries(client, "/v1/tokens", limit=200, **({"cursor": cursor} if cursor else {}))
        ).json()
        for token in page["items"]:
            found[token["creator"]].append(token)
        if not (cursor := page["next_cursor"]):
            return found


# ----------------------------------------------------------------------------- the run
class Run:
    """What the driver, the fault and the waiting share."""

    def __init__(self, args: argparse.Namespace, server: Child, base_url: str, db, progress: Progress) -> None:
        self.args, self.server, self.base_url, self.db, self.progress = args, server, base_url, db, progress
        self.accepted = 0
        self.changed = asyncio.Condition()
        self.driving_done = False
        self.faults: list[dict] = []
        self.server_crashes = 0
        self.started = time.monotonic()
        self.accepted_task = progress.add_task("accepted", total=args.tokens)
        self.final_task = progress.add_task("final", total=args.tokens)

    def elapsed_s(self) -> float:
        return round(time.monotonic() - self.started, 2)

    def say(self, text: str) -> None:
        self.progress.console.print(f"[{self.elapsed_s():7.2f}s] {text}")

    async def one_accepted(self) -> None:
        async with self.changed:
            self.accepted += 1
            self.progress.update(self.accepted_task, completed=self.accepted)
            self.changed.notify_all()

    async def driving_finished(self) -> None:
        async with self.changed:
            self.driving_done = True
            self.changed.notify_all()

    async def until_accepted(self, n: int) -> None:
        async with self.changed:
            await self.changed.wait_for(lambda: self.accepted >= n or self.driving_done)

    async def restart_server(self) -> float:
        started = time.monotonic()
        self.server.start()
        await wait_http(f"{self.base_url}/readyz", self.server)
        return round(time.monotonic() - started, 2)


async def kill_server(run: Run) -> None:
    args = run.args
    every = args.kill_every_accepted or max(1, args.tokens // (args.kills + 1))
    for _ in range(args.kills):
        if args.kill_interval_s:
            await asyncio.sleep(args.kill_interval_s)
        else:
            await run.until_accepted(run.accepted + every)
        at_s, accepted = run.elapsed_s(), run.accepted
        run.server.kill()
        run.say(f"kill -9 server ({accepted} launches accepted)")
        back_s = await run.restart_server()
        run.say(f"server back after {back_s} s")
        run.faults.append(
            {
                "fault": "kill -9 server",
                "at_s": at_s,
                "accepted_before": accepted,
                "back_after_s": back_s,
                "ended_at_s": run.elapsed_s(),
            }
        )


async def db_outage(run: Run) -> None:
    await run.until_accepted(run.args.tokens // 2)
    accepted = run.accepted
    await run.db.go_down()
    at_s = run.elapsed_s()
    run.say(f"{run.db.name} down ({accepted} launches accepted)")
    await asyncio.sleep(run.args.outage_s)
    await run.db.come_back()
    down_s = round(run.elapsed_s() - at_s, 2)
    run.say(f"{run.db.name} back after {down_s} s")
    run.faults.append(
        {
            "fault": f"{run.db.name} outage",
            "at_s": at_s,
            "accepted_before": accepted,
            "down_s": down_s,
            "ended_at_s": run.elapsed_s(),
        }
    )


SCENARIOS = {"kill-server": kill_server, "db-outage": db_outage}


async def drive(run: Run, client: httpx.AsyncClient, launches: list[Launch]) -> None:
    sem = asyncio.Semaphore(run.args.concurrency)
    deadline = time.monotonic() + run.args.timeout_s

    async def one(launch: Launch) -> None:
        async with sem:
            if await post_launch(client, launch, deadline):
                await run.one_accepted()

    await asyncio.gather(*(one(launch) for launch in launches))
    await run.driving_finished()


async def wait_all_final(run: Run, client: httpx.AsyncClient, fault: asyncio.Task) -> bool:
    """Until no launch is pending (True), the deadline (False) or an unexpected server exit (False)."""
    deadline = None
    while True:
        if fault.done() and fault.exception() is not None:
            return False  # re-raised by the caller
        if deadline is None and run.driving_done and fault.done():
            deadline = time.monotonic() + run.args.timeout_s
        if run.server.exit_code() is not None:  # never while a kill is undone: kill and start have no await between
            run.server_crashes += 1
            run.say(f"[red]the server exited by itself ({run.server.exit_code()}):[/]\n{run.server.log_tail(1500)}")
            return False
        pending = await count_pending(client)
        if pending is not None:
            run.progress.update(run.final_task, completed=max(0, run.accepted - pending))
            if pending == 0 and deadline is not None:
                return True
        if deadline is not None and time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.5)


# ----------------------------------------------------------------------------- independent checks
async def verify(client: httpx.AsyncClient, launches: list[Launch], chains: dict) -> dict:
    """Read every job back and every launch on its chain; returns the counts of the report."""
    by_creator = await server_tokens_by_creator(client)
    for reader in chains.values():
        await reader.load()
    counts: Counter = Counter()
    errors: Counter = Counter()
    e2e_s: dict[str, list[float]] = defaultdict(list)
    sem = asyncio.Semaphore(16)

    async def one(launch: Launch) -> None:
        async with sem:
            job_ids = launch.job_ids | {t["job_id"] for t in by_creator.get(launch.creator, [])}
            counts["accepted"] += len(job_ids)
            counts["unaccepted"] += not job_ids
            reader = chains[launch.chain]
            on_chain = await reader.tokens_of(launch.creator)
            counts["doubled"] += len(job_ids) > 1 or on_chain > 1
            for job_id in job_ids:
                resp = await get_with_retries(client, f"/v1/jobs/{job_id}")
                if resp.status_code == 404:
                    counts["lost"] += 1
                    counts["unknown_to_server"] += 1
                    continue
                job = resp.json()
                if not job["final"]:
                    counts["lost"] += 1
                    counts["not_final"] += 1
                    continue
                counts[job["status"]] += 1
                if job["status"] != "confirmed":
                    errors[(job.get("error") or {}).get("code") or job["status"]] += 1
                    counts["failed_but_on_chain"] += on_chain > 0
                    continue
                e2e_s[launch.chain].append(
                    (
                        datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(job["created_at"])
                    ).total_seconds()
                )
                problem = await reader.check(job["token_address"], launch) if job["token_address"] else "missing"
                if problem is None and on_chain == 0:  # the address holds it, yet no launch of this creator landed
                    problem = "wrong: no launch transaction of this creator on chain"
                if problem is not None:
                    counts["lost"] += 1
                    counts["missing_on_chain" if problem == "missing" else "wrong_on_chain"] += 1
                    err.print(f"job {job_id} ({launch.chain}) confirmed but {problem}")

    await asyncio.gather(*(one(launch) for launch in launches))
    e2e = {
        chain: {"p50": percentile(v, 50), "p99": percentile(v, 99), "max": round(max(v), 1)}
        for chain, v in sorted(e2e_s.items())
    }
    return {**counts, "errors": dict(errors), "e2e_s": e2e}


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))], 1)


# ----------------------------------------------------------------------------- main
def chain_settings(chains: list[str], devnet_url: str) -> dict:
    settings = {}
    for chain in chains:
        endpoint = [f"{devnet_url}/{chain}"]
        if chain == "solana":
            settings[chain] = {"network": "local", "endpoints": endpoint, "dev_fund_base_units": 10**15}
        else:
            settings[chain] = {
                "network": "local",
                "endpoints": endpoint,
                "deployer_keys": 4,
                "dev_fund_base_units": 10**24,
            }
    return settings


async def run_scenario(args: argparse.Namespace) -> dict:
    chains = [c.strip() for c in args.chains.split(",") if c.strip()]
    workdir = Path(tempfile.mkdtemp(prefix="tokenforge-chaos-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENFORGE_")}
    devnet_port, server_port = free_port(), free_port()
    devnet_url, base_url = f"http://127.0.0.1:{devnet_port}", f"http://127.0.0.1:{server_port}"
    devnet = Child(
        [
            sys.executable,
            "-m",
            "tokenforge",
            "devnet",
            "--port",
            str(devnet_port),
            "--data-dir",
            str(workdir / "devnet"),
            "--chains",
            ",".join(chains),
        ],
        env,
        workdir / "devnet.log",
    )
    db = None
    server = None
    try:
        db = PostgresDatabase() if args.database == "postgres" else SqliteDatabase(workdir / "data" / "tokenforge.db")
        server_env = {
            **env,
            **db.env,
            "TOKENFORGE_DATA_DIR": str(workdir / "data"),
            "TOKENFORGE_LOG_LEVEL": "WARNING",
            "TOKENFORGE_CHAINS": json.dumps(chain_settings(chains, devnet_url)),
        }
        server = Child(
            [sys.executable, "-m", "tokenforge.cli.main", "serve", "--port", str(server_port)],
            server_env,
            workdir / "server.log",
        )
        devnet.start()
        await wait_http(f"{devnet_url}/health", devnet)
        server.start()
        await wait_http(f"{base_url}/readyz", server)
        launches = make_launches(args.tokens, chains)
        progress = Progress(
            TextColumn("{task.description:>9}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
        )
        limits = httpx.Limits(max_connections=args.concurrency + 4, max_keepalive_connections=args.concurrency + 4)
        with progress:
            async with httpx.AsyncClient(base_url=base_url, timeout=REQUEST_TIMEOUT_S, limits=limits) as client:
                run = Run(args, server, base_url, db, progress)
                run.say(
                    f"{args.scenario}: {args.tokens} launches on {', '.join(chains)}, {db.name}, work dir {workdir}"
                )
                fault = asyncio.create_task(SCENARIOS[args.scenario](run))
                driver = asyncio.create_task(drive(run, client, launches))
                await wait_all_final(run, client, fault)
                wall_s = run.elapsed_s()
                driver.cancel()
                await fault  # raises if the fault itself could not be injected or undone
                if server.exit_code() is not None:
                    run.say("starting the server again only to read the results")
                    await run.restart_server()
                readers = {c: reader_for(c, f"{devnet_url}/{c}") for c in chains}
                try:
                    counts = await verify(client, launches, readers)
                finally:
                    for reader in readers.values():
                        await reader.close()
        create_ms = [launch.create_ms for launch in launches if launch.create_ms is not None]
        refused = Counter(launch.refused for launch in launches if launch.refused)
        return {
            "scenario": args.scenario,
            "accepted": counts.get("accepted", 0),
            "confirmed": counts.get("confirmed", 0),
            "failed": counts.get("failed", 0),
            "dead": counts.get("dead", 0),
            "lost": counts.get("lost", 0),
            "doubled": counts.get("doubled", 0),
            "faults_injected": len(run.faults),
            "wall_s": wall_s,
            "database": db.name,
            "chains": chains,
            "launches": args.tokens,
            "unaccepted": counts.get("unaccepted", 0),
            "refused": dict(refused),
            "not_final": counts.get("not_final", 0),
            "unknown_to_server": counts.get("unknown_to_server", 0),
            "missing_on_chain": counts.get("missing_on_chain", 0),
            "wrong_on_chain": counts.get("wrong_on_chain", 0),
            "failed_but_on_chain": counts.get("failed_but_on_chain", 0),
            "errors": counts["errors"],
            "e2e_s": counts["e2e_s"],
            "settled_s": round(wall_s - max((f["ended_at_s"] for f in run.faults), default=0.0), 2),
            "server_crashes": run.server_crashes,
            "retries": sum(launch.attempts - 1 for launch in launches),
            "retry_reasons": dict(sum((launch.retry_reasons for launch in launches), Counter())),
            "create_p50_ms": percentile(create_ms, 50),
            "create_p99_ms": percentile(create_ms, 99),
            "faults": run.faults,
        }
    finally:
        for child in (server, devnet):
            if child is not None:
                child.stop()
        if db is not None:
            await db.close()
        if args.keep:
            err.print(f"work dir kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), required=True)
    parser.add_argument("--tokens", type=int, default=200, help="launches to drive (default 200)")
    parser.add_argument("--chains", default="ethereum,solana", help="launches are spread evenly over these")
    parser.add_argument("--concurrency", type=int, default=16, help="launches in flight at once (default 16)")
    parser.add_argument(
        "--database",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="sqlite (the embedded default) or a temporary PostgreSQL cluster",
    )
    parser.add_argument("--kills", type=int, default=3, help="kill-server: how many times (default 3)")
    parser.add_argument(
        "--kill-every-accepted",
        type=int,
        default=None,
        help="kill-server: kill after every K more accepted launches (default tokens/(kills+1))",
    )
    parser.add_argument(
        "--kill-interval-s",
        type=float,
        default=None,
        help="kill-server: kill every S seconds instead (the server's restart time included)",
    )
    parser.add_argument("--outage-s", type=float, default=15.0, help="db-outage: how long the database is away")
    parser.add_argument(
        "--timeout-s",
        type=float,
        default=300.0,
        help="time a launch keeps being retried, and every job has to become final after the "
        "fault is over and the last launch was answered (default 300)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, data) and print its path")
    args = parser.parse_args(argv)
    chains = [c.strip() for c in args.chains.split(",") if c.strip()]
    if not chains or not set(chains) <= {"ethereum", "bsc", "base", "solana"}:
        parser.error("--chains: a comma-separated list of ethereum, bsc, base, solana")
    if args.tokens < 1 or args.concurrency < 1 or args.kills < 0 or args.outage_s < 0:
        parser.error("--tokens and --concurrency must be positive, --kills and --outage-s not negative")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = asyncio.run(run_scenario(args))
    except PostgresUnavailable as exc:
        err.print(f"[red]--database postgres:[/] {exc}")
        return 2
    except RuntimeError as exc:  # a process did not start, or the fault could not be injected or undone
        err.print(f"[red]chaos run aborted:[/] {exc}")
        return 2
    print(json.dumps(result), flush=True)
    return 0 if result["lost"] == 0 and result["doubled"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
