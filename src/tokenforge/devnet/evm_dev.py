"""Development methods of the devnet's EVM face, under Hardhat's names (and Anvil's alias).

What a test or a developer drives a Hardhat node with, answered from the embedded chain:

* ``hardhat_setBalance`` / ``anvil_setBalance`` — the balance, sealed in a new empty block
  (answers ``true`` / ``null``, as each node does);
* ``hardhat_dropTransaction`` — takes a pending transaction out of the pool (``true``),
  ``false`` when none is pending, an error when it is already mined;
* ``evm_mine`` — one block now, empty if nothing is executable;
* ``evm_setAutomine`` / ``hardhat_getAutomine`` — with automine off nothing is mined until
  ``evm_mine`` (the mempool keeps what arrives: replacements, gaps, drops behave as on a
  node); turning it on mines what waited;
* ``evm_snapshot`` / ``evm_revert`` — a snapshot id (``"0x1"``, …) of the current head;
  reverting to it makes the blocks above it non-canonical, so the next blocks mined
  replace them with other hashes (a reorg, as tests provoke one on Hardhat); the pending
  pool is emptied and that snapshot and later ones are used up; ``false`` for an unknown id.

Every method runs on the chain's thread under its lock (the caller's dispatch holds it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from eth_utils import to_canonical_address, to_checksum_address

from tokenforge.errors import ErrorCode, PermanentError

from .evm_shapes import hex_bytes_param, quantity_param
from .jsonrpc import INVALID_PARAMS, RpcError

_MAX_BALANCE_WEI = 2**256


class DevChain(Protocol):
    """The chain members the development methods use (:class:`~tokenforge.chains.evm.embedded.EmbeddedEvmChain`)."""

    automine: bool
    mempool: Any  # tokenforge.chains.evm.mempool.Mempool

    def seal_state_change(self, change: Callable[[Any], None]) -> None: ...

    def mine_block(self) -> int: ...

    def is_mined(self, tx_hash: bytes) -> bool: ...

    def snapshot(self) -> int: ...

    def revert(self, snapshot_id: int) -> bool: ...


def dev_methods(chain: DevChain) -> dict[str, Callable[[list], Any]]:
    """The development methods by JSON-RPC name, each taking the call's params."""
    return {
        "hardhat_setBalance": lambda params: _set_balance(chain, params, answer=True),
        "anvil_setBalance": lambda params: _set_balance(chain, params, answer=None),
        "hardhat_dropTransaction": lambda params: _drop_transaction(chain, params),
        "evm_mine": lambda _params: _mine(chain),
        "evm_setAutomine": lambda params: _set_automine(chain, params),
        "hardhat_getAutomine": lambda _params: chain.automine,
        "evm_snapshot": lambda _params: hex(chain.snapshot()),
        "evm_revert": lambda params: _revert(chain, params),
    }


def _set_balance(chain: DevChain, params: list, *, answer: bool | None) -> bool | None:
    address = to_canonical_address(to_checksum_address(params[0]))
    balance_wei = quantity_param(params[1], 1)
    if not 0 <= balance_wei < _MAX_BALANCE_WEI:
        raise PermanentError(f"balance out of range: {balance_wei}", code=ErrorCode.INVALID_PARAMETER)
    chain.seal_state_change(lambda state: state.set_balance(address, balance_wei))
    return answer  # Hardhat answers true, Anvil null


def _drop_transaction(chain: DevChain, params: list) -> bool:
    tx_hash = hex_bytes_param(params[0], 0)
    if len(tx_hash) != 32:
        raise RpcError(
            INVALID_PARAMS,
            f"invalid argument 0: hex string has length {2 * len(tx_hash)}, want 64 for a transaction hash",
        )
    if chain.mempool.drop(tx_hash) is not None:
        return True
    if chain.is_mined(tx_hash):
        raise PermanentError(
            f"Transaction 0x{tx_hash.hex()} cannot be dropped because it's already mined", code=ErrorCode.ALREADY_MINED
        )
    return False


def _mine(chain: DevChain) -> str:
    chain.mine_block()
    return "0x0"


def _revert(chain: DevChain, params: list) -> bool:
    if not params:
        raise RpcError(INVALID_PARAMS, "invalid argument 0: expected a snapshot id")
    return chain.revert(quantity_param(params[0], 0))


def _set_automine(chain: DevChain, params: list) -> bool:
    if not params or not isinstance(params[0], bool):
        raise RpcError(INVALID_PARAMS, "invalid argument 0: expected a boolean")
    chain.automine = params[0]
    return True
