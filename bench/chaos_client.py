"""The chaos runner's client side, shared by every scenario (``chaos.py`` one server,
``chaos_cluster.py`` the cluster): the launches and how a well-written client sends them,
the run's shared state, the driver, the wait until every job is final, and the independent
on-chain checks that count ``lost`` and ``doubled`` (see ``chaos.py`` for the definitions).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime

import httpx
from eth_account import Account
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from solders.keypair import Keypair

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
    token_ids: set[str] = field(default_factory=set)
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
                accepted = resp.json()
                launch.job_ids.add(accepted["job"]["id"])
                launch.token_ids.add(accepted["token"]["id"])
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
    """What the driver, the faults and the waiting share. Subclasses say how the system under
    test is watched (:meth:`supervise`)."""

    def __init__(self, args: argparse.Namespace, progress: Progress) -> None:
        self.args, self.progress = args, progress
        self.accepted = 0
        self.accepted_tokens: list[str] = []  # token ids of accepted launches, for readers
        self.changed = asyncio.Condition()
        self.driving_done = False
        self.faults: list[dict] = []
        self.started = time.monotonic()
        self.accepted_task = progress.add_task("accepted", total=args.tokens)
        self.final_task = progress.add_task("final", total=args.tokens)

    def elapsed_s(self) -> float:
        return round(time.monotonic() - self.started, 2)

    def say(self, text: str) -> None:
        self.progress.console.print(f"[{self.elapsed_s():7.2f}s] {text}")

    async def one_accepted(self, launch: Launch) -> None:
        async with self.changed:
            self.accepted += 1
            self.accepted_tokens.extend(launch.token_ids)
            self.progress.update(self.accepted_task, completed=self.accepted)
            self.changed.notify_all()

    async def driving_finished(self) -> None:
        async with self.changed:
            self.driving_done = True
            self.changed.notify_all()

    async def until_accepted(self, n: int) -> None:
        async with self.changed:
            await self.changed.wait_for(lambda: self.accepted >= n or self.driving_done)

    def supervise(self) -> bool:
        """Called while waiting: False stops the wait (the system under test broke for good)."""
        return True


def progress_bars() -> Progress:
    return Progress(
        TextColumn("{task.description:>9}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    )


async def drive(run: Run, client: httpx.AsyncClient, launches: list[Launch]) -> None:
    sem = asyncio.Semaphore(run.args.concurrency)
    deadline = time.monotonic() + run.args.timeout_s

    async def one(launch: Launch) -> None:
        async with sem:
            if await post_launch(client, launch, deadline):
                await run.one_accepted(launch)

    await asyncio.gather(*(one(launch) for launch in launches))
    await run.driving_finished()


async def wait_all_final(run: Run, client: httpx.AsyncClient, fault: asyncio.Task) -> bool:
    """Until no launch is pending (True), the deadline (False) or ``run.supervise()`` gives up (False)."""
    deadline = None
    while True:
        if fault.done() and fault.exception() is not None:
            return False  # re-raised by the caller
        if deadline is None and run.driving_done and fault.done():
            deadline = time.monotonic() + run.args.timeout_s
        if not run.supervise():
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


def report(args: argparse.Namespace, run: Run, launches: list[Launch], counts: dict, wall_s: float) -> dict:
    """The JSON report's keys every scenario shares, in their order (see ``chaos.py``)."""
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
        "chains": [c.strip() for c in args.chains.split(",") if c.strip()],
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
        "retries": sum(launch.attempts - 1 for launch in launches),
        "retry_reasons": dict(sum((launch.retry_reasons for launch in launches), Counter())),
        "create_p50_ms": percentile(create_ms, 50),
        "create_p99_ms": percentile(create_ms, 99),
    }
