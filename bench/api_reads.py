#!/usr/bin/env python
"""Cached reads: ``GET /v1/tokens/{id}`` and ``GET /v1/tokens`` against one ``tokenforge api``
process with its Redis cache, and a bare ASGI app returning the same bytes as a ceiling.

Set-up: a throw-away PostgreSQL cluster and a ``redis-server`` child
(``tests/support/cluster.py``); ``tokenforge migrate``; ``tokenforge serve`` on the embedded
Solana chain launches ``--tokens`` tokens and is stopped once all are confirmed; then
``tokenforge api --workers 1`` serves them with ``TOKENFORGE_CACHE_URL`` (``--cache``).

The load: ``wrk`` (one thread, ``--connections``), for ``--duration-s`` after a warm-up of
``--warmup-s`` (which also fills the cache), over a mix that alternates the token list
(``/v1/tokens?limit=20``) and the detail of each token in turn. The ceiling: the exact
status, headers and bodies the API answered for those URLs, served by a bare ASGI app under
the same server settings as ``tokenforge api`` (uvicorn, uvloop, TokenForge's
``BoundedHttpToolsProtocol``, one worker, no access log, keep-alive 75 s), measured the same
way in the same run.

The LAST stdout line is one JSON object: ``rps``, ``p50_ms``, ``p99_ms``, ``errors`` (wrk's
connect, read, write and timeout errors and non-2xx answers), ``baseline_rps``,
``baseline_p50_ms``, ``baseline_p99_ms``, ``baseline_errors``, ``ratio`` (rps /
baseline_rps), the cache's hits, misses and errors from the API's
``tokenforge_cache_requests_total`` (null when the API does not count them), and the run's
settings. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for tests/support

import httpx
from solders.keypair import Keypair
from tests.support.auth import env_key
from tests.support.cluster import HOST, PostgresDatabase, Proc, RedisChild, run_command
from tests.support.server import free_port

LIST_PATH = "/v1/tokens?limit=20"
#: Headers the server adds itself: not part of the bytes the app returns.
SERVER_HEADERS = {"date", "server"}
WRK_SCRIPT = """
local paths = {%s}
local i = 0
request = function()
  i = i %% #paths + 1
  return wrk.format("GET", paths[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%%d,"duration_us":%%d,"p50_us":%%d,"p99_us":%%d,' ..
    '"connect":%%d,"read":%%d,"write":%%d,"status":%%d,"timeout":%%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- the ceiling
def bare_app(responses: dict[str, tuple[int, list[tuple[bytes, bytes]], bytes]]):
    """An ASGI app answering each known path (with its query) with the recorded bytes."""
    missing = (404, [(b"content-type", b"text/plain"), (b"content-length", b"0")], b"")

    async def app(scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        query = scope["query_string"].decode()
        status, headers, body = responses.get(scope["path"] + (f"?{query}" if query else ""), missing)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def serve_bare(port: int, responses_file: Path) -> None:
    """Runs the ceiling with ``tokenforge api``'s server settings (see its ``uvicorn.run``)."""
    import uvicorn

    from tokenforge.api.http_server import BoundedHttpToolsProtocol

    recorded = json.loads(responses_file.read_text())
    responses = {
        path: (r["status"], [(k.encode(), v.encode()) for k, v in r["headers"]], base64.b64decode(r["body"]))
        for path, r in recorded.items()
    }
    uvicorn.run(
        bare_app(responses),
        host=HOST,
        port=port,
        workers=1,
        loop="uvloop",
        http=BoundedHttpToolsProtocol,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=75,
    )


# ----------------------------------------------------------------------------- the measurement
async def seed_tokens(args: argparse.Namespace, env: dict, workdir: Path) -> list[str]:
    """Launches ``args.tokens`` tokens through ``tokenforge serve`` and waits until all are final."""
    port = free_port()
    serve = Proc(
        "serve",
        "serve",
        [sys.executable, "-m", "tokenforge", "serve", "--port", str(port)],
        {**env, "TOKENFORGE_BROKER_URL": "memory://", "TOKENFORGE_CACHE_URL": "memory://"},
        workdir / "serve.log",
        ready="http",
        health_url=f"http://{HOST}:{port}",
        health_path="/readyz",
    )
    serve.start()
    try:
        await serve.wait_ready()
        headers = {"Authorization": f"Bearer {await asyncio.to_thread(env_key, env)}"}
        async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}", timeout=60, headers=headers) as client:
            ids = []
            for i in range(args.tokens):
                body = {"chain": "solana", "name": f"Read Bench {i}", "symbol": f"RB{i}", "supply": "1000000"}
                resp = await client.post("/v1/tokens", json={**body, "creator": str(Keypair().pubkey())})
                resp.raise_for_status()
                ids.append(resp.json()["token"]["id"])
            deadline = time.monotonic() + 300
            while (await client.get("/v1/tokens", params={"status": "pending", "limit": 1})).json()["items"]:
                if time.monotonic() > deadline:
                    raise SystemExit("the seeded launches did not become final")
                await asyncio.sleep(0.2)
        return ids
    finally:
        serve.stop()


async def record(base_url: str, paths: list[str]) -> dict:
    """Each path's status, headers (less the server's own) and body, as the API answers it."""
    recorded = {}
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        for path in paths:
            resp = await client.get(path)
            if resp.status_code != 200:
                raise SystemExit(f"GET {path}: {resp.status_code} {resp.text[:300]}")
            headers = [(k, v) for k, v in resp.headers.multi_items() if k.lower() not in SERVER_HEADERS]
            recorded[path] = {"status": 200, "headers": headers, "body": base64.b64encode(resp.content).decode()}
    return recorded


async def wrk(args: argparse.Namespace, base_url: str, script: Path, duration_s: float) -> dict:
    out = await run_command(
        "wrk",
        "-t1",
        f"-c{args.connections}",
        f"-d{max(1, round(duration_s))}s",
        "--latency",
        "-s",
        str(script),
        base_url,
        timeout_s=duration_s + 60,
    )
    found = re.search(r"WRK_JSON (\{.*\})", out)
    if not found:
        raise SystemExit(f"wrk printed no summary:\n{out[-2000:]}")
    raw = json.loads(found.group(1))
    errors = sum(raw[k] for k in ("connect", "read", "write", "status", "timeout"))
    return {
        "rps": round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
        "p50_ms": round(raw["p50_us"] / 1000, 2),
        "p99_ms": round(raw["p99_us"] / 1000, 2),
        "errors": errors,
    }


async def measure(args: argparse.Namespace, base_url: str, script: Path) -> dict:
    if args.warmup_s:
        await wrk(args, base_url, script, args.warmup_s)
    return await wrk(args, base_url, script, args.duration_s)


async def cache_counts(base_url: str) -> dict:
    """The API's ``tokenforge_cache_requests_total`` by result (null when it does not count them)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        text = (await client.get("/metrics")).text
    counts: dict[str, float | None] = {"hits": None, "misses": None, "errors": None}
    for line in text.splitlines():
        if line.startswith("tokenforge_cache_requests_total{") and (m := re.search(r'result="(\w+)"\}\s+(\S+)', line)):
            key = {"hit": "hits", "miss": "misses", "error": "errors"}.get(m.group(1), m.group(1))
            counts[key] = (counts.get(key) or 0) + float(m.group(2))
    return {f"cache_{k}": None if v is None else int(v) for k, v in counts.items()}


async def run(args: argparse.Namespace) -> dict:
    for tool in ("wrk", "redis-server"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (Debian package {tool})")
    workdir = Path(tempfile.mkdtemp(prefix="tokenforge-reads-"))
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENFORGE_")}
    db, redis = PostgresDatabase("own"), RedisChild(workdir, base_env)
    procs: list[Proc] = []
    try:
        await asyncio.gather(db.create(), redis.start())
        cache_url = {"redis": redis.url, "memory": "memory://", "none": "none://"}[args.cache]
        env = {
            **base_env,
            "TOKENFORGE_DATABASE_URL": db.url,
            "TOKENFORGE_CACHE_URL": cache_url,
            "TOKENFORGE_BROKER_URL": "memory://",
            "TOKENFORGE_CHAINS": json.dumps({"solana": "embedded"}),
            "TOKENFORGE_DATA_DIR": str(workdir / "data"),
            "TOKENFORGE_LOG_LEVEL": "WARNING",
            "TOKENFORGE_RATE_LIMITS_ENABLED": "false",  # one client, raw throughput
        }
        await run_command(sys.executable, "-m", "tokenforge", "migrate", env=env)
        say(f"seeding {args.tokens} confirmed tokens")
        ids = await seed_tokens(args, env, workdir)
        api_port, bare_port = free_port(), free_port()
        api_argv = [sys.executable, "-m", "tokenforge", "api", "--host", HOST, "--port", str(api_port)]
        api_url = f"http://{HOST}:{api_port}"
        api = Proc(
            "api", "api", [*api_argv, "--workers", "1"], env, workdir / "api.log", ready="http", health_url=api_url
        )
        procs.append(api)
        api.start()
        await api.wait_ready()
        paths = [p for token_id in ids for p in (LIST_PATH, f"/v1/tokens/{token_id}")]
        responses = workdir / "responses.json"
        responses.write_text(json.dumps(await record(api_url, sorted(set(paths)))))
        script = workdir / "paths.lua"
        script.write_text(WRK_SCRIPT % ", ".join(json.dumps(p) for p in paths))
        say(f"tokenforge api ({args.cache} cache): wrk -t1 -c{args.connections} for {args.duration_s} s")
        cached = await measure(args, api_url, script)
        counts = await cache_counts(api_url)
        api.stop()
        bare_argv = [sys.executable, __file__, "--serve-bare", str(bare_port), "--responses", str(responses)]
        bare_url = f"http://{HOST}:{bare_port}"
        bare = Proc(
            "bare",
            "bare",
            bare_argv,
            base_env,
            workdir / "bare.log",
            ready="http",
            health_url=bare_url,
            health_path=LIST_PATH,
        )
        procs.append(bare)
        bare.start()
        await bare.wait_ready()
        say("bare ASGI app, same bytes and server settings")
        baseline = await measure(args, bare_url, script)
        return {
            **cached,
            "baseline_rps": baseline["rps"],
            "baseline_p50_ms": baseline["p50_ms"],
            "baseline_p99_ms": baseline["p99_ms"],
            "baseline_errors": baseline["errors"],
            "ratio": round(cached["rps"] / baseline["rps"], 3) if baseline["rps"] else None,
            **counts,
            "cache": args.cache,
            "tokens": args.tokens,
            "connections": args.connections,
            "duration_s": args.duration_s,
            "mix": f"alternating {LIST_PATH} and /v1/tokens/{{id}} of {len(ids)} tokens",
        }
    finally:
        for proc in procs:
            proc.stop()
        redis.stop()
        await db.close()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration-s", type=float, default=15.0, help="measured seconds per server (default 15)")
    parser.add_argument("--warmup-s", type=float, default=3.0, help="unmeasured seconds first (default 3)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    parser.add_argument("--tokens", type=int, default=50, help="tokens seeded and read (default 50)")
    parser.add_argument(
        "--cache",
        choices=["redis", "memory", "none"],
        default="redis",
        help="the API's cache: a redis-server child (default), per process, or none",
    )
    parser.add_argument("--serve-bare", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--responses", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare is not None:
        serve_bare(args.serve_bare, args.responses)
        return
    print(json.dumps(asyncio.run(run(args))), flush=True)


if __name__ == "__main__":
    main()
