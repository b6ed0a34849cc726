"""A local TokenForge cluster of real processes on 127.0.0.1 that tests and benchmarks can break.

What :class:`Cluster` starts, each in its own session with its output in a log file under
its work directory:

* ``tokenforge devnet`` (EVM and Solana JSON-RPC);
* PostgreSQL: a throw-away cluster (``postgres="own"``, :mod:`tests.support.pg_cluster`) or
  a fresh database on the shared server at 127.0.0.1:5432 (``postgres="shared"``, dropped
  at the end);
* RabbitMQ: a fresh vhost on the shared broker at 127.0.0.1:5672 (deleted at the end); a
  restart is ``rabbitmqctl stop_app`` / ``start_app`` of that broker (quorum queues and
  persistent messages survive it), and :meth:`Cluster.close` always leaves it running;
* Redis: a ``redis-server`` child on a free port, nothing persisted, so a restart is an
  empty cache;
* ``tokenforge migrate`` once, then ``workers`` × ``tokenforge worker`` (every chain; the
  sweeper runs inside them), ``relays`` × ``tokenforge relay``, ``apis`` × ``tokenforge
  api --workers 1``, and HAProxy in front of the API processes (:func:`haproxy_config`).

Every TokenForge process shares one data directory (so one master key and the same sealed
deployer keys: ``tokenforge keys list`` creates them once before anything else starts), one
Prometheus multiprocess directory and the same ``TOKENFORGE_*`` settings. The first worker
is started alone and awaited, so it opens the chains (factory deployment, key funding)
before a second process could race it.

Processes of a kind are in ``cluster.procs[kind]``; :meth:`Cluster.kill` sends SIGKILL to
one's process group and :meth:`Cluster.restart` starts it again with the same command, as a
supervisor would. Everything is async: the chaos runner and the benchmark drive HTTP load on
the same event loop::

    async with Cluster(chains=["ethereum", "solana"]) as cluster:
        async with httpx.AsyncClient(base_url=cluster.base_url) as client: ...
        await cluster.kill(cluster.procs["worker"][0]); await cluster.restart(...)
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import httpx

from tests.support.pg_cluster import PostgresCluster
from tests.support.server import free_port

START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 30.0
RESTART_DELAY_S = 1.0
HOST = "127.0.0.1"
SHARED_PG_PORT, RABBIT_PORT = 5432, 5672
READY_LINE = re.compile(rb"tokenforge (\w+) ready(?:; health on (http://\S+))?")
CLK_TCK = os.sysconf("SC_CLK_TCK")


class ClusterError(RuntimeError):
    """A part of the cluster could not be started, broken or repaired as asked."""


# ----------------------------------------------------------------------------- processes
class Proc:
    """One supervised child process: its own session (a kill reaches its children too), output
    appended to one log file kept across restarts, the same command on every start.

    ``ready`` names how a start is awaited: ``"line"`` (the ``tokenforge <role> ready; health
    on URL`` line in its output, then ``URL/healthz``; the line alone when it names no
    URL), ``"http"`` (``health_url`` answers
    200 on ``health_path``) or ``"none"``.
    """

    def __init__(
        self,
        name: str,
        kind: str,
        argv: list[str],
        env: dict,
        log_path: Path,
        *,
        ready: str,
        health_url: str = "",
        health_path: str = "/healthz",
    ) -> None:
        self.name, self.kind, self.argv, self.env, self.log_path = name, kind, argv, env, log_path
        self.ready, self.health_url, self.health_path = ready, health_url, health_path
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.failed_starts = 0
        self._log_offset = 0

    def __repr__(self) -> str:
        return f"Proc({self.name}, pid={self.pid})"

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def start(self) -> None:
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1

    def exit_code(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL to the whole process group: no shutdown code runs."""
        if self.running:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()

    def stop(self) -> None:
        """SIGTERM to the process group, SIGKILL after ``STOP_TIMEOUT_S``."""
        if not self.running:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            self.kill()

    def output_since_start(self) -> bytes:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                return f.read()
        except OSError:
            return b""

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    async def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Until the process says (``ready="line"``) and shows (``health_path``) it is ready."""
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=2) as client:
            while True:
                if self.exit_code() is not None:
                    raise ClusterError(f"{self.name} exited with {self.exit_code()}:\n{self.log_tail()}")
                if self.ready == "none":
                    return
                found = READY_LINE.search(self.output_since_start()) if self.ready == "line" else None
                if found and not found.group(2):
                    return  # ready, and no health port to check
                if found and not self.health_url:
                    self.health_url = found.group(2).decode()
                if self.health_url and (found or self.ready == "http"):
                    try:
                        if (await client.get(self.health_url + self.health_path)).status_code == 200:
                            return
                    except httpx.TransportError:
                        pass
                if time.monotonic() > deadline:
                    raise ClusterError(f"{self.name} did not become ready in {timeout_s:.0f} s:\n{self.log_tail()}")
                await asyncio.sleep(0.1)  # polling another process: there is no event to await


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and all its live descendants (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(_stat(int(entry.name))[1])
            except (OSError, IndexError, ValueError):
                pass
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in tree:
                tree.add(child)
                frontier.append(child)
    total = 0.0
    for p in tree:
        try:
            fields = _stat(p)
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime
        except (OSError, IndexError, ValueError):
            pass
    return total


def pids_named(name: str) -> list[int]:
    """Pids whose command name (``/proc/<pid>/comm``) is ``name``, e.g. ``beam.smp``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


