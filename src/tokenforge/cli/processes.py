"""The commands of a distributed deployment: ``migrate``, ``api``, ``relay``, ``worker``, ``sweeper``,
``indexer``.

Every process reads the same ``TOKENFORGE_*`` settings (database, broker and cache URLs,
chains). ``tokenforge migrate`` brings the schema up to date once; the other commands refuse
a database it has not migrated. ``tokenforge serve`` remains the one-process embedded
default. How the processes run and stop: :mod:`tokenforge.roles`.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from sqlalchemy import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from tokenforge.config import Settings
from tokenforge.errors import TokenForgeError

processes_app = typer.Typer()

#: What a process that cannot reach its database raises (reported in one line, exit 2).
_UNREACHABLE = (OSError, TimeoutError, SQLAlchemyError)

HealthPortOption = Annotated[
    int | None,
    typer.Option(
        "--health-port",
        min=0,
        max=65535,
        help="Serve /healthz, /readyz and /metrics on this port (0: a free one). "
        "Default: TOKENFORGE_HEALTH_PORT, else not served.",
        show_default=False,
    ),
]


def _fail(message: str) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(2)


def _settings(**overrides: Any) -> Settings:
    """Settings from the environment with the command's options on top; an invalid value
    is reported in one line per field (never the value itself: it may be a secret)."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        fields = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors())
        raise _fail(f"invalid settings: {fields}") from None


def _database(settings: Settings) -> str:
    """The database URL without its password, for messages."""
    return make_url(settings.resolved_database_url).render_as_string(hide_password=True)


