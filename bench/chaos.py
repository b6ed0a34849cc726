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

Cluster scenarios (``chaos_cluster.py``: PostgreSQL, RabbitMQ, Redis, the devnet, 2 API
processes behind HAProxy, 2 relays, 2 workers, every one a real process on 127.0.0.1):

  cluster      ``kill -9`` a worker, a relay and an API process at random moments (each
               started again after a moment, as a supervisor would) and restart RabbitMQ
               and Redis once each while launches are driven through HAProxy.
  broker-down  RabbitMQ is stopped for ``--outage-s``: creates keep being accepted (into
               the outbox) meanwhile, and everything drains once it is back.
  cache-down   Redis is stopped for ``--outage-s``: reads keep being answered.

They add ``kills``, ``restarts`` (of RabbitMQ and Redis), ``reads`` and ``read_errors``:
token detail and list GETs a reader sends through HAProxy during the whole run, failed
when not answered 200.

Processes and databases: ``chaos_targets.py`` and ``tests/support/cluster.py``; the client
and the counting: ``chaos_client.py``; the independent chain reads: ``chaos_readers.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]  # chaos_*.py beside this file; tests/support

import httpx  # noqa: E402
from chaos_client import (  # noqa: E402
    REQUEST_TIMEOUT_S,
    Run,
    chain_settings,
    drive,
    err,
    make_launches,
    progress_bars,
    report,
    verify,
    wait_all_final,
)
from chaos_readers import reader_for  # noqa: E402
from chaos_targets import Child, PostgresDatabase, SqliteDatabase, wait_http  # noqa: E402
from rich.progress import Progress  # noqa: E402
from tests.support.auth import env_key  # noqa: E402
from tests.support.pg_cluster import PostgresUnavailable  # noqa: E402
from tests.support.server import free_port  # noqa: E402


class ServerRun(Run):
    """A run against one ``tokenforge serve``; it must not exit by itself."""

    def __init__(self, args: argparse.Namespace, server: Child, base_url: str, db, progress: Progress) -> None:
        super().__init__(args, progress)
        self.server, self.base_url, self.db = server, base_url, db
        self.server_crashes = 0

    def supervise(self) -> bool:
        if self.server.exit_code() is not None:  # never while a kill is undone: kill and start have no await between
            self.server_crashes += 1
            self.say(f"[red]the server exited by itself ({self.server.exit_code()}):[/]\n{self.server.log_tail(1500)}")
            return False
        return True

    async def restart_server(self) -> float:
        started = time.monotonic()
        self.server.start()
        await wait_http(f"{self.base_url}/readyz", self.server)
        return round(time.monotonic() - started, 2)


async def kill_server(run: ServerRun) -> None:
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


async def db_outage(run: ServerRun) -> None:
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


SERVER_SCENARIOS = {"kill-server": kill_server, "db-outage": db_outage}
CLUSTER_SCENARIOS = ("cluster", "broker-down", "cache-down")  # chaos_cluster.py


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
            "TOKENFORGE_RATE_LIMITS_ENABLED": "false",  # one client, raw throughput
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
        headers = {"Authorization": f"Bearer {await asyncio.to_thread(env_key, server_env)}"}
        launches = make_launches(args.tokens, chains)
        progress = progress_bars()
        limits = httpx.Limits(max_connections=args.concurrency + 4, max_keepalive_connections=args.concurrency + 4)
        with progress:
            async with httpx.AsyncClient(
                base_url=base_url, timeout=REQUEST_TIMEOUT_S, limits=limits, headers=headers
            ) as client:
                run = ServerRun(args, server, base_url, db, progress)
                run.say(
                    f"{args.scenario}: {args.tokens} launches on {', '.join(chains)}, {db.name}, work dir {workdir}"
                )
                fault = asyncio.create_task(SERVER_SCENARIOS[args.scenario](run))
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
        return {
            **report(args, run, launches, counts, wall_s),
            "database": db.name,
            "server_crashes": run.server_crashes,
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
    parser.add_argument("--scenario", choices=sorted([*SERVER_SCENARIOS, *CLUSTER_SCENARIOS]), required=True)
    parser.add_argument(
        "--tokens", "--launches", dest="tokens", type=int, default=200, help="launches to drive (default 200)"
    )
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
    parser.add_argument(
        "--outage-s",
        type=float,
        default=15.0,
        help="db-outage, broker-down, cache-down: how long the database, RabbitMQ or Redis is away (default 15)",
    )
    cluster = parser.add_argument_group("cluster scenarios")
    cluster.add_argument("--seed", type=int, default=None, help="cluster: seed of the fault moments (default: random)")
    cluster.add_argument(
        "--read-rate", type=float, default=40.0, help="token reads per second sent during the run (default 40)"
    )
    cluster.add_argument(
        "--postgres",
        choices=["own", "shared"],
        default="own",
        help="a throw-away PostgreSQL cluster (default) or a fresh database on the server at 127.0.0.1:5432",
    )
    cluster.add_argument(
        "--worker-concurrency", type=int, default=None, help="launches per chain one worker handles at once"
    )
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
        if args.scenario in CLUSTER_SCENARIOS:
            from chaos_cluster import run_cluster_scenario

            result = asyncio.run(run_cluster_scenario(args))
        else:
            result = asyncio.run(run_scenario(args))
    except PostgresUnavailable as exc:
        err.print(f"[red]--database postgres:[/] {exc}")
        return 2
    except RuntimeError as exc:  # a process did not start, or the fault could not be injected or undone
        err.print(f"[red]chaos run aborted:[/] {exc}")
        return 2
    except KeyboardInterrupt:  # everything started was stopped and removed on the way out
        err.print("[red]chaos run interrupted[/]")
        return 130
    print(json.dumps(result), flush=True)
    return 0 if result["lost"] == 0 and result["doubled"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
