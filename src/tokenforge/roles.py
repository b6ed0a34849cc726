"""Process roles: the long-running processes of a TokenForge deployment.

* :func:`run_role` runs ``tokenforge relay``, ``worker``, ``sweeper`` and ``indexer`` (a :class:`Role`):
  it refuses an unmigrated database, starts the role's parts of the container, serves
  ``/healthz``, ``/readyz`` and ``/metrics`` on the health port when one is given
  (:mod:`tokenforge.observability.health_server`), prints one line
  ``tokenforge <role> ready[; health on http://HOST:PORT]`` and runs until SIGTERM or
  SIGINT. It then drains (:meth:`~tokenforge.bootstrap.Container.drain`: subscriptions
  stop, in-flight steps get ``drain_timeout_s`` to finish and are handed back to the queue
  after that, the relay finishes its batch) and exits 0. A second signal exits at once.
* :func:`api_app` is the ASGI factory ``tokenforge api`` gives uvicorn (one per uvicorn
  worker process), with :class:`ApiHttpProtocol` as its HTTP protocol.
* :class:`BackgroundProcess` is ``tokenforge serve --worker-process``: the API in the main
  process, the outbox relay, the worker and the market indexers in a child process, so each gets its own
  interpreter (and core). Meant for PostgreSQL; on SQLite one process is faster
  (docs/decisions/0005-group-commit.md). The two share only the database: on PostgreSQL
  the relay and the API's SSE streams wake on ``NOTIFY`` (:mod:`tokenforge.store.notify`),
  on SQLite the relay polls the outbox every ``relay_poll_s`` and the streams re-read job
  events every ``event_poll_s``. The parent is a fail-fast supervisor: when the worker
  process dies, the server exits with the worker's exit code (run it under systemd or
  another supervisor to restart it); unfinished launches resume from the database on the
  next start. A worker whose parent disappears stops too.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import sys
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tokenforge.api.http_server import BoundedHttpToolsProtocol
from tokenforge.config import Settings
from tokenforge.errors import ErrorCode, PermanentError, TransientError
from tokenforge.jobs.events import close_streams

if TYPE_CHECKING:
    from tokenforge.api.startup import Asgi
    from tokenforge.bootstrap import Container

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Role:
    """What a process runs: its name (in its ready line) and its parts."""

    name: str
    relay: bool = False
    worker: bool = False
    sweeper: bool = False
    #: the market indexers of the JSON-RPC EVM chains (:mod:`tokenforge.market.indexer.service`)
    indexer: bool = False

    @property
    def needs_broker(self) -> bool:
        """The relay and the worker cannot work without the broker (the sweeper only reads
        its dead letters, and connects when it can)."""
        return self.relay or self.worker

    @property
    def readiness_checks(self) -> tuple[str, ...]:
        """What ``/readyz`` of this role checks (:mod:`tokenforge.observability.readiness`)."""
        return ("database",) + (("broker",) if self.needs_broker else ()) + (("chains",) if self.worker else ())


#: File mode mask of server processes: what they create (the SQLite database and its
#: -wal/-shm files, chain state, sealed keys, metrics files) is private to the service user.
SERVER_UMASK = 0o077


def configure_process(settings: Settings, role: str) -> None:
    """First thing in every process entry point: the umask (:data:`SERVER_UMASK`), metrics
    (multiprocess mode must be chosen before any metric exists), traces named after
    ``role``, logs, the GIL switch interval, and the HTTP protocol's header and body
    timeouts (``header_timeout_s``, ``body_timeout_s``)."""
    os.umask(SERVER_UMASK)
    BoundedHttpToolsProtocol.configure(head_timeout_s=settings.header_timeout_s, body_timeout_s=settings.body_timeout_s)
    from tokenforge.observability.prometheus import setup_metrics
    from tokenforge.observability.tracing import setup_tracing

    setup_metrics(settings)
    setup_tracing(settings, f"tokenforge-{role}")
    from tokenforge.observability import configure_logging

    configure_logging(settings)
    # The database driver and the chains run in helper threads; hand the GIL over sooner
    # than the default 5 ms so their results do not wait behind the event loop.
    sys.setswitchinterval(settings.gil_switch_interval_s)


def run_role(role: Role, settings: Settings, *, health_port: int | None = None) -> int:
    """Run ``role`` until SIGTERM or SIGINT (see the module docstring); returns the exit code.

    Raises :class:`~tokenforge.errors.TokenForgeError` when the process cannot start (an
    unmigrated database, the in-process broker for a role that needs a shared one)."""
    if role.needs_broker and settings.broker_url.startswith("memory://"):
        raise PermanentError(
            f"tokenforge {role.name} needs a shared broker, and memory:// lives inside one process: "
            "set TOKENFORGE_BROKER_URL=amqp://… (or run every role in one process with `tokenforge serve`)",
            code=ErrorCode.INVALID_PARAMETER,
        )
    configure_process(settings, role.name)
    try:
        return asyncio.run(_run_role(role, settings, health_port))
    finally:
        from tokenforge.observability.tracing import stop_tracing

        stop_tracing()


async def _run_role(role: Role, settings: Settings, health_port: int | None) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals: list[int] = []

    def on_signal(signum: int) -> None:
        signals.append(signum)
        if len(signals) > 1:
            log.warning("second signal: exiting without draining")
            os._exit(128 + signum)
        log.info("stopping: draining for up to %.0f s (a second signal exits at once)", settings.drain_timeout_s)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    container = await _build_when_reachable(role, settings, stop)
    if container is None:  # stopped while waiting for the broker
        return 0
    health = None
    try:
        await container.start(relay=role.relay, worker=role.worker, sweeper=role.sweeper, indexer=role.indexer)
        from tokenforge.api.limits import cap_recursion_limit

        cap_recursion_limit()  # the chains' libraries raise it at import (py_ecc: 100,000)
        health, where = await _start_health(role, container, settings.host, health_port)
        sys.stdout.write(f"tokenforge {role.name} ready" + (f"; health on {where}\n" if where else "\n"))
        sys.stdout.flush()
        await stop.wait()
        await container.drain(settings.drain_timeout_s)
    finally:
        if health is not None:
            await health.stop()
        await container.close()
    log.info("tokenforge %s stopped", role.name)
    return 0


async def _build_when_reachable(role: Role, settings: Settings, stop: asyncio.Event) -> Container | None:
    """The role's container, once the broker answers: a relay or worker started while
    RabbitMQ is down waits for it (logged once, retried with backoff up to 10 s) instead of
    exiting. None when a signal arrives first. The sweeper uses the broker only for dead
    letters and connects to it lazily."""
    from tokenforge.bootstrap import build_container

    failures = 0
    while True:
        try:
            return await build_container(settings, migrate=False, broker_at_start=role.needs_broker)
        except TransientError as err:
            if err.code is not ErrorCode.BROKER_UNAVAILABLE:
                raise
            failures += 1
            if failures == 1:
                log.warning("tokenforge %s waits for the broker: %s", role.name, err.message)
        try:
            async with asyncio.timeout(min(10.0, 0.5 * 2 ** min(failures, 5))):
                await stop.wait()
            return None
        except TimeoutError:
            pass


async def _start_health(role: Role, container: Container, host: str, port: int | None):
    """Serve the health endpoints on ``port`` (0: a free one); returns the server and its URL."""
    if port is None:
        return None, None
    from tokenforge.observability.health_server import HealthServer

    server = HealthServer(container, host=host, port=port, checks=role.readiness_checks)
    try:
        await server.start()
    except OSError as exc:  # the port is taken, the address is not this host's
        raise PermanentError(
            f"cannot serve the health endpoints on {host}:{port}: {exc.strerror or exc}",
            code=ErrorCode.INVALID_PARAMETER,
        ) from None
    return server, f"http://{host}:{server.port}"


class ApiHttpProtocol(BoundedHttpToolsProtocol):
    """The HTTP protocol of ``tokenforge api``: on a graceful shutdown (uvicorn calls
    ``shutdown`` on every open connection) the process's SSE streams end with a ``retry:``
    hint, so their clients resume on another process with ``Last-Event-ID`` instead of
    holding the shutdown until ``drain_timeout_s``. Other requests in flight finish."""

    def shutdown(self) -> None:
        close_streams()
        super().shutdown()


def api_app() -> Asgi:
    """The ASGI application of one ``tokenforge api`` process, settings from the environment
    (the import-string factory uvicorn calls in each of its worker processes)."""
    settings = Settings()
    configure_process(settings, "api")  # before the app's modules create their metrics
    from tokenforge.api.app import create_api_app
    from tokenforge.api.startup import report_startup_failures

    return report_startup_failures(create_api_app(settings))


async def check_schema(settings: Settings) -> None:
    """Refuse an unmigrated database before starting server processes (SCHEMA_NOT_MIGRATED)."""
    from tokenforge.store.db import make_engine
    from tokenforge.store.migrate import require_head

    engine = make_engine(settings.resolved_database_url)
    try:
        await require_head(engine)
    finally:
        await engine.dispose()


def _background_main(settings_json: str) -> None:
    """Entry point of the worker process."""
    settings = Settings.model_validate_json(settings_json)
    configure_process(settings, "worker")
    asyncio.run(_run_background(settings))


async def _run_background(settings: Settings) -> None:
    from tokenforge.bootstrap import build_container

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    parent = os.getppid()
    container = await build_container(settings)
    try:
        await container.start(relay=True, worker=True, indexer=True)
        from tokenforge.api.limits import cap_recursion_limit

        cap_recursion_limit()  # the chains' libraries raise it at import (py_ecc: 100,000)
        while not stop.is_set():
            if os.getppid() != parent:  # orphaned: the API process is gone
                log.error("API process exited; stopping the worker")
                break
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except TimeoutError:
                pass
    finally:
        await container.close()


class BackgroundProcess:
    """The relay + worker child process, supervised fail-fast."""

    def __init__(self, settings: Settings) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._process = ctx.Process(
            target=_background_main, args=(settings.model_dump_json(),), name="tokenforge-worker", daemon=True
        )
        self._stopping = False

    def start(self) -> None:
        self._process.start()
        threading.Thread(target=self._watch, name="worker-watchdog", daemon=True).start()

    def _watch(self) -> None:
        self._process.join()
        if not self._stopping:
            code = self._process.exitcode
            log.critical("worker process exited with %s; stopping the server", code)
            os._exit(code if code and code > 0 else 1)

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stopping = True
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout_s)
            if self._process.is_alive():
                self._process.kill()
                self._process.join()
