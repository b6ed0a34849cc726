"""The chaos runner's cluster scenarios (``chaos.py --scenario cluster|broker-down|cache-down``).

The cluster (``tests/support/cluster.py``): the devnet, PostgreSQL, RabbitMQ, Redis, 2
``tokenforge api`` processes behind HAProxy, 2 relays and 2 workers, all real processes on
127.0.0.1. Launches are driven through HAProxy exactly as in the one-server scenarios
(``chaos_client.py``), and a reader sends token detail and list GETs through HAProxy at
``--read-rate`` during the whole run: any answer other than 200, or none, is a read error.

* ``cluster``: ``kill -9`` one worker, one relay and one API process (chosen at random),
  each when a random share (10–80 %) of the launches has been accepted, and start each
  again 0.5–3 s later, as a supervisor would; restart RabbitMQ (``stop_app``/``start_app``)
  and Redis (killed, started empty) once each at random moments too. ``--seed`` repeats a
  run's moments.
* ``broker-down``: RabbitMQ stopped for ``--outage-s`` once a third of the launches is
  accepted; the launches accepted meanwhile went into the outbox and must drain after.
* ``cache-down``: Redis stopped for ``--outage-s`` once a third is accepted.

A TokenForge process or server that exits although no fault stopped it is started again (as
a supervisor would) and reported under ``crashes``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import secrets
import time
from collections import Counter

import httpx
from chaos_client import (
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
from chaos_readers import reader_for
from rich.progress import Progress
from tests.support.cluster import Cluster, ClusterError, Proc

READ_TIMEOUT_S = 10.0
READS_IN_FLIGHT = 8


class ClusterRun(Run):
    """A run against the cluster: faults, process supervision and the reader's counts."""

    def __init__(self, args: argparse.Namespace, cluster: Cluster, progress: Progress, rng: random.Random) -> None:
        super().__init__(args, progress)
        self.cluster, self.rng = cluster, rng
        self.kills = 0
        self.restarts = 0
        self.crashes: list[dict] = []
        self.reads = 0
        self.read_errors: Counter = Counter()
        self.busy: set[Proc] = set()  # down on purpose: a fault or the supervisor is starting it again
        self._restarting: set[asyncio.Task] = set()

    def supervise(self) -> bool:
        for proc in self.cluster.crashed():
            if proc not in self.busy:
                self.busy.add(proc)
                self.say(f"[red]{proc.name} exited by itself ({proc.exit_code()}):[/]\n{proc.log_tail(1500)}")
                self.crashes.append({"process": proc.name, "exit_code": proc.exit_code(), "at_s": self.elapsed_s()})
                task = asyncio.create_task(self._start_again(proc))
                self._restarting.add(task)
                task.add_done_callback(self._restarting.discard)
        return True

    async def _start_again(self, proc: Proc) -> None:
        try:
            await self.cluster.restart(proc)
        except ClusterError as exc:  # stays down: the run goes on without it, and says so
            self.say(f"[red]{proc.name} could not be started again:[/] {exc}")
        else:
            self.busy.discard(proc)

    async def at_share_accepted(self, low: float = 0.1, high: float = 0.8) -> None:
        """Until a random share in [low, high] of the launches is accepted."""
        await self.until_accepted(max(1, round(self.rng.uniform(low, high) * self.args.tokens)))


# ----------------------------------------------------------------------------- faults
async def kill_one(run: ClusterRun, kind: str) -> None:
    """``kill -9`` one process of ``kind`` at a random moment; start it again after a moment."""
    await run.at_share_accepted()
    proc = run.rng.choice(run.cluster.procs[kind])
    run.busy.add(proc)
    at_s, accepted = run.elapsed_s(), run.accepted
    await run.cluster.kill(proc)
    run.kills += 1
    run.say(f"kill -9 {proc.name} ({accepted} launches accepted)")
    pause_s = round(run.rng.uniform(0.5, 3.0), 2)
    await asyncio.sleep(pause_s)  # the supervisor's restart delay
    failed_before = proc.failed_starts
    back_s = await run.cluster.restart(proc)
    run.busy.discard(proc)
    run.say(f"{proc.name} back after {pause_s + back_s:.2f} s")
    run.faults.append(
        {
            "fault": f"kill -9 {kind}",
            "process": proc.name,
            "at_s": at_s,
            "accepted_before": accepted,
            "down_s": round(pause_s + back_s, 2),
            "failed_starts": proc.failed_starts - failed_before,
            "ended_at_s": run.elapsed_s(),
        }
    )