async def run_command(*argv: str, timeout_s: float = 120.0, env: dict | None = None) -> str:
    """Runs a command to its end; its output, or ClusterError with the output's tail."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise ClusterError(f"{' '.join(argv[:3])} did not finish in {timeout_s:.0f} s") from None
    if proc.returncode != 0:
        raise ClusterError(f"{' '.join(argv[:3])} failed ({proc.returncode}): {out.decode(errors='replace')[-2000:]}")
    return out.decode(errors="replace")


def port_open(port: int, host: str = HOST) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


# ----------------------------------------------------------------------------- services
class SharedBroker:
    """A vhost of its own on the shared RabbitMQ; stops and starts that broker's application."""

    def __init__(self) -> None:
        self.vhost = f"tf-cluster-{secrets.token_hex(4)}"
        self.url = f"amqp://guest:guest@{HOST}:{RABBIT_PORT}/{quote(self.vhost, safe='')}"
        self.stopped = False
        self._created = False

    async def create(self) -> None:
        await run_command("rabbitmqctl", "-q", "add_vhost", self.vhost)
        self._created = True
        await run_command("rabbitmqctl", "-q", "set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*")

    async def stop(self) -> None:
        """``rabbitmqctl stop_app``: every connection drops, the node stays up to start again."""
        self.stopped = True
        await run_command("rabbitmqctl", "-q", "stop_app")

    async def start(self) -> None:
        await run_command("rabbitmqctl", "-q", "start_app")
        await run_command("rabbitmqctl", "-q", "await_startup")
        self.stopped = False

    async def close(self) -> None:
        """Starts the broker again if this cluster stopped it, then deletes the vhost."""
        try:
            if self.stopped:
                await self.start()
        finally:
            if self._created:
                await run_command("rabbitmqctl", "-q", "delete_vhost", self.vhost)
                self._created = False


