"""The small HTTP server of relay, worker and sweeper processes: ``/healthz``,
``/readyz`` and ``/metrics``, served by uvicorn in the process's own event loop.

:class:`HealthServer` (``start`` / ``port`` / ``stop``) listens (port 0: a free one), samples the
queue and outbox backlog periodically
(:class:`~tokenforge.observability.backlog.BacklogSampler`) and stops both. It leaves
signal handling to the process (uvicorn's own handlers are not installed), so the
process's SIGTERM drain stays in charge.

``/readyz`` runs :func:`~tokenforge.observability.readiness.check_readiness` for the
dependency groups the process uses (``checks``: a relay needs ``("database", "broker")``,
a worker ``("database", "broker", "chains")``, a sweeper ``("database",)``); the API
serves the same answers from :mod:`tokenforge.api.routes.health`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Collection, Iterator
from typing import TYPE_CHECKING

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tokenforge.observability.backlog import BacklogSampler
from tokenforge.observability.prometheus import render
from tokenforge.observability.readiness import ALL_CHECKS, check_readiness

if TYPE_CHECKING:
    from tokenforge.bootstrap import Container

log = logging.getLogger(__name__)


def health_app(container: Container, *, checks: Collection[str] = ALL_CHECKS) -> Starlette:
    """The three endpoints as an ASGI app (served by :class:`HealthServer`)."""

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        report = await check_readiness(container, checks=checks)
        return JSONResponse(report.as_dict(), status_code=report.http_status)

    async def metrics(_: Request) -> Response:
        body, content_type = render()
        return Response(body, media_type=content_type)

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ]
    )


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the process that embeds it handles signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HealthServer:
    """The health endpoints of one process, on ``host:port`` (0: a free port) between
    :meth:`start` and :meth:`stop`, with the backlog sampled every ``sample_interval_s``."""

    def __init__(
        self,
        container: Container,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        checks: Collection[str] = ALL_CHECKS,
        sample_interval_s: float = 15.0,
    ) -> None:
        self._container = container
        self._host = host
        self._requested_port = port
        self._checks = checks
        self._sample_interval_s = sample_interval_s
        self._sock: socket.socket | None = None
        self._port: int | None = None
        self._server: _Server | None = None
        self._tasks: list[asyncio.Task] = []

    @property
    def port(self) -> int:
        """The port listened on (after :meth:`start`)."""
        if self._port is None:
            raise RuntimeError("the health server is not started")
        return self._port

    async def start(self) -> None:
        """Listen, and return once requests are answered."""
        self._sock = socket.create_server((self._host, self._requested_port))
        self._sock.setblocking(False)
        self._port = self._sock.getsockname()[1]
        config = uvicorn.Config(
            health_app(self._container, checks=self._checks),
            log_config=None,  # the process's logging stays as configure_logging made it
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        self._server = _Server(config)
        serving = asyncio.create_task(self._server.serve(sockets=[self._sock]), name="health-server")
        sampler = BacklogSampler(self._container, readiness_checks=self._checks)
        self._tasks = [serving, asyncio.create_task(sampler.run(self._sample_interval_s), name="backlog-sampler")]
        while not self._server.started:  # uvicorn offers a flag, not an event
            if serving.done():
                await self.stop()
                raise RuntimeError("the health server stopped while starting")
            await asyncio.sleep(0.01)
        log.info("health endpoints on http://%s:%d", self._host, self.port)

    async def stop(self) -> None:
        """Stop answering and sampling."""
        if self._server is not None:
            self._server.should_exit = True
        tasks, self._tasks = self._tasks, []
        for task in tasks[1:]:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._sock is not None:
            self._sock.close()
