"""A web3.py (v8) async provider that sends every request through an :class:`RpcPool`.

``AsyncWeb3(PooledAsyncProvider(pool))`` gets endpoint failover and circuit breakers for
free. JSON-RPC error answers reach web3 unchanged, so web3 raises its usual
``Web3RPCError`` and :func:`tokenforge.chains.evm.rpc_errors.translate` classifies them by
message. When no endpoint answers, the pool's :class:`~tokenforge.errors.TransientError`
propagates as it is. Batches (``w3.batch_requests()``) go to one endpoint as one body.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from web3._utils.batching import sort_batch_response_by_response_ids
from web3._utils.caching import async_handle_request_caching
from web3.exceptions import ProviderConnectionError
from web3.providers.async_base import AsyncJSONBaseProvider
from web3.types import RPCEndpoint, RPCResponse

from tokenforge.chains.rpc.pool import RpcPool
from tokenforge.errors import TokenForgeError


class PooledAsyncProvider(AsyncJSONBaseProvider):
    """web3.py async provider over a pool of HTTP JSON-RPC endpoints."""

    logger = logging.getLogger(__name__)

    def __init__(self, pool: RpcPool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pool = pool

    def __str__(self) -> str:
        return f"RPC pool {self.pool.chain} ({', '.join(self.pool.labels)})"

    @async_handle_request_caching
    async def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        payload = self.encode_rpc_request(method, params)
        return cast(RPCResponse, await self.pool.post_json(payload, method=str(method)))

    async def make_batch_request(self, requests: list[tuple[RPCEndpoint, Any]]) -> list[RPCResponse] | RPCResponse:
        payload = self.encode_batch_rpc_request(requests)
        method = "batch(" + ",".join(sorted({str(m) for m, _ in requests})) + ")"
        response = await self.pool.post_json(payload, method=method)
        if not isinstance(response, list):  # one error object for the whole batch
            return cast(RPCResponse, response)
        return sort_batch_response_by_response_ids(response)

    async def is_connected(self, show_traceback: bool = False) -> bool:
        """True when some endpoint of the pool answers ``eth_chainId``."""
        try:
            response = await self.make_request(RPCEndpoint("eth_chainId"), [])
        except TokenForgeError as exc:
            if show_traceback:
                raise ProviderConnectionError(f"no endpoint of the pool answered: {exc}") from exc
            return False
        if "error" in response:
            if show_traceback:
                raise ProviderConnectionError(f"error answer from the pool: {response['error']}")
            return False
        return "result" in response

    async def disconnect(self) -> None:
        """Closes the pool's HTTP session (the pool reopens one if it is used again)."""
        await self.pool.close()
