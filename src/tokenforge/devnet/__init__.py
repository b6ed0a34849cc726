"""``tokenforge devnet``: one process serving local JSON-RPC for EVM chains and Solana.

Built on the embedded chains (py-evm through eth-tester, LiteSVM), with what a JSON-RPC
server needs on top: :mod:`.evm_rpc` answers as geth/Hardhat (results shaped by
:mod:`.evm_shapes`, Hardhat's development methods in :mod:`.evm_dev`), :mod:`.solana_rpc`
as an Agave node (shapes in :mod:`.solana_shapes`, the transaction details it reports kept
by :mod:`.solana_history`), :mod:`.jsonrpc` handles the envelope (batches included) and
:mod:`.server` runs it all behind uvicorn. URLs: ``POST http://HOST:PORT/<chain>`` for
``ethereum``, ``bsc``, ``base`` and ``solana``; ``GET /health`` answers ``ok`` once every
chain is open.
"""

from .server import DevnetConfig, run_devnet

__all__ = ["DevnetConfig", "run_devnet"]
