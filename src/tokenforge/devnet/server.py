"""The devnet process: opens the embedded chains, serves their JSON-RPC over HTTP, closes them.

* :class:`DevnetConfig` — what ``tokenforge devnet`` takes: address, data directory (one
  sub-directory per chain, so state survives restarts) or in-memory state, Solana slot
  length, which chains.
* :class:`Devnet` — the open chains and one JSON-RPC endpoint per chain, keyed by the URL
  path: ``/ethereum``, ``/bsc``, ``/base`` (EVM, chain id of :data:`Network.LOCAL`) and
  ``/solana``.
* :class:`DevnetApp` — a plain ASGI application: ``POST /<chain>`` answers JSON-RPC (single
  or batch), ``GET /health`` answers ``ok`` while every chain is open, anything else 404/405.
  Browsers may call it (CORS: any origin). Requests are not logged.
* :func:`run_devnet` — binds the address first (a taken port fails before any chain opens),
  opens the chains, announces one line per chain with its URL, serves with uvicorn until
  SIGINT or SIGTERM, and closes the chains on the way out (uvicorn's lifespan shutdown).

Chain work never runs on the event loop: each EVM chain answers on its own thread under its
lock (:meth:`EmbeddedEvmChain.run`), Solana on its transport's thread.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenforge.chains.evm.embedded import EmbeddedEvmChain
from tokenforge.chains.solana.embedded import EmbeddedSolanaChain
from tokenforge.chains.solana.embedded_transport import EmbeddedTransport
from tokenforge.domain.chains import CHAINS, Family, Network
from tokenforge.errors import ErrorCode, TransientError, ValidationFailed

from .evm_rpc import EvmRpc
from .jsonrpc import Dispatcher, answer_body
from .solana_rpc import SolanaRpc

log = logging.getLogger(__name__)

DEFAULT_CHAINS = ("ethereum", "bsc", "base", "solana")
DEFAULT_DATA_DIR = Path(".tokenforge-devnet")
DEFAULT_PORT = 8899
MAX_BODY_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class DevnetConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    data_dir: Path = DEFAULT_DATA_DIR
    in_memory: bool = False
    slot_ms: int = 400
    chains: tuple[str, ...] = DEFAULT_CHAINS

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValidationFailed("port", f"{self.port} is not a TCP port")
        if self.slot_ms < 1:
            raise ValidationFailed("slot_ms", "must be at least 1")
        if not self.chains:
            raise ValidationFailed("chains", "name at least one chain")
        unknown = [c for c in self.chains if c not in CHAINS]
        if unknown:
            raise ValidationFailed("chains", f"unknown chain(s) {', '.join(unknown)}; known: {', '.join(CHAINS)}")
        if len(set(self.chains)) != len(self.chains):
            raise ValidationFailed("chains", "a chain is named twice")

    @staticmethod
    def parse_chains(text: str) -> tuple[str, ...]:
        """``"ethereum, solana"`` -> ``("ethereum", "solana")``."""
        return tuple(name.strip().lower() for name in text.split(",") if name.strip())

    def state_dir(self, chain: str) -> Path | None:
        return None if self.in_memory else self.data_dir / chain


class Devnet:
    """The open chains and their JSON-RPC endpoints by path name. Open with :meth:`open`."""

    def __init__(self, config: DevnetConfig) -> None:
        self.config = config
        self.endpoints: dict[str, Dispatcher] = {}
        self._closers: list[Callable[[], Any]] = []
        self.is_open = False
        self._closed = False

    @classmethod
    async def open(cls, config: DevnetConfig) -> Devnet:
        """Opens every configured chain (state dirs are created); on failure closes what opened."""
        devnet = cls(config)
        try:
            for name in config.chains:
                await devnet._open_chain(name)
        except BaseException:
            await devnet.close()
            raise
        devnet.is_open = True
        return devnet

    async def _open_chain(self, name: str) -> None:
        spec = CHAINS[name]
        state_dir = self.config.state_dir(name)
        if spec.family is Family.EVM:
            chain_id = spec.evm_chain_id(Network.LOCAL)
            evm = await asyncio.to_thread(EmbeddedEvmChain, state_dir, chain_id)
            self._closers.append(lambda: asyncio.to_thread(evm.close))
            self.endpoints[name] = EvmRpc(evm)
        else:
            slot_s = self.config.slot_ms / 1000
            solana = await asyncio.to_thread(lambda: EmbeddedSolanaChain(state_dir, slot_duration_s=slot_s))
            transport = EmbeddedTransport(solana)
            self._closers.append(transport.close)
            self.endpoints[name] = SolanaRpc(solana, transport)

    async def close(self) -> None:
        """Closes every chain (their state is saved). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.is_open = False
        for closer in reversed(self._closers):
            try:
                await closer()
            except Exception:
                log.warning("closing a devnet chain failed", exc_info=True)


