"""Solana: Token-2022 launches with on-chain metadata, on LiteSVM or an RPC node.

Modules: ``mint_keys`` (job id -> mint keypair), ``instructions`` (the launch transaction),
``transport`` (the RPC-shaped seam), ``embedded`` (LiteSVM chain persisted in SQLite),
``deployer`` (the :class:`~tokenforge.chains.ports.ChainDeployer`).
"""

from tokenforge.chains.solana.deployer import SolanaDeployer, open_embedded_solana_deployer
from tokenforge.chains.solana.embedded import EmbeddedSolanaChain, EmbeddedTransport

__all__ = ["EmbeddedSolanaChain", "EmbeddedTransport", "SolanaDeployer", "open_embedded_solana_deployer"]
