"""The ``tokenforge`` command: run roles, launch tokens, run a demo, operate jobs and keys, run a devnet."""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from tokenforge.cli.api_keys import api_keys_app
from tokenforge.cli.audit import audit_app
from tokenforge.cli.client import (
    ApiError,
    api_client,
    auth_headers,
    create_token,
    follow_job,
    get_json,
    throwaway_creator,
)
from tokenforge.cli.jobs import jobs_app
from tokenforge.cli.keys import keys_app
from tokenforge.cli.processes import processes_app
from tokenforge.config import Settings

app = typer.Typer(help="TokenForge: launch tokens on EVM chains and Solana.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
app.add_typer(keys_app, name="keys")
app.add_typer(api_keys_app, name="api-keys")
app.add_typer(audit_app, name="audit")
app.add_typer(processes_app)  # migrate, api, relay, worker, sweeper
console = Console()
err = Console(stderr=True)

ApiOption = Annotated[
    str | None,
    typer.Option("--api", envvar="TOKENFORGE_API_URL", help="Base URL of a running TokenForge API."),
]
ApiKeyOption = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="TOKENFORGE_API_KEY",
        help="API key sent as Authorization: Bearer (tokenforge api-keys create; `make run` prints one).",
        show_default=False,
        show_envvar=True,
    ),
]


@app.command()
def serve(
    host: Annotated[
        str | None,
        typer.Option(help="Interface to listen on (default: TOKENFORGE_HOST, else 127.0.0.1).", show_default=False),
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to listen on (default: TOKENFORGE_PORT, else 8000).", show_default=False)
    ] = None,
    worker_process: Annotated[
        bool,
        typer.Option(
            help="Run relay, worker and market indexer in a child process (for PostgreSQL; on "
            "SQLite the two processes contend for the file lock and one process is faster)."
        ),
    ] = False,
) -> None:
    """Run the API, the outbox relay, the worker and the market indexer (on the embedded default no servers are needed).

    Settings come from TOKENFORGE_* variables (chains, database, listen address); state lives
    in TOKENFORGE_DATA_DIR (default ./.tokenforge) and survives restarts; unfinished launches
    resume.
    """
    import uvicorn

    from tokenforge.roles import BackgroundProcess, configure_process

    settings = Settings()
    if host is not None:  # the settings name the server's own address (sign-in messages name it)
        settings.host = host
    if port is not None:
        settings.port = port
    host, port = settings.host, settings.port
    configure_process(settings, "serve")  # before the app's modules create their metrics

    from tokenforge.api.app import create_app
    from tokenforge.api.http_server import BoundedHttpToolsProtocol
    from tokenforge.api.startup import report_startup_failures
    from tokenforge.cli.api_keys import announce_local_operator_key, is_embedded_default

    background = None
    if worker_process:
        background = BackgroundProcess(settings)
        background.start()
    console.print(f"TokenForge on http://{host}:{port}  (data: {settings.data_dir.resolve()}, API docs: /docs)")
    app_ = create_app(
        settings,
        run_relay=not worker_process,
        run_worker=not worker_process,
        run_indexer=not worker_process,  # else the worker process indexes (it opens the chains)
        on_shutdown=background.stop if background is not None else None,
    )
    served = report_startup_failures(app_)
    if is_embedded_default(settings):  # print (never log) the local operator key once started
        served = announce_local_operator_key(served, lambda: app_.state, lambda line: typer.echo(line))
    try:
        # keep-alive longer than clients' pools keep idle connections (as proxies do), so a
        # client does not send on a connection the server is closing
        uvicorn.run(
            served,
            host=host,
            port=port,
            loop="uvloop",
            http=BoundedHttpToolsProtocol,
            log_level="warning",
            access_log=False,
            proxy_headers=False,  # X-Forwarded-For is read by TokenForge (trusted_proxies)
            timeout_keep_alive=75,
        )
    finally:
        if background is not None:
            background.stop()


@asynccontextmanager
async def _client(api: str | None, api_key: str | None, purpose: str):
    """An API client sending ``api_key``: over HTTP to ``api``, or to a stack started
    in-process on this host's database (without a key, the host's user acts as operator
    through a key issued for this command and revoked at its end)."""
    if api:
        async with api_client(api, api_key) as client:
            yield client
        return
    from tokenforge.api.app import create_app
    from tokenforge.bootstrap import build_container
    from tokenforge.errors import TokenForgeError

    settings = Settings()
    container = await build_container(settings)
    try:
        with console.status("starting the embedded chains…"):
            await container.start()
    except TokenForgeError as exc:
        await container.close()
        hint = (
            " (is a server running on this data directory? pass --api URL to use it)" if "in use" in exc.message else ""
        )
        err.print(f"[red]cannot start the embedded default:[/] {exc.message}{hint}")
        raise typer.Exit(2) from None
    from tokenforge.cli.api_keys import in_process_key

    transport = httpx.ASGITransport(app=create_app(container=container))
    try:
        async with AsyncExitStack() as stack:
            key = api_key or await stack.enter_async_context(in_process_key(container.sessions, purpose))
            client = httpx.AsyncClient(
                transport=transport, base_url="http://embedded", headers=auth_headers(key), timeout=30
            )
            yield await stack.enter_async_context(client)
    finally:
        await container.close()


