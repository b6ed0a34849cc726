"""How a process records and serves Prometheus metrics, alone or with its siblings.

**Several processes on one host** (``tokenforge api --workers N``, relays, workers) share
one directory in prometheus-client's multiprocess mode: each process writes its values to
memory-mapped files there and any process's ``/metrics`` serves the merged view
(:func:`render`). The metric objects and how each gauge merges are in
:mod:`tokenforge.observability.metrics`.

prometheus-client picks its value store when ``prometheus_client.values`` is first
imported, from ``PROMETHEUS_MULTIPROC_DIR``, and a metric without labels takes its store
when it is created. So :func:`setup_metrics` must run first thing in every process entry
point, before :mod:`tokenforge.observability.metrics` is imported (bootstrap, the API app
and the job modules all import it). This module imports prometheus-client only inside its
functions, after the variable is set. Child processes started later (uvicorn workers, the
``serve --worker-process`` child) inherit the variable.

Live gauges of processes that died are removed by :func:`prune_dead_processes` (at set-up
and on every scrape): uvicorn workers and separately started processes do not tell their
siblings when they exit, so the files of pids that no longer exist are cleaned instead.
Counters and histograms of dead processes stay: their counts happened. The directory must
belong to one host (pids mean nothing elsewhere).
"""

from __future__ import annotations

import glob
import os
import re
import sys
from pathlib import Path

from tokenforge.config import Settings

ENV_DIR = "PROMETHEUS_MULTIPROC_DIR"
_METRICS_MODULE = "tokenforge.observability.metrics"
_LIVE_FILE = re.compile(r"^gauge_live[a-z]+_(\d+)\.db$")
#: The directory set up in this process (a second call with it is a no-op).
_set_up: Path | None = None


def multiprocess_dir() -> Path | None:
    """The multiprocess directory this process writes to, or None (single-process)."""
    path = os.environ.get(ENV_DIR)
    return Path(path) if path else None


def setup_metrics(settings: Settings) -> Path | None:
    """Choose single- or multiprocess metrics for this process (see the module docstring).

    With ``settings.metrics_dir`` (or ``PROMETHEUS_MULTIPROC_DIR`` already set) the
    directory is created, exported in ``PROMETHEUS_MULTIPROC_DIR`` for this process and its
    children, and cleaned of the live gauges of processes that are gone. Returns the
    directory, or None. Raises RuntimeError when the metrics were created before."""
    path = Path(settings.metrics_dir) if settings.metrics_dir is not None else multiprocess_dir()
    if path is None:
        return None
    global _set_up
    if _set_up == path:
        return path
    path.mkdir(parents=True, exist_ok=True)
    os.environ[ENV_DIR] = str(path)
    from prometheus_client import values
    from prometheus_client.multiprocess import mark_process_dead

    metrics = sys.modules.get(_METRICS_MODULE)
    if metrics is None:
        # prometheus_client may have been imported (by a library) before the variable was set
        values.ValueClass = values.get_value_class()
        mark_process_dead(os.getpid(), str(path))  # left by an earlier process with our pid
    elif type(metrics.OUTBOX_PENDING._value).__name__ != "MmapedValue":  # created before the variable was set
        raise RuntimeError(
            f"setup_metrics must run before {_METRICS_MODULE} is imported (metrics would stay in memory)"
        )
    prune_dead_processes(path)
    _set_up = path
    return path


def prune_dead_processes(path: Path | None = None) -> list[int]:
    """Remove the live gauges of processes on this host that no longer exist; returns
    their pids. Cheap: a directory listing and one ``kill(pid, 0)`` per process."""
    path = path or multiprocess_dir()
    if path is None:
        return []
    from prometheus_client.multiprocess import mark_process_dead

    dead: set[int] = set()
    for file in glob.glob(os.path.join(path, "gauge_live*.db")):
        match = _LIVE_FILE.match(os.path.basename(file))
        if match and not _alive(int(match.group(1))):
            dead.add(int(match.group(1)))
    for pid in dead:
        mark_process_dead(pid, str(path))
    return sorted(dead)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def render() -> tuple[bytes, str]:
    """The text exposition of this process's metrics (in multiprocess mode: of every
    process sharing the directory) and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    path = multiprocess_dir()
    if path is None:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    prune_dead_processes(path)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(path))
    return generate_latest(registry), CONTENT_TYPE_LATEST
