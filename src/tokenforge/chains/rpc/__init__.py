"""Chain-agnostic JSON-RPC plumbing: an endpoint pool with circuit breakers and failover.

* :class:`RpcPool` / :class:`EndpointConfig` — weighted endpoints, failover within a request.
* :class:`CircuitBreaker` — the per-endpoint closed / open / half-open state machine.
* :func:`redact_url` — the only form in which an endpoint URL may be logged or shown.

The web3.py and solana-py adapters over a pool live in
``tokenforge.chains.evm.pooled_provider`` and ``tokenforge.chains.solana.pooled_provider``.
"""

from .breaker import BreakerState, CircuitBreaker
from .pool import EndpointConfig, RpcPool, classify_rpc_error, redact_url

__all__ = ["BreakerState", "CircuitBreaker", "EndpointConfig", "RpcPool", "classify_rpc_error", "redact_url"]
