"""EVM chains: token launches through the TokenForge factory (CREATE2 clones).

By role:

* port — ``deployer`` (:class:`~.deployer.EvmDeployer`) over ``node`` (translated JSON-RPC
  calls), ``transactions`` (signing), ``fees``, ``key_pool``, ``nonces``, ``codec``;
* set-up — ``setup`` (the factory; funded keys on development nodes), ``artifacts``;
* opening — ``open`` (endpoint checks, the embedded chain's lifecycle, the deployer);
* keeping — ``keeper`` (nonce gaps, drift, key balances);
* transport — ``pooled_provider`` (web3.py over an RPC pool), ``rpc_errors``;
* embedded chain — ``embedded`` (py-evm node: mempool, miner), ``embedded_store``,
  ``kvstore``, ``mempool``, ``embedded_rpc`` (its JSON-RPC face for web3.py).

Nothing here is imported eagerly: py-evm and eth-tester load only with ``embedded*``.
"""
