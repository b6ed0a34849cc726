"""Wallet addresses as principals hold them: EIP-55 hex (EVM) or base58 (Solana)."""

from __future__ import annotations

from tokenforge.domain.chains import Family
from tokenforge.domain.tokens import normalise_address


def wallet_family(address: str) -> Family:
    """EVM for ``0x…`` addresses, Solana otherwise (the address is not checked here)."""
    return Family.EVM if address.startswith("0x") else Family.SOLANA


def normalise_wallet(address: str, *, field: str = "wallet") -> tuple[str, Family]:
    """The canonical address and its family; :class:`ValidationFailed` naming ``field``."""
    family = wallet_family(address)
    return normalise_address(family, address, field), family
