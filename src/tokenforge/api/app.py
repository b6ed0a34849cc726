"""The FastAPI application: thin routes over services; problem details for every error."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import asynccontextmanager
from importlib import resources

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from tokenforge import __version__
from tokenforge.api import problems
from tokenforge.api.fast_reads import FastReads
from tokenforge.api.limits import RequestLimits, cap_recursion_limit
from tokenforge.api.middleware import ObservabilityMiddleware
from tokenforge.api.ratelimit import RateLimits
from tokenforge.api.routes import api_keys, audit, auth, chains, health, jobs, market, ops, tokens, trading, webhooks
from tokenforge.api.security import SecurityHeaders
from tokenforge.bootstrap import Container, build_container
from tokenforge.config import Settings
from tokenforge.observability.tracing import fastapi_telemetry

# The imports above pull in py_ecc, which raises the recursion limit to 100,000.
cap_recursion_limit()


def create_app(
    settings: Settings | None = None,
    *,
    container: Container | None = None,
    run_relay: bool = True,
    run_worker: bool = True,
    run_indexer: bool = False,
    on_shutdown: Callable[[], None] | None = None,
    migrate: bool = True,
) -> FastAPI:
    """Build the app. With no ``container`` one is built at startup from ``settings``
    (migrating the database unless ``migrate`` is False: then an unmigrated one is refused);
    the process then also runs the relay and the worker unless told otherwise, the market
    indexers when ``run_indexer`` (``tokenforge serve``), and its SSE streams wake on job
    events of every process (PostgreSQL).

    Request bodies are limited by ``settings.max_body_bytes`` and ``body_timeout_s`` (the
    container's settings when one is given) and JSON nesting by
    :data:`~tokenforge.api.limits.MAX_JSON_DEPTH` (:mod:`tokenforge.api.limits`)."""
    if settings is None:
        settings = container.settings if container is not None else Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if container is not None:
            app.state.container = container
            yield
            return
        # a process without the worker must start, and take launches into the outbox, while
        # the broker is down; and it does not see the worker's writes to drop cache entries
        built = await build_container(
            settings, migrate=migrate, broker_at_start=run_worker or run_relay, sees_all_writes=run_worker
        )
        app.state.container = built
        try:
            await built.start(relay=run_relay, worker=run_worker, job_events=True, indexer=run_indexer)
            cap_recursion_limit()  # opening the chains imports py-evm and its crypto
            yield
        finally:
            if on_shutdown is not None:
                on_shutdown()
            await built.close()

    app = FastAPI(
        title="TokenForge",
        version=__version__,
        description="Launch tokens on EVM chains and Solana. Launches are queued and deployed by workers; "
        "follow them over Server-Sent Events.",
        lifespan=lifespan,
        telemetry=fastapi_telemetry(),  # server spans while tracing is on (observability/tracing.py)
    )
    if container is not None:
        app.state.container = container
    problems.install(app)
    app.add_middleware(RequestLimits, max_body_bytes=settings.max_body_bytes, body_timeout_s=settings.body_timeout_s)
    app.add_middleware(FastReads)  # cache hits of token reads, before routing (api/fast_reads.py)
    app.add_middleware(RateLimits, settings=settings)  # budgets per IP and identity (api/ratelimit.py)
    app.add_middleware(SecurityHeaders, settings=settings)  # CSP, CORS, nosniff (api/security.py)
    app.add_middleware(ObservabilityMiddleware)  # outermost: ids and metrics for refused requests too
    app.include_router(tokens.router)
    app.include_router(trading.router)  # quotes and unsigned trades (api/routes/trading.py)
    app.include_router(market.router)  # trades, candles, holders, stats, market SSE (api/routes/market.py)
    app.include_router(jobs.router)
    app.include_router(health.router)
    app.include_router(chains.router)
    app.include_router(auth.router)
    app.include_router(webhooks.router)
    app.include_router(ops.router)
    app.include_router(api_keys.router)
    app.include_router(audit.router)

    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = problems.problem_json_openapi(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    # the launch page's scripts, stylesheet and vendored browser crypto (api/static/README.md)
    static_dir = str(resources.files("tokenforge.api").joinpath("static"))
    app.mount("/static", StaticFiles(directory=static_dir, follow_symlink=False), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        page = resources.files("tokenforge.api").joinpath("static/index.html").read_text(encoding="utf-8")
        return HTMLResponse(page)

    return app


def create_api_app(settings: Settings | None = None) -> FastAPI:
    """The stateless API of ``tokenforge api`` (settings from the environment): no relay, no
    worker, and a database ``tokenforge migrate`` has brought up to date. An import-string
    factory, so ``uvicorn --workers N`` can build it in every worker process:
    ``uvicorn --factory tokenforge.api.app:create_api_app``."""
    return create_app(settings or Settings(), run_relay=False, run_worker=False, migrate=False)