async def outage(run: ClusterRun, service: str, down_s: float, *, share: float | None = None) -> dict:
    """Stops RabbitMQ (``broker``) or Redis (``cache``) for ``down_s`` and starts it again, at
    ``share`` of the launches accepted (default: a random moment); returns the fault's record."""
    if share is None:
        await run.at_share_accepted()
    else:
        await run.until_accepted(max(1, round(share * run.args.tokens)))
    name = {"broker": "RabbitMQ", "cache": "Redis"}[service]
    accepted = run.accepted
    await getattr(run.cluster, f"stop_{service}")()
    at_s, reads = run.elapsed_s(), run.reads
    run.say(f"{name} down ({accepted} launches accepted)")
    await asyncio.sleep(down_s)
    accepted_while_down, reads_while_down = run.accepted - accepted, run.reads - reads
    await getattr(run.cluster, f"start_{service}")()
    fault = {
        "fault": f"{name} {'restart' if share is None else 'outage'}",
        "at_s": at_s,
        "accepted_before": accepted,
        "down_s": round(run.elapsed_s() - at_s, 2),
        "accepted_while_down": accepted_while_down,
        "reads_while_down": reads_while_down,
        "ended_at_s": run.elapsed_s(),
    }
    run.say(f"{name} back after {fault['down_s']} s ({accepted_while_down} launches accepted while down)")
    run.faults.append(fault)
    return fault


async def cluster_faults(run: ClusterRun) -> None:
    async def restart(service: str) -> None:
        await outage(run, service, round(run.rng.uniform(1.0, 3.0), 2))
        run.restarts += 1

    await asyncio.gather(
        *(kill_one(run, kind) for kind in ("worker", "relay", "api")), restart("broker"), restart("cache")
    )


async def broker_down(run: ClusterRun) -> None:
    await outage(run, "broker", run.args.outage_s, share=1 / 3)


async def cache_down(run: ClusterRun) -> None:
    await outage(run, "cache", run.args.outage_s, share=1 / 3)


SCENARIOS = {"cluster": cluster_faults, "broker-down": broker_down, "cache-down": cache_down}


# ----------------------------------------------------------------------------- the reader
async def read_continuously(run: ClusterRun, client: httpx.AsyncClient) -> None:
    """Token detail (of accepted launches) and list GETs at ``--read-rate``, open loop; runs until cancelled."""
    sem = asyncio.Semaphore(READS_IN_FLIGHT)
    tasks: set[asyncio.Task] = set()

    async def one(url: str) -> None:
        async with sem:
            try:
                resp = await client.get(url)
                failure = None if resp.status_code == 200 else str(resp.status_code)
            except httpx.TransportError as exc:
                failure = type(exc).__name__
            run.reads += 1
            if failure is not None:
                run.read_errors[failure] += 1
                if sum(run.read_errors.values()) <= 5:
                    run.say(f"[red]read failed:[/] GET {url}: {failure}")

    interval_s, next_at = 1 / run.args.read_rate, time.monotonic()
    for i in itertools.count():
        if i % 2 and run.accepted_tokens:
            url = f"/v1/tokens/{run.rng.choice(run.accepted_tokens)}"
        else:
            url = "/v1/tokens?limit=20"
        task = asyncio.create_task(one(url))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        next_at += interval_s
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))


# ----------------------------------------------------------------------------- the run
async def run_cluster_scenario(args: argparse.Namespace) -> dict:
    chains = [c.strip() for c in args.chains.split(",") if c.strip()]
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    progress = progress_bars()
    limits = httpx.Limits(max_connections=args.concurrency + 4, max_keepalive_connections=args.concurrency + 4)
    cluster = Cluster(
        chains=chains,
        chain_settings=chain_settings,
        postgres=args.postgres,
        worker_concurrency=args.worker_concurrency,
        keep=args.keep,
        say=err.print,
    )
    async with cluster:
        launches = make_launches(args.tokens, chains)
        with progress:
            async with (
                httpx.AsyncClient(
                    base_url=cluster.base_url, timeout=REQUEST_TIMEOUT_S, limits=limits, headers=cluster.headers
                ) as client,
                httpx.AsyncClient(base_url=cluster.base_url, timeout=READ_TIMEOUT_S) as read_client,
            ):
                run = ClusterRun(args, cluster, progress, random.Random(seed))
                run.say(f"{args.scenario}: {args.tokens} launches on {', '.join(chains)}, seed {seed}")
                fault = asyncio.create_task(SCENARIOS[args.scenario](run))
                background = [
                    asyncio.create_task(drive(run, client, launches)),
                    asyncio.create_task(read_continuously(run, read_client)),
                ]
                try:
                    await wait_all_final(run, client, fault)
                    wall_s = run.elapsed_s()
                finally:
                    for task in background:
                        task.cancel()
                    await asyncio.gather(*background, return_exceptions=True)
                await fault  # raises if the fault itself could not be injected or undone
                readers = {c: reader_for(c, f"{cluster.devnet_url}/{c}") for c in chains}
                try:
                    counts = await verify(client, launches, readers)
                finally:
                    for reader in readers.values():
                        await reader.close()
        layout = {k: v for k, v in cluster.describe().items() if k not in ("workdir", "base_url")}
    return {
        **report(args, run, launches, counts, wall_s),
        "kills": run.kills,
        "restarts": run.restarts,
        "read_errors": sum(run.read_errors.values()),
        "reads": run.reads,
        "read_error_reasons": dict(run.read_errors),
        "crashes": run.crashes,
        "seed": seed,
        "cluster": layout,
        "faults": run.faults,
    }