class RedisChild:
    """``redis-server`` on a free port with nothing persisted: a restart is an empty cache."""

    def __init__(self, workdir: Path, env: dict) -> None:
        self.port = free_port()
        self.url = f"redis://{HOST}:{self.port}/0"
        argv = ["redis-server", "--port", str(self.port), "--bind", HOST, "--save", "", "--appendonly", "no"]
        self.proc = Proc("redis", "redis", [*argv, "--daemonize", "no"], env, workdir / "redis.log", ready="none")

    async def start(self) -> None:
        self.proc.start()
        deadline = time.monotonic() + 30
        while not await asyncio.to_thread(self.ping):
            if self.proc.exit_code() is not None or time.monotonic() > deadline:
                raise ClusterError(f"redis-server did not start:\n{self.proc.log_tail()}")
            await asyncio.sleep(0.05)  # polling another process: there is no event to await

    def ping(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        self.proc.kill()


class PostgresDatabase:
    """A throw-away cluster (``own``) or a fresh database on the shared server (``shared``)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.name = f"tf_cluster_{secrets.token_hex(5)}"
        self.cluster: PostgresCluster | None = None
        self.url = ""

    @property
    def pids(self) -> list[int]:
        """The own cluster's postmaster (its backends are its children), or every process of
        the shared server (which serves other clients too)."""
        if self.cluster is not None:
            try:
                return [int((self.cluster.data_dir / "postmaster.pid").read_text().split()[0])]
            except (OSError, IndexError, ValueError):
                return []
        return pids_named("postgres")

    async def create(self) -> None:
        if self.mode == "own":
            self.cluster = PostgresCluster(database=self.name)
            try:
                await asyncio.to_thread(self.cluster.start)
            except BaseException:
                await asyncio.to_thread(self.cluster.close)
                self.cluster = None
                raise
            self.url = self.cluster.url
            return
        await self._admin(f'CREATE DATABASE "{self.name}"')
        self.url = f"postgresql+asyncpg://postgres@{HOST}:{SHARED_PG_PORT}/{self.name}"

    async def close(self) -> None:
        if self.cluster is not None:
            await asyncio.to_thread(self.cluster.close)
            self.cluster = None
        elif self.url:
            await self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            self.url = ""

    @staticmethod
    async def _admin(sql: str) -> None:
        import asyncpg

        conn = await asyncpg.connect(host=HOST, port=SHARED_PG_PORT, user="postgres", database="postgres")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()


def haproxy_config(port: int, api_ports: list[int]) -> str:
    """HAProxy in front of the API processes.

    Two backends over the same servers: requests that may be replayed (GET/HEAD, and any
    request carrying an ``Idempotency-Key``, which the API deduplicates) are retried on the
    other server when a connection fails or a server dies before answering (``retry-on``,
    ``option redispatch``; ``http-buffer-request`` keeps the whole request, body included,
    to send it again); any other request only when it could not be sent at all. Servers
    are checked on ``/healthz`` every 500 ms and taken out after two failures or a broken
    connection; ``timeout server`` outlasts an SSE stream's quiet periods. Abnormal requests
    only (errors, retries, redispatches) are logged, to stdout.
    """
    checks = (
        "inter 500ms fastinter 250ms downinter 500ms fall 2 rise 1 observe layer4 error-limit 1 on-error fail-check"
    )
    servers = "\n".join(f"    server api{i} {HOST}:{p} check" for i, p in enumerate(api_ports))
    tracked = "\n".join(f"    server api{i} {HOST}:{p} track replayable/api{i}" for i, p in enumerate(api_ports))
    return f"""\
global
    maxconn 4096
    log stdout format raw local0 info

defaults
    mode http
    log global
    option httplog
    option dontlog-normal
    option redispatch 1
    retries 3
    timeout connect 2s
    timeout client 10m
    timeout server 10m
    timeout http-keep-alive 75s
    timeout queue 10s

frontend api
    bind {HOST}:{port}
    acl replayable method GET HEAD
    acl replayable req.hdr(idempotency-key) -m found
    use_backend replayable if replayable
    default_backend once

backend replayable
    balance roundrobin
    option http-buffer-request
    retry-on conn-failure empty-response junk-response 502 503 504
    option httpchk GET /healthz
    http-check expect status 200
    default-server {checks}
{servers}

backend once
    balance roundrobin
    retry-on conn-failure
{tracked}
"""


# ----------------------------------------------------------------------------- the cluster
class Cluster:
    """The whole local cluster; ``async with`` starts it and always tears everything down.

    ``base_url`` is HAProxy's frontend; ``devnet_url`` the devnet (``/<chain>`` per chain);
    ``procs`` the TokenForge processes by kind (``api``, ``relay``, ``worker``) plus
    ``devnet`` and ``haproxy``; ``redis``, ``broker``, ``db`` the services.
    """

    def __init__(
        self,
        *,
        chains: list[str],
        chain_settings: Callable[[list[str], str], dict],
        apis: int = 2,
        relays: int = 2,
        workers: int = 2,
        worker_concurrency: int | None = None,
        postgres: str = "own",
        extra_env: dict[str, str] | None = None,
        keep: bool = False,
        say: Callable[[str], None] = lambda _text: None,
    ) -> None:
        self.chains, self.chain_settings = chains, chain_settings
        self.counts = {"api": apis, "relay": relays, "worker": workers}
        self.worker_concurrency, self.extra_env, self.keep, self.say = worker_concurrency, extra_env or {}, keep, say
        self.workdir = Path(tempfile.mkdtemp(prefix="tokenforge-cluster-"))
        self.base_env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENFORGE_")}
        self.base_env["PYTHONUNBUFFERED"] = "1"  # the ready line reaches the log file at once
        self.db = PostgresDatabase(postgres)
        self.broker = SharedBroker()
        self.redis = RedisChild(self.workdir, self.base_env)
        self.procs: dict[str, list[Proc]] = {"devnet": [], "haproxy": [], "api": [], "relay": [], "worker": []}
        self.port = free_port()
        self.base_url = f"http://{HOST}:{self.port}"
        devnet_port = free_port()
        self.devnet_url = f"http://{HOST}:{devnet_port}"
        self.env: dict[str, str] = {}
        #: ``Authorization`` of an operator API key, issued once the database is migrated.
        self.headers: dict[str, str] = {}
        devnet_argv = [
            *(sys.executable, "-m", "tokenforge", "devnet", "--port", str(devnet_port)),
            *("--data-dir", str(self.workdir / "devnet"), "--chains", ",".join(chains)),
        ]
        self.devnet = self._add(
            "devnet", devnet_argv, self.base_env, ready="http", health_url=self.devnet_url, health_path="/health"
        )

    # -- lifecycle ------------------------------------------------------------------
    async def __aenter__(self) -> Cluster:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *_exc) -> None:
        await self.close()

    async def start(self) -> None:
        for tool in ("rabbitmqctl", "redis-server", "haproxy"):
            if shutil.which(tool) is None:
                raise ClusterError(f"{tool} is not installed")
        if not port_open(RABBIT_PORT):
            raise ClusterError(f"RabbitMQ is not reachable at {HOST}:{RABBIT_PORT}")
        started = time.monotonic()
        self.devnet.start()
        await asyncio.gather(self.db.create(), self.broker.create(), self.redis.start())
        await self.devnet.wait_ready()
        self.env = {
            **self.base_env,
            "TOKENFORGE_DATABASE_URL": self.db.url,
            "TOKENFORGE_BROKER_URL": self.broker.url,
            "TOKENFORGE_CACHE_URL": self.redis.url,
            "TOKENFORGE_CHAINS": json.dumps(self.chain_settings(self.chains, self.devnet_url)),
            "TOKENFORGE_DATA_DIR": str(self.workdir / "data"),
            "TOKENFORGE_METRICS_DIR": str(self.workdir / "metrics"),
            "TOKENFORGE_LOG_LEVEL": "WARNING",
            "TOKENFORGE_RATE_LIMITS_ENABLED": "false",  # every request comes through one proxy
            **self.extra_env,
        }
        (self.workdir / "metrics").mkdir()
        tokenforge = (sys.executable, "-m", "tokenforge")
        await run_command(*tokenforge, "migrate", timeout_s=START_TIMEOUT_S, env=self.env)
        self.headers = {"Authorization": f"Bearer {await asyncio.to_thread(self._operator_key)}"}
        await run_command(*tokenforge, "keys", "list", timeout_s=START_TIMEOUT_S, env=self.env)
        for _ in range(self.counts["worker"]):
            argv = [*tokenforge, "worker", "--chains", ",".join(self.chains), "--health-port", str(free_port())]
            if self.worker_concurrency:
                argv += ["--concurrency", str(self.worker_concurrency)]
            self._add("worker", argv, self.env, ready="line")
        await self.restart(self.procs["worker"][0])  # the first worker opens the chains alone (factory, funding)
        for _ in range(self.counts["relay"]):
            self._add("relay", [*tokenforge, "relay", "--health-port", str(free_port())], self.env, ready="line")
        api_ports = []
        for _ in range(self.counts["api"]):
            api_ports.append(port := free_port())
            argv = [*tokenforge, "api", "--host", HOST, "--port", str(port), "--workers", "1"]
            self._add("api", argv, self.env, ready="http", health_url=f"http://{HOST}:{port}")
        await asyncio.gather(
            *(self.restart(p) for kind in ("worker", "relay", "api") for p in self.procs[kind] if not p.starts)
        )
        config = self.workdir / "haproxy.cfg"
        config.write_text(haproxy_config(self.port, api_ports))
        await run_command("haproxy", "-c", "-q", "-f", str(config))
        haproxy = self._add("haproxy", ["haproxy", "-db", "-f", str(config)], self.base_env, ready="http")
        haproxy.health_url = self.base_url
        haproxy.start()
        await haproxy.wait_ready()
        self.say(f"cluster up in {time.monotonic() - started:.1f} s: {self.describe()}")

    def _operator_key(self) -> str:
        from tests.support.auth import env_key

        return env_key(self.env)

    async def close(self) -> None:
        """Stops every process, removes the database, the vhost, Redis and the work directory;
        the shared broker is left running whatever happened."""
        for kind in ("haproxy", "api", "relay", "worker", "devnet"):
            await asyncio.gather(*(asyncio.to_thread(p.stop) for p in self.procs[kind]))
        self.redis.stop()
        errors = []
        for closing in (self.broker.close, self.db.close):
            try:
                await closing()
            except Exception as exc:  # noqa: BLE001 - every part is cleaned up; the first failure is reported
                errors.append(exc)
        if self.keep:
            self.say(f"work dir kept: {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)
        if errors:
            raise ClusterError(f"clean-up failed: {errors[0]}") from errors[0]

    # -- faults -----------------------------------------------------------------------
    async def kill(self, proc: Proc) -> None:
        await asyncio.to_thread(proc.kill)

    async def restart(self, proc: Proc) -> float:
        """Starts ``proc`` (again) and waits until it is ready; returns how long that took.

        As a supervisor does, a start that exits before it is ready (say, a dependency is
        down) is tried again after ``RESTART_DELAY_S``, for up to ``START_TIMEOUT_S``; each
        such start counts in ``proc.failed_starts``."""
        started = time.monotonic()
        while True:
            if proc.kind in ("relay", "worker"):
                proc.health_url = ""  # the ready line names it again
            proc.start()
            try:
                await proc.wait_ready(max(1.0, START_TIMEOUT_S - (time.monotonic() - started)))
                return round(time.monotonic() - started, 2)
            except ClusterError:
                if proc.exit_code() is None or time.monotonic() - started > START_TIMEOUT_S:
                    raise
                proc.failed_starts += 1
                self.say(f"{proc.name} exited while starting ({proc.exit_code()}); starting it again")
                await asyncio.sleep(RESTART_DELAY_S)

    async def stop_broker(self) -> None:
        await self.broker.stop()

    async def start_broker(self) -> None:
        await self.broker.start()

    async def stop_cache(self) -> None:
        await asyncio.to_thread(self.redis.stop)

    async def start_cache(self) -> None:
        await self.redis.start()

    def crashed(self) -> list[Proc]:
        """TokenForge processes and servers that exited although nothing stopped them."""
        return [p for kind in self.procs.values() for p in kind if p.starts and p.exit_code() is not None]

    # -- reporting ----------------------------------------------------------------------
    def cpu_s_by_kind(self) -> dict[str, float]:
        """CPU seconds so far of each kind's processes (the shared ``postgres`` server and
        ``rabbitmq`` count every client's work, not only this cluster's)."""
        kinds: dict[str, list[int]] = {k: [p.pid for p in v if p.running] for k, v in self.procs.items()}
        kinds["redis"] = [self.redis.proc.pid] if self.redis.proc.running else []
        kinds["postgres"] = self.db.pids
        kinds["rabbitmq"] = pids_named("beam.smp")
        return {k: round(sum(tree_cpu_s(pid) for pid in pids), 3) for k, pids in kinds.items()}

    def describe(self) -> dict:
        return {
            "base_url": self.base_url,
            "postgres": self.db.mode,
            "vhost": self.broker.vhost,
            "redis_port": self.redis.port,
            **{kind: len(self.procs[kind]) for kind in ("api", "relay", "worker")},
            "workdir": str(self.workdir),
        }

    def _add(
        self, kind: str, argv: list[str], env: dict, *, ready: str, health_url: str = "", health_path: str = "/healthz"
    ) -> Proc:
        name = f"{kind}{len(self.procs[kind])}"
        log_path = self.workdir / f"{name}.log"
        proc = Proc(name, kind, argv, env, log_path, ready=ready, health_url=health_url, health_path=health_path)
        self.procs[kind].append(proc)
        return proc
