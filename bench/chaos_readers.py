"""Independent reads of launched tokens on their chains: web3.py with the hand-written ERC-20
ABI, solana-py with the plain-bytes Token-2022 decoder; nothing of TokenForge's own code.

Each reader answers two questions: how many tokens landed for a creator (every chaos launch
has its own fresh creator), and whether the token at an address is the one requested.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Protocol

from solana.rpc.async_api import AsyncClient as SolanaClient
from solders.pubkey import Pubkey
from tests.support.erc20 import ERC20_ABI
from tests.support.solana_decode import TOKEN_2022, decode_mint
from web3 import AsyncHTTPProvider, AsyncWeb3

#: TokenForgeFactory's TokenCreated(address indexed token, address indexed creator, bytes32 indexed salt,
#: address curve, ...): one per launch; the first data word is the curve the supply was minted to.
TOKEN_CREATED = (
    "TokenCreated(address,address,bytes32,address,uint256,uint256,uint256,uint256,uint256,uint256,bool,uint256,uint256)"
)


class Requested(Protocol):
    """What a launch asked for, as the reader compares it."""

    name: str
    symbol: str
    decimals: int
    creator: str
    supply_base_units: int


class EvmChain:
    """One EVM chain read with web3.py. A token counts for the creator its factory's
    ``TokenCreated`` names (read once by ``load()``); the whole supply must sit in the
    token's bonding curve, named by the same event (nobody trades during a chaos run)."""

    def __init__(self, url: str) -> None:
        self.w3 = AsyncWeb3(AsyncHTTPProvider(url))
        self.minted: dict[str, list[str]] = defaultdict(list)
        self.curves: dict[str, str] = {}

    async def load(self) -> None:
        topic = AsyncWeb3.keccak(text=TOKEN_CREATED).to_0x_hex()
        logs = await self.w3.eth.get_logs({"fromBlock": 0, "toBlock": "latest", "topics": [topic]})
        for log in logs:
            token = "0x" + bytes(log["topics"][1])[-20:].hex()
            creator = "0x" + bytes(log["topics"][2])[-20:].hex()
            self.minted[creator.lower()].append(token)
            self.curves[token.lower()] = AsyncWeb3.to_checksum_address(bytes(log["data"])[12:32])

    async def close(self) -> None:
        await self.w3.provider.disconnect()

    async def tokens_of(self, creator: str) -> int:
        return len(self.minted.get(creator.lower(), []))

    async def check(self, address: str, want: Requested) -> str | None:
        """None when the token at ``address`` is as requested, else what is wrong."""
        address = AsyncWeb3.to_checksum_address(address)
        if not await self.w3.eth.get_code(address):
            return "missing"
        curve = self.curves.get(address.lower())
        if curve is None:
            return "wrong: no TokenCreated names it"
        erc20 = self.w3.eth.contract(address=address, abi=ERC20_ABI)
        got = (
            await erc20.functions.name().call(),
            await erc20.functions.symbol().call(),
            await erc20.functions.totalSupply().call(),
            await erc20.functions.balanceOf(curve).call(),
        )
        expected = (want.name, want.symbol, want.supply_base_units, want.supply_base_units)
        return None if got == expected else f"wrong: {got} != {expected}"


class SolanaChain:
    """Solana read with solana-py. A token counts for a creator per successful transaction that
    names the creator (a launch names it: its curve records the creator, or without a curve
    program its token account is the creator's; nothing else names it)."""

    def __init__(self, url: str) -> None:
        self.client = SolanaClient(url, timeout=60)

    async def load(self) -> None:
        pass

    async def close(self) -> None:
        await self.client.close()

    async def tokens_of(self, creator: str) -> int:
        sigs = (await self.client.get_signatures_for_address(Pubkey.from_string(creator), limit=1000)).value
        return sum(1 for s in sigs if s.err is None)

    async def check(self, address: str, want: Requested) -> str | None:
        """None when the mint at ``address`` is as requested (mint authority revoked), else what is wrong."""
        account = (await self.client.get_account_info(Pubkey.from_string(address))).value
        if account is None:
            return "missing"
        if account.owner != TOKEN_2022:
            return f"wrong: owned by {account.owner}"
        try:
            mint = decode_mint(bytes(account.data))
        except (AssertionError, ValueError, IndexError) as exc:
            return f"wrong: not a launch mint ({exc})"
        got = (mint.name, mint.symbol, mint.supply, mint.decimals, mint.mint_authority)
        expected = (want.name, want.symbol, want.supply_base_units, want.decimals, None)
        return None if got == expected else f"wrong: {got} != {expected}"


def reader_for(chain: str, url: str) -> EvmChain | SolanaChain:
    """The reader of ``chain`` at its JSON-RPC ``url``; call ``load()`` once the launches are final."""
    return SolanaChain(url) if chain == "solana" else EvmChain(url)