def _reason(exc: BaseException, settings: Settings) -> str:
    """One line on why the database could not be used, with no password in it."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    text = (str(cause).strip().splitlines() or [""])[0]
    password = make_url(settings.resolved_database_url).password
    if password:
        text = text.replace(str(password), "***")
    return f"{type(cause).__name__}: {text}" if text else type(cause).__name__


@processes_app.command()
def migrate() -> None:
    """Bring the database schema to the newest revision (Alembic), then print it.

    Run it once before starting (or after upgrading) api, relay, worker and sweeper
    processes; they refuse a database that is not at the newest revision.
    """
    from tokenforge.store.db import make_engine
    from tokenforge.store.migrate import current_revision, upgrade_to_head

    settings = _settings()

    async def run() -> str | None:
        engine = make_engine(settings.resolved_database_url)
        try:
            await upgrade_to_head(engine)
            return await current_revision(engine)
        finally:
            await engine.dispose()

    try:
        revision = asyncio.run(run())
    except _UNREACHABLE as exc:
        raise _fail(f"cannot migrate the database {_database(settings)}: {_reason(exc, settings)}") from None
    typer.echo(f"database at revision {revision}")


@processes_app.command()
def api(
    host: Annotated[
        str | None,
        typer.Option(help="Interface to listen on (default: TOKENFORGE_HOST, else 127.0.0.1).", show_default=False),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            min=1, max=65535, help="Port to listen on (default: TOKENFORGE_PORT, else 8000).", show_default=False
        ),
    ] = None,
    workers: Annotated[int, typer.Option(min=1, max=256, help="uvicorn worker processes sharing the port.")] = 1,
) -> None:
    """Serve the HTTP API only: stateless, run as many as you like behind a load balancer.

    No relay and no worker run here: launches are written to the outbox and a `tokenforge
    relay` publishes them. SSE streams follow jobs that any worker advances. SIGTERM stops
    gracefully: in-flight requests finish (up to TOKENFORGE_DRAIN_TIMEOUT_S).
    """
    import uvicorn

    from tokenforge.observability import configure_logging
    from tokenforge.roles import ApiHttpProtocol, check_schema

    settings = _settings()
    configure_logging(settings)
    try:
        asyncio.run(check_schema(settings))  # once here, not N times in a restart loop of workers
    except TokenForgeError as exc:
        raise _fail(f"cannot start: {exc}") from None
    except _UNREACHABLE as exc:
        raise _fail(f"cannot start: cannot use the database {_database(settings)}: {_reason(exc, settings)}") from None
    # uvicorn re-raises the signal that stopped it once it has shut down gracefully: a
    # graceful stop exits 0, as the other roles do
    signal.signal(signal.SIGTERM, lambda _sig, _frame: sys.exit(0))
    # keep-alive longer than clients' pools keep idle connections (as proxies do), so a
    # client does not send on a connection the server is closing
    uvicorn.run(
        "tokenforge.roles:api_app",
        factory=True,
        host=settings.host if host is None else host,
        port=settings.port if port is None else port,
        workers=workers,
        loop="uvloop",
        http=ApiHttpProtocol,
        log_level="warning",
        access_log=False,
        proxy_headers=False,  # X-Forwarded-For is read by TokenForge (trusted_proxies)
        timeout_keep_alive=75,
        timeout_graceful_shutdown=int(settings.drain_timeout_s),
    )


def _run(name: str, settings: Settings, health_port: int | None, **parts: bool) -> None:
    from tokenforge.roles import Role, run_role

    port = settings.health_port if health_port is None else health_port
    try:
        code = run_role(Role(name, **parts), settings, health_port=port)
    except TokenForgeError as exc:
        raise _fail(f"cannot start: {exc}") from None
    except _UNREACHABLE as exc:
        raise _fail(f"cannot start: cannot use the database {_database(settings)}: {_reason(exc, settings)}") from None
    raise typer.Exit(code)


@processes_app.command()
def relay(health_port: HealthPortOption = None) -> None:
    """Publish committed outbox rows to the broker, then mark them sent (several may run).

    Woken by PostgreSQL NOTIFY, with a poll as fallback. SIGTERM: finishes the batch it is
    publishing, then exits 0.
    """
    _run("relay", _settings(), health_port, relay=True)


@processes_app.command()
def worker(
    chains: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated chains to serve (default: TOKENFORGE_WORKER_CHAINS, else all configured).",
            show_default=False,
        ),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=1024,
            help="Launches of one chain handled at once (broker prefetch; default: "
            "TOKENFORGE_WORKER_CONCURRENCY, else 64; a chain's prefetch setting wins).",
            show_default=False,
        ),
    ] = None,
    health_port: HealthPortOption = None,
    sweeper: Annotated[
        bool, typer.Option("--sweeper/--no-sweeper", help="Also run the sweeper (safe in many workers).")
    ] = True,
) -> None:
    """Consume launch jobs of the chosen chains and advance them (as many as you like).

    SIGTERM: stops taking deliveries, lets running steps finish for up to
    TOKENFORGE_DRAIN_TIMEOUT_S, hands the rest back to the broker, exits 0.
    """
    settings = _settings(worker_chains=chains, worker_concurrency=concurrency)
    _run("worker", settings, health_port, worker=True, sweeper=sweeper)


@processes_app.command("sweeper")
def sweeper_command(health_port: HealthPortOption = None) -> None:
    """Re-enqueue unfinished jobs that nothing will advance (workers run one unless --no-sweeper)."""
    _run("sweeper", _settings(), health_port, sweeper=True)


@processes_app.command("indexer")
def indexer_command(health_port: HealthPortOption = None) -> None:
    """Index the markets of the JSON-RPC EVM chains: trades, candles, holders, market state.

    Follows each chain to its head minus market.index_confirmations and rolls reorgs back.
    Run several for availability: one per chain writes (a lease in the database), the others
    take over within 15 s when it stops. Embedded chains are indexed by `tokenforge serve`,
    the process that runs them. SIGTERM: exits 0 (the next batch is read again).
    """
    from tokenforge.domain.chains import CHAINS, Family, Network

    settings = _settings()
    evm = {c: cs for c, cs in settings.chains.items() if CHAINS[c].family is Family.EVM}
    embedded = sorted(c for c, cs in evm.items() if cs.network is Network.EMBEDDED)
    if len(embedded) == len(evm):
        names = ", ".join(embedded) or "none"
        raise _fail(
            f"nothing to index: the EVM chains here ({names}) are embedded, and an embedded chain is indexed "
            "by `tokenforge serve` (the process that runs it); `tokenforge indexer` follows EVM chains "
            "reached over JSON-RPC (network local, testnet or mainnet, with endpoints)"
        )
    if embedded:
        typer.echo(f"embedded chains {', '.join(embedded)} are indexed by `tokenforge serve`, not here", err=True)
    _run("indexer", settings, health_port, indexer=True)
