"""Solana: Token-2022 launches with on-chain metadata, on LiteSVM or an RPC node.

By role:

* port — ``deployer`` (:class:`~.deployer.SolanaDeployer`) over ``transport`` (the
  RPC-shaped seam), ``instructions`` (the launch transaction, with optional compute-budget
  priority fees), ``mint_keys`` (job id -> mint keypair), ``payer`` (balance and alert);
* set-up — ``setup`` (the payer keypair and its funds);
* opening — ``open`` (the embedded chain's lifecycle, the RPC node's check, the deployer);
* transport — ``rpc_transport`` (the seam over solana-py's ``AsyncClient``), ``rpc_errors``,
  ``pooled_provider`` (that client over an RPC pool);
* embedded chain — ``embedded`` (LiteSVM with Solana's slots and blockhashes),
  ``embedded_store`` (its SQLite state), ``embedded_errors``, ``embedded_transport``.

Nothing here is imported eagerly: LiteSVM's chain loads only with ``embedded*``.
"""
