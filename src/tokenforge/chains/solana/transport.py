"""The seam between the Solana deployer and a chain: the handful of RPC calls it needs.

:class:`SolanaTransport` is shaped after the Solana JSON-RPC methods (``getLatestBlockhash``,
``sendTransaction``, ``getSignatureStatuses``/``getTransaction``, ``getAccountInfo``,
``getBlockHeight``, ``getSignaturesForAddress``, ``getMinimumBalanceForRentExemption``), so
the same :class:`~tokenforge.chains.solana.deployer.SolanaDeployer` runs over the embedded
LiteSVM chain (:class:`~tokenforge.chains.solana.embedded.EmbeddedTransport`) and over any
JSON-RPC node through solana-py's ``AsyncClient``
(:class:`~tokenforge.chains.solana.rpc_transport.RpcSolanaTransport`).

Contract for implementations: every method may raise only
:class:`~tokenforge.errors.TokenForgeError` subclasses (transport trouble is a
``TransientError``, a definite rejection a ``PermanentError``). Amounts are lamports.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from solders.hash import Hash
from solders.pubkey import Pubkey
from solders.signature import Signature


class SendOutcome(StrEnum):
    ACCEPTED = "accepted"  # taken by the chain (it may still fail on execution)
    ALREADY_PROCESSED = "already_processed"  # this signature is already known/included
    BLOCKHASH_NOT_FOUND = "blockhash_not_found"  # expired or unknown blockhash: can never land


@dataclass(frozen=True, slots=True)
class TxStatus:
    """An included transaction (success or failure). Failed ones paid their fee too."""

    signature: Signature
    slot: int
    fee_lamports: int
    err: str | None = None  # None = success; otherwise a readable error
    instruction_index: int | None = None  # which instruction failed, when one did
    custom_code: int | None = None  # the program's custom error code, when it has one


@dataclass(frozen=True, slots=True)
class AccountInfo:
    lamports: int
    owner: Pubkey
    data: bytes


class SolanaTransport(Protocol):
    async def latest_blockhash(self) -> tuple[Hash, int]:
        """A fresh blockhash and its last valid block height."""
        ...

    async def send_raw_transaction(self, raw_tx: bytes) -> SendOutcome:
        """Submit a serialized transaction. Idempotent: a known signature is not an error."""
        ...

    async def get_transaction_status(self, signature: Signature) -> TxStatus | None:
        """The included transaction, or None while it is unknown to the chain."""
        ...

    async def block_height(self) -> int: ...

    async def get_account(self, address: Pubkey) -> AccountInfo | None: ...

    async def signatures_for_address(self, address: Pubkey) -> list[TxStatus]:
        """Included transactions that wrote ``address``, oldest first."""
        ...

    async def minimum_balance_for_rent_exemption(self, data_len: int) -> int: ...

    async def get_balance(self, address: Pubkey) -> int: ...

    async def close(self) -> None: ...