class DevnetApp:
    """The devnet's HTTP surface as a plain ASGI application (see the module docstring)."""

    def __init__(self, devnet: Devnet) -> None:
        self._devnet = devnet

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Callable, send: Callable) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._devnet.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: dict, receive: Callable, send: Callable) -> None:
        method = scope["method"]
        path = scope["path"].rstrip("/") or "/"
        if method == "OPTIONS":  # CORS preflight
            await _respond(
                send,
                204,
                b"",
                b"text/plain",
                (
                    (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
                    (b"access-control-allow-headers", b"content-type"),
                    (b"access-control-max-age", b"86400"),
                ),
            )
            return
        if path == "/health":
            if method not in ("GET", "HEAD"):
                await _respond(send, 405, b"method not allowed", b"text/plain", ((b"allow", b"GET"),))
            elif self._devnet.is_open:
                await _respond(send, 200, b"ok", b"text/plain")
            else:
                await _respond(send, 503, b"not ready", b"text/plain")
            return
        dispatcher = self._devnet.endpoints.get(path[1:])
        if dispatcher is None:
            served = ", ".join(f"/{name}" for name in self._devnet.endpoints)
            await _respond(send, 404, f"no chain at {path}; served: {served}".encode(), b"text/plain")
            return
        if method != "POST":
            await _respond(send, 405, b"JSON-RPC takes POST", b"text/plain", ((b"allow", b"POST"),))
            return
        body = await _read_body(receive)
        if body is None:
            await _respond(send, 413, b"request body too large", b"text/plain")
            return
        await _respond(send, 200, await answer_body(body, dispatcher), b"application/json")


async def _read_body(receive: Callable) -> bytes | None:
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b""
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _respond(
    send: Callable, status: int, body: bytes, content_type: bytes, extra_headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        (b"access-control-allow-origin", b"*"),
        *extra_headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def chain_url(host: str, port: int, chain: str) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/{chain}"


def run_devnet(config: DevnetConfig, *, announce: Callable[[str], None] = print) -> None:
    """Serves the devnet until SIGINT or SIGTERM (see the module docstring).

    Raises a :class:`~tokenforge.errors.TokenForgeError` when the address is taken or a
    chain cannot be opened (e.g. its state directory is in use by another process)."""
    import uvloop

    sock = _bind(config.host, config.port)
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM stops like Ctrl-C
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_serve(config, sock, announce))
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        sock.close()


async def _serve(config: DevnetConfig, sock: socket.socket, announce: Callable[[str], None]) -> None:
    import uvicorn

    devnet = await Devnet.open(config)
    try:
        port = sock.getsockname()[1]
        for name in config.chains:
            announce(f"{name:<9} {chain_url(config.host, port, name)}")
        server = uvicorn.Server(
            uvicorn.Config(
                DevnetApp(devnet),
                lifespan="on",
                http="httptools",
                log_level="warning",
                access_log=False,
                timeout_keep_alive=75,  # longer than clients keep idle pooled connections
            )
        )
        await server.serve(sockets=[sock])
    finally:
        await devnet.close()


def _bind(host: str, port: int) -> socket.socket:
    sock = None
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        if sock is not None:
            sock.close()
        raise TransientError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}", code=ErrorCode.ADDRESS_UNAVAILABLE
        ) from None
    sock.set_inheritable(True)
    return sock
