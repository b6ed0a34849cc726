""":class:`~tokenforge.chains.solana.transport.SolanaTransport` over the embedded LiteSVM chain.

Every call runs on one dedicated thread, so LiteSVM and SQLite never block the event
loop; a call after :meth:`EmbeddedTransport.close` raises ``TransientError`` code
``chain_closed``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from solders.hash import Hash
from solders.pubkey import Pubkey
from solders.signature import Signature

from tokenforge.chains.solana.embedded import EmbeddedSolanaChain
from tokenforge.chains.solana.transport import AccountInfo, SendOutcome, TxStatus
from tokenforge.errors import ErrorCode, TransientError

T = TypeVar("T")


class EmbeddedTransport:
    """The transport of the embedded chain; closes the chain too unless ``owns_chain=False``."""

    def __init__(self, chain: EmbeddedSolanaChain, *, owns_chain: bool = True) -> None:
        self.chain = chain
        self._owns_chain = owns_chain
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenforge-solana")

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Runs ``fn(*args)`` on the transport's thread (e.g. several chain calls in one hop)."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        except RuntimeError as exc:  # executor shut down
            raise TransientError(f"embedded Solana transport unavailable: {exc}", code=ErrorCode.CHAIN_CLOSED) from exc

    async def latest_blockhash(self) -> tuple[Hash, int]:
        return await self.run(self.chain.latest_blockhash)

    async def send_raw_transaction(self, raw_tx: bytes) -> SendOutcome:
        return await self.run(self.chain.send_raw_transaction, raw_tx)

    async def get_transaction_status(self, signature: Signature) -> TxStatus | None:
        return await self.run(self.chain.get_transaction_status, signature)

    async def block_height(self) -> int:
        return await self.run(self.chain.block_height)

    async def get_account(self, address: Pubkey) -> AccountInfo | None:
        return await self.run(self.chain.get_account, address)

    async def signatures_for_address(self, address: Pubkey) -> list[TxStatus]:
        return await self.run(self.chain.signatures_for_address, address)

    async def minimum_balance_for_rent_exemption(self, data_len: int) -> int:
        return await self.run(self.chain.minimum_balance_for_rent_exemption, data_len)

    async def get_balance(self, address: Pubkey) -> int:
        return await self.run(self.chain.get_balance, address)

    async def airdrop(self, address: Pubkey, lamports: int) -> None:
        await self.run(self.chain.airdrop, address, lamports)

    async def close(self) -> None:
        if self._owns_chain:
            try:
                await self.run(self.chain.close)
            except TransientError:
                pass
        self._executor.shutdown(wait=True)
