"""Chain-agnostic JSON-RPC plumbing: an endpoint pool with circuit breakers and failover.

* :class:`RpcPool` (``pool``) — weighted endpoints, failover within a request.
* :class:`EndpointConfig`, :func:`redact_url` (``endpoints``) — one configured endpoint, and
  the only form in which its URL may be logged or shown.
* :func:`classify_rpc_error` (``faults``) — which HTTP and JSON-RPC answers blame the endpoint.
* :class:`CircuitBreaker` (``breaker``) — the per-endpoint closed / open / half-open state machine.

The web3.py and solana-py adapters over a pool live in
``tokenforge.chains.evm.pooled_provider`` and ``tokenforge.chains.solana.pooled_provider``.
"""

from .breaker import BreakerState, CircuitBreaker
from .endpoints import EndpointConfig, redact_url
from .faults import classify_rpc_error
from .pool import RpcPool

__all__ = ["BreakerState", "CircuitBreaker", "EndpointConfig", "RpcPool", "classify_rpc_error", "redact_url"]
