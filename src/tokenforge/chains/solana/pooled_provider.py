"""solana-py's ``AsyncClient`` over an :class:`RpcPool` (endpoint failover, circuit breakers).

:func:`pooled_async_client` returns an ordinary ``solana.rpc.async_api.AsyncClient`` whose
provider is :class:`PooledSolanaProvider`: every request body goes through the pool. A
JSON-RPC error answer reaches solana-py unchanged (it raises its usual ``RPCException``);
when no endpoint answers, the pool's :class:`~tokenforge.errors.TransientError` propagates
as it is. solana-py 0.41 talks to its provider through ``make_request(body, parser)``,
``make_request_unparsed(body)``, ``close()`` and the async context manager; those are the
methods provided here.
"""

from __future__ import annotations

import logging
from typing import Any, Self, TypeVar, cast, get_args

from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Commitment
from solana.rpc.core import RPCException
from solders.rpc.responses import RPCError, RPCResult

from tokenforge.chains.rpc.pool import RpcPool

T = TypeVar("T", bound=RPCResult)

_RPC_ERROR_TYPES: tuple[type, ...] = get_args(RPCError)


def _method_name(body: Any) -> str:
    """``getBlockHeight`` for solders' ``GetBlockHeight`` (or a request model's ``method``)."""
    method = getattr(body, "method", None)
    if isinstance(method, str):
        return method
    name = type(body).__name__
    return name[:1].lower() + name[1:]


class PooledSolanaProvider:
    """Stands in for solana-py's ``AsyncHTTPProvider``; sends through an :class:`RpcPool`."""

    logger = logging.getLogger(__name__)

    def __init__(self, pool: RpcPool) -> None:
        self.pool = pool
        # solana-py logs this after sending a transaction: a redacted description, never a URL
        self.endpoint_uri = f"pool:{pool.chain}"

    def __str__(self) -> str:
        return f"RPC pool {self.pool.chain} ({', '.join(self.pool.labels)})"

    async def make_request(self, body: Any, parser: type[T]) -> T:
        """Sends ``body``; parses the answer with ``parser``; a JSON-RPC error raises ``RPCException``."""
        raw = await self.make_request_unparsed(body)
        # Every parser solana-py passes has ``from_json``; the RPCResult union it is bound by
        # also holds RpcCustomErrorFieldless, which has none, and solders types each class's
        # ``from_json`` as returning that class, not ``T``.
        parsed = parser.from_json(raw)  # type: ignore[attr-defined]
        if isinstance(parsed, _RPC_ERROR_TYPES):
            raise RPCException(parsed)
        return cast(T, parsed)

    async def make_request_unparsed(self, body: Any) -> str:
        raw = await self.pool.post(body.to_json().encode(), method=_method_name(body))
        return raw.decode()

    async def is_connected(self) -> bool:
        """True when some endpoint of the pool answers ``getHealth`` with ``"ok"``."""
        try:
            answer = await self.pool.call("getHealth")
        except Exception:  # noqa: BLE001 - any failure means "not connected"
            return False
        return answer.get("result") == "ok"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the pool's HTTP session (the pool reopens one if it is used again)."""
        await self.pool.close()


class PooledAsyncClient(AsyncClient):
    """An ``AsyncClient`` that talks through a pool instead of one HTTP endpoint."""

    def __init__(self, pool: RpcPool, commitment: Commitment | None = None) -> None:
        # AsyncClient.__init__ would open an HTTP client for a single endpoint: skip it and
        # run only the shared client core (commitment handling).
        super(AsyncClient, self).__init__(commitment)
        self._provider = PooledSolanaProvider(pool)  # type: ignore[assignment]

    @property
    def pool(self) -> RpcPool:
        return self._provider.pool  # type: ignore[attr-defined]

    async def is_connected(self) -> bool:
        """True when some endpoint of the pool reports itself healthy; never raises."""
        return await self._provider.is_connected()  # type: ignore[attr-defined]


def pooled_async_client(pool: RpcPool, commitment: Commitment | None = None) -> AsyncClient:
    """An ordinary solana-py ``AsyncClient`` that sends every request through ``pool``."""
    return PooledAsyncClient(pool, commitment)
