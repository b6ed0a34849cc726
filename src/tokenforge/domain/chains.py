"""The chain registry: which chains exist, their family, network and limits (pure data)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, get_args


class Family(StrEnum):
    EVM = "evm"
    SOLANA = "solana"


class Network(StrEnum):
    EMBEDDED = "embedded"  # in-process chain, no server (the default)
    LOCAL = "local"  # a local JSON-RPC node (Hardhat, tokenforge devnet)
    TESTNET = "testnet"
    MAINNET = "mainnet"


UINT256_MAX = 2**256 - 1
U64_MAX = 2**64 - 1
#: An EVM token's supply must leave its curve's virtual reserves (1.073 x supply) and its
#: Uniswap V2 pool reserves within uint112.
EVM_MAX_SUPPLY_BASE_UNITS = (2**112 - 1) * 1000 // 1073
#: A Solana token's supply must leave its curve's virtual token reserve (1.073 x supply) in u64.
SOLANA_MAX_SUPPLY_BASE_UNITS = U64_MAX * 1000 // 1073


@dataclass(frozen=True, slots=True)
class ChainSpec:
    name: str
    family: Family
    display_name: str
    #: EVM chain id per network; Solana has none.
    chain_ids: dict[Network, int] | None
    max_decimals: int
    max_supply_base_units: int
    native_symbol: str

    def chain_id(self, network: Network) -> int | None:
        return None if self.chain_ids is None else self.chain_ids[network]

    def evm_chain_id(self, network: Network) -> int:
        """The EVM chain id on ``network``; ``ValueError`` for a chain without ids (Solana)."""
        if self.chain_ids is None:
            raise ValueError(f"{self.name} is not an EVM chain: it has no chain id")
        return self.chain_ids[network]


def _evm(name: str, display: str, native: str, ids: dict[Network, int]) -> ChainSpec:
    return ChainSpec(name, Family.EVM, display, ids, 18, EVM_MAX_SUPPLY_BASE_UNITS, native)


CHAINS: dict[str, ChainSpec] = {
    "ethereum": _evm(
        "ethereum",
        "Ethereum",
        "ETH",
        {Network.EMBEDDED: 1337, Network.LOCAL: 31337, Network.TESTNET: 11155111, Network.MAINNET: 1},
    ),
    "bsc": _evm(
        "bsc",
        "BNB Smart Chain",
        "BNB",
        {Network.EMBEDDED: 1338, Network.LOCAL: 31337, Network.TESTNET: 97, Network.MAINNET: 56},
    ),
    "base": _evm(
        "base",
        "Base",
        "ETH",
        {Network.EMBEDDED: 1339, Network.LOCAL: 31337, Network.TESTNET: 84532, Network.MAINNET: 8453},
    ),
    "solana": ChainSpec("solana", Family.SOLANA, "Solana", None, 9, SOLANA_MAX_SUPPLY_BASE_UNITS, "SOL"),
}


#: The registered chain names as a type, in registry order (checked against ``CHAINS`` below).
ChainName = Literal["ethereum", "bsc", "base", "solana"]
if get_args(ChainName) != tuple(CHAINS):
    raise RuntimeError(f"ChainName {get_args(ChainName)} must list the registered chains {tuple(CHAINS)}")


def get_chain(name: str) -> ChainSpec:
    """Return the spec of a registered chain; ``KeyError`` when unknown."""
    return CHAINS[name]