@app.command()
def launch(
    chain: Annotated[str, typer.Option(help="ethereum, bsc, base or solana.")],
    name: Annotated[str, typer.Option(help="Token name, 1-32 characters.")],
    symbol: Annotated[str, typer.Option(help="1-10 of A-Z and 0-9.")],
    supply: Annotated[str, typer.Option(help="Initial supply in whole tokens.")],
    decimals: Annotated[int | None, typer.Option(help="Default: 18 on EVM, 9 on Solana.")] = None,
    creator: Annotated[
        str | None,
        typer.Option(
            help="Address that receives the supply. Default: the API key's wallet (an operator key without "
            "a wallet must name one; in-process without --api-key: a fresh throwaway address)."
        ),
    ] = None,
    description: Annotated[str, typer.Option(help="Up to 1,000 characters.")] = "",
    metadata_uri: Annotated[str | None, typer.Option(help="Metadata URI (Solana).")] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Makes re-running this command safe.")] = None,
    api: ApiOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Launch one token, show its status live until final, print its address.

    Needs a credential: --api-key (or TOKENFORGE_API_KEY); in-process (no --api) the host's
    user acts as operator. The token's creator is the key's wallet unless --creator is given.
    """
    if creator is None and api is None and api_key is None:
        creator = throwaway_creator(chain)
        err.print(f"[yellow]no --creator given: the supply goes to a fresh throwaway address {creator}[/]")
    body: dict[str, str | int] = {
        "chain": chain,
        "name": name,
        "symbol": symbol,
        "supply": supply,
        "description": description,
    }
    if creator is not None:
        body["creator"] = creator
    if decimals is not None:
        body["decimals"] = decimals
    if metadata_uri:
        body["metadata_uri"] = metadata_uri

    async def run() -> int:
        async with _client(api, api_key, "launch") as client:
            try:
                accepted = await create_token(client, body, idempotency_key=idempotency_key)
            except ApiError as exc:
                err.print(f"[red]refused:[/] {exc.explain()}", highlight=False)
                return 2
            job_id = accepted["job"]["id"]
            console.print(f"accepted: token {accepted['token']['id']}, job {job_id}")
            with console.status("queued") as status:
                async for event in follow_job(client, job_id):
                    console.print(f"  {event['status']:<11} {event['message']}")
                    status.update(event["status"])
            token = await get_json(client, f"/v1/tokens/{accepted['token']['id']}")
            job = await get_json(client, f"/v1/jobs/{job_id}")
        if job["status"] != "confirmed":
            err.print(f"[red]launch {job['status']}:[/] {(job.get('error') or {}).get('message', '')}")
            return 1
        console.print(f"[green]live[/] {token['symbol']} on {token['chain']} at block {token['block_number']}")
        console.print(token["address"], highlight=False, soft_wrap=True)
        return 0

    raise typer.Exit(asyncio.run(run()))


@app.command()
def demo(
    tokens: Annotated[int, typer.Option(min=1, max=100_000, help="How many tokens to launch.")] = 20,
    chains: Annotated[
        str, typer.Option(help="Comma-separated chains to spread launches over.")
    ] = "ethereum,bsc,base,solana",
    concurrency: Annotated[int, typer.Option(min=1, max=1000, help="Launches in flight at once.")] = 50,
    api: ApiOption = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="TOKENFORGE_API_KEY",
            help="An OPERATOR API key (the demo launches for random creators; a creator key may launch "
            "only for its own wallet). Needed with --api; in-process the host's user acts as operator.",
            show_default=False,
            show_envvar=True,
        ),
    ] = None,
    market: Annotated[
        bool,
        typer.Option(
            "--market",
            help="Instead: launch a few tokens on the first chain in-process, trade them with funded "
            "development wallets until one graduates, and show trades, volume, gas and index lag "
            "(embedded or local networks only).",
        ),
    ] = False,
) -> None:
    """Launch N tokens across chains with a progress bar and a summary table.

    Runs against --api when given (with an operator --api-key), else against a stack started
    in-process from the TOKENFORGE_* settings (the embedded default unless configured
    otherwise). Exits non-zero if any launch failed. With --market: launches --tokens
    (default 3) in-process, trades them from funded development wallets until a curve
    graduates, with a progress bar and a summary table (trades, volume, graduations, gas,
    index lag); exits non-zero unless a token graduated and every trade was indexed.
    """
    names = [c.strip() for c in chains.split(",") if c.strip()]
    if market:
        if api is not None:
            err.print("[red]demo --market runs in-process (it trades with development wallets); drop --api[/]")
            raise typer.Exit(2)
        from tokenforge.cli.market_demo import run_market_demo

        count = 3 if tokens == 20 else min(tokens, 20)
        raise typer.Exit(asyncio.run(run_market_demo(Settings(), console, chain=names[0], tokens=count)))

    async def run() -> int:
        results: dict[str, dict[str, int]] = {c: {"confirmed": 0, "failed": 0, "dead": 0, "refused": 0} for c in names}
        latencies: list[float] = []
        sem = asyncio.Semaphore(concurrency)
        refusal: list[ApiError] = []  # a 401/403: every further launch would be refused too
        async with _client(api, api_key, "demo") as client:
            with Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
            ) as progress:
                task = progress.add_task("launching", total=tokens)

                async def one(i: int) -> None:
                    chain = names[i % len(names)]
                    body = {
                        "chain": chain,
                        "name": f"Demo Token {i}",
                        "symbol": f"DEMO{i % 100000}",
                        "supply": "1000000000",
                        "creator": throwaway_creator(chain),
                    }
                    async with sem:
                        if refusal:
                            results[chain]["refused"] += 1
                            progress.advance(task)
                            return
                        started = time.perf_counter()
                        try:
                            accepted = await create_token(client, body)
                        except ApiError as exc:
                            if exc.is_auth:
                                refusal.append(exc)
                            results[chain]["refused"] += 1
                            progress.advance(task)
                            return
                        final = "dead"
                        async for event in follow_job(client, accepted["job"]["id"]):
                            final = event["status"]
                        results[chain][final if final in results[chain] else "failed"] += 1
                        latencies.append(time.perf_counter() - started)
                        progress.advance(task)

                wall = time.perf_counter()
                await asyncio.gather(*(one(i) for i in range(tokens)))
                wall = time.perf_counter() - wall
        if refusal:
            err.print(
                f"[red]refused:[/] {refusal[0].explain()}\n"
                "the demo launches for random creators: it needs an operator API key "
                "(--api-key or TOKENFORGE_API_KEY; tokenforge api-keys create --role operator)",
                highlight=False,
            )
            return 2
        table = Table(title=f"{tokens} launches in {wall:.1f}s ({tokens / wall:.1f}/s)")
        for col in ("chain", "confirmed", "failed", "dead", "refused"):
            table.add_column(col, justify="right" if col != "chain" else "left")
        for chain, r in results.items():
            table.add_row(chain, *(str(r[k]) for k in ("confirmed", "failed", "dead", "refused")))
        console.print(table)
        if latencies:
            latencies.sort()
            console.print(
                f"end-to-end p50 {latencies[len(latencies) // 2] * 1000:.0f} ms, "
                f"p99 {latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000:.0f} ms"
            )
        bad = sum(r["failed"] + r["dead"] + r["refused"] for r in results.values())
        return 1 if bad else 0

    raise typer.Exit(asyncio.run(run()))


@app.command()
def devnet(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8899,
    data_dir: Annotated[
        str, typer.Option(help="Chain state lives here (one directory per chain) and survives restarts.")
    ] = ".tokenforge-devnet",
    in_memory: Annotated[bool, typer.Option("--in-memory", help="Keep all chain state in memory.")] = False,
    slot_ms: Annotated[int, typer.Option(min=1, help="Solana slot length; blockhashes expire after 150 slots.")] = 400,
    chains: Annotated[str, typer.Option(help="Comma-separated chains to serve.")] = "ethereum,bsc,base,solana",
) -> None:
    """Serve local JSON-RPC for EVM chains and Solana from one process (no node to install).

    POST http://HOST:PORT/<chain> (ethereum, bsc, base: chain id 31337; solana); GET /health.
    Runs until Ctrl-C or SIGTERM.
    """
    from pathlib import Path

    from tokenforge.devnet import DevnetConfig, run_devnet
    from tokenforge.errors import TokenForgeError

    try:
        config = DevnetConfig(
            host=host,
            port=port,
            data_dir=Path(data_dir),
            in_memory=in_memory,
            slot_ms=slot_ms,
            chains=DevnetConfig.parse_chains(chains),
        )
        run_devnet(config, announce=lambda line: typer.echo(line))
    except TokenForgeError as exc:
        err.print(f"[red]devnet:[/] {exc.message}")
        raise typer.Exit(2) from None


if __name__ == "__main__":  # pragma: no cover
    app()
