"""What a Solana chain needs before the first launch: the payer keypair, with funds.

The launch uses programs every cluster has (Token-2022, the associated token account
program) and, where it runs, TokenForge's curve program (the embedded chain and
``tokenforge devnet`` load it; its config is set up by :mod:`.open`); nothing is deployed
from here. The payer must hold lamports for fees and rent:

* :func:`payer_keypair` — the payer from its 32-byte seed (PermanentError
  ``invalid_payer_seed`` otherwise);
* :func:`top_up_embedded` — the embedded chain's faucet tops the payer up to 100,000 SOL
  whenever it holds less than 10,000 SOL;
* :func:`top_up_by_airdrop` — on a local JSON-RPC node (``tokenforge devnet``, a test
  validator): ``requestAirdrop`` for what is missing, then waits until the balance shows it
  (``TransientError`` code ``airdrop_timeout`` after 30 s).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature

from tokenforge.errors import ErrorCode, PermanentError, TransientError

log = logging.getLogger(__name__)

LAMPORTS_PER_SOL = 1_000_000_000
EMBEDDED_PAYER_TARGET_LAMPORTS = 100_000 * LAMPORTS_PER_SOL
EMBEDDED_PAYER_MIN_LAMPORTS = 10_000 * LAMPORTS_PER_SOL
AIRDROP_VISIBLE_TIMEOUT_S = 30.0
AIRDROP_POLL_INTERVAL_S = 0.1


class _Faucet(Protocol):
    async def get_balance(self, address: Pubkey) -> int: ...


class _EmbeddedFaucet(_Faucet, Protocol):
    async def airdrop(self, address: Pubkey, lamports: int) -> None: ...


class _RpcFaucet(_Faucet, Protocol):
    async def request_airdrop(self, address: Pubkey, lamports: int) -> Signature: ...


def payer_keypair(seed: bytes) -> Keypair:
    if len(seed) != 32:
        raise PermanentError("the Solana payer seed must be 32 bytes", code=ErrorCode.INVALID_PAYER_SEED)
    return Keypair.from_seed(seed)


async def top_up_embedded(transport: _EmbeddedFaucet, payer: Pubkey) -> int:
    """Funds the payer from the embedded chain's faucet when it runs low; returns its balance."""
    balance = await transport.get_balance(payer)
    if balance < EMBEDDED_PAYER_MIN_LAMPORTS:
        await transport.airdrop(payer, EMBEDDED_PAYER_TARGET_LAMPORTS - balance)
        balance = EMBEDDED_PAYER_TARGET_LAMPORTS
    return balance


async def top_up_by_airdrop(transport: _RpcFaucet, payer: Pubkey, target_lamports: int) -> int:
    """Asks the node's faucet for what the payer lacks below ``target_lamports``; returns its balance."""
    balance = await transport.get_balance(payer)
    if balance >= target_lamports:
        return balance
    await transport.request_airdrop(payer, target_lamports - balance)
    # JSON-RPC over HTTP has no push: poll the balance until the airdrop shows.
    deadline = time.monotonic() + AIRDROP_VISIBLE_TIMEOUT_S
    while (now := await transport.get_balance(payer)) < target_lamports:
        if time.monotonic() >= deadline:
            raise TransientError(
                f"airdrop to the payer not visible after {AIRDROP_VISIBLE_TIMEOUT_S:.0f} s",
                code=ErrorCode.AIRDROP_TIMEOUT,
            )
        await asyncio.sleep(AIRDROP_POLL_INTERVAL_S)
    log.info("solana payer funded by airdrop", extra={"payer": str(payer), "lamports": target_lamports - balance})
    return now
