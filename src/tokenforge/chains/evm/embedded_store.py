"""Where the embedded EVM chain keeps its state: py-evm over SQLite (or memory), and its genesis.

* :func:`open_kv` — py-evm's key-value database: ``<state_dir>/chain.sqlite``
  (:class:`~.kvstore.SqliteKV`, one SQLite transaction per block) or in memory.
* :func:`chain_class` — the py-evm ``MiningChain`` for a chain id (Prague rules, constant
  block gas limit as eth-tester's chain has).
* :func:`base_fee_wei` — a block header's base fee (set on every block: Prague rules).
* :func:`open_or_create` — the chain in a database: a new one starts from a genesis that
  funds the development faucet (:data:`FAUCET_ADDRESS`); an existing one must have been
  created for the same chain id (PermanentError ``chain_id_mismatch`` otherwise).
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any

from eth.abc import BlockHeaderAPI
from eth.chains.base import MiningChain
from eth.db.atomic import AtomicDB
from eth.db.backends.memory import MemoryDB
from eth.db.chain import ChainDB
from eth.exceptions import CanonicalHeadNotFound
from eth.typing import AccountDetails
from eth.vm.forks import PragueVM
from eth_account import Account
from eth_tester.backends.pyevm.main import get_default_genesis_params
from eth_typing import Address, BlockNumber
from eth_utils import keccak, to_canonical_address
from eth_utils.toolz import assoc

from tokenforge.errors import ErrorCode, PermanentError

from .kvstore import SqliteKV

BLOCK_GAS_LIMIT = 60_000_000
# A development-only key that owns the embedded chain's initial ETH; it never exists
# on a real network. Funding helpers send from it.
FAUCET_KEY = keccak(b"tokenforge embedded evm faucet")
FAUCET_ADDRESS = Account.from_key(FAUCET_KEY).address
_FAUCET_BALANCE_WEI = 10**30
_META_CHAIN_ID = b"tokenforge:chain_id"


class _MemoryKV(MemoryDB):
    def transaction(self) -> Any:
        return nullcontext()

    def close(self) -> None:
        pass


def open_kv(state_dir: Path | None) -> SqliteKV | _MemoryKV:
    """The key-value database under ``state_dir`` (created if needed), or one in memory."""
    return SqliteKV(state_dir / "chain.sqlite") if state_dir else _MemoryKV()


def chain_class(chain_id: int) -> type[MiningChain]:
    class TokenForgeEmbeddedChain(MiningChain):
        vm_configuration = ((BlockNumber(0), PragueVM),)

        def create_header_from_parent(self, parent_header: Any, **header_params: Any) -> Any:
            # constant gas limit, as eth-tester's chain does
            return super().create_header_from_parent(
                parent_header, **assoc(header_params, "gas_limit", parent_header.gas_limit)
            )

        def get_transaction_builder(self) -> Any:
            return self.get_vm().get_transaction_builder()

    TokenForgeEmbeddedChain.chain_id = chain_id
    return TokenForgeEmbeddedChain


def base_fee_wei(header: BlockHeaderAPI) -> int:
    """The base fee of a block of this chain. py-evm types it optional (blocks before London
    have none); every block here has one, as the chain runs Prague rules from genesis."""
    fee = header.base_fee_per_gas
    if fee is None:
        raise RuntimeError(f"block {header.block_number} has no base fee: not a London-or-later block")
    return fee


def _from_genesis(cls: type[MiningChain], db: Any, atomic: AtomicDB, chain_id: int) -> MiningChain:
    """A new chain whose genesis funds the faucet, its chain id recorded in ``db``."""
    db[_META_CHAIN_ID] = str(chain_id).encode()
    params = get_default_genesis_params({"gas_limit": BLOCK_GAS_LIMIT})
    state: dict[Address, AccountDetails] = {
        to_canonical_address(FAUCET_ADDRESS): {
            "balance": _FAUCET_BALANCE_WEI,
            "nonce": 0,
            "code": b"",
            "storage": {},
        }
    }
    chain = cls.from_genesis(atomic, params, state)
    # py-evm types ``from_genesis`` as returning a BaseChain; it returns an instance of ``cls``
    if not isinstance(chain, MiningChain):
        raise TypeError(f"{cls.__name__}.from_genesis returned a {type(chain).__name__}")
    return chain


def open_or_create(
    cls: type[MiningChain], db: Any, atomic: AtomicDB, chain_id: int, state_dir: Path | None
) -> MiningChain:
    """The chain stored in ``db``, or a new one from genesis (caller holds a ``db`` transaction)."""
    try:
        ChainDB(atomic).get_canonical_head()
    except CanonicalHeadNotFound:
        return _from_genesis(cls, db, atomic, chain_id)
    stored = db[_META_CHAIN_ID].decode() if _META_CHAIN_ID in db else None
    if stored != str(chain_id):
        raise PermanentError(
            f"embedded chain state in {state_dir} has chain id {stored}, not {chain_id}",
            code=ErrorCode.CHAIN_ID_MISMATCH,
        )
    return cls(atomic)
