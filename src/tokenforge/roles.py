"""``tokenforge serve --worker-process``: the API in the main process, the outbox relay and
the worker in a child process, so each gets its own interpreter (and core). Meant for
PostgreSQL; on SQLite one process is faster (docs/decisions/0005-group-commit.md).

The two share only the database. The API does not wake the relay directly; the relay
polls the outbox every ``relay_poll_s`` (an indexed ``MIN(available_at)`` query), and SSE
streams re-read job events every ``event_poll_s``.

The parent is a fail-fast supervisor: when the worker process dies, the server exits with
the worker's exit code (run it under systemd or another supervisor to restart it);
unfinished launches resume from the database on the next start. A worker whose parent
disappears stops too.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import sys
import threading

from tokenforge.config import Settings

log = logging.getLogger(__name__)


def _background_main(settings_json: str) -> None:
    """Entry point of the worker process."""
    from tokenforge.observability import configure_logging

    settings = Settings.model_validate_json(settings_json)
    configure_logging(settings)
    sys.setswitchinterval(settings.gil_switch_interval_s)
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
        await container.start(relay=True, worker=True)
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
