"""Solana: Token-2022 launches with on-chain metadata, on LiteSVM or an RPC node.

Modules: ``mint_keys`` (job id -> mint keypair), ``instructions`` (the launch transaction,
with optional compute-budget priority fees), ``transport`` (the RPC-shaped seam),
``embedded`` (LiteSVM chain persisted in SQLite), ``rpc_transport`` (the seam over
solana-py's ``AsyncClient``), ``pooled_provider`` (that client over an RPC pool),
``deployer`` (the :class:`~tokenforge.chains.ports.ChainDeployer`).
"""

from tokenforge.chains.solana.deployer import SolanaDeployer, open_embedded_solana_deployer, open_rpc_solana_deployer
from tokenforge.chains.solana.embedded import EmbeddedSolanaChain, EmbeddedTransport
from tokenforge.chains.solana.rpc_transport import RpcSolanaTransport

__all__ = [
    "EmbeddedSolanaChain",
    "EmbeddedTransport",
    "RpcSolanaTransport",
    "SolanaDeployer",
    "open_embedded_solana_deployer",
    "open_rpc_solana_deployer",
]
