"""EVM transactions as TokenForge signs them: fields from fees, signing off the event loop.

:func:`unsigned_tx` writes the fields of an EIP-1559 (type 2) or legacy transaction;
:func:`sign_tx` signs it with a deployer key on a worker thread (~1 ms of CPU each) and
returns the raw bytes and the transaction hash. A signing failure is a
``PermanentError`` (code ``sign_failed``) naming only the exception type: the key is never
formatted into anything.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from tokenforge.errors import ErrorCode, PermanentError

from .fees import Fees
from .key_pool import DeployerKey


@dataclass(frozen=True, slots=True)
class SignedTx:
    tx_id: str  # 0x transaction hash
    raw_tx: bytes


def unsigned_tx(
    *, chain_id: int, nonce: int, to: str | None, data: bytes, gas: int, fees: Fees, value: int = 0
) -> dict:
    """The transaction fields; ``to=None`` creates a contract."""
    tx: dict[str, Any] = {"chainId": chain_id, "nonce": nonce, "value": value, "data": data, "gas": gas}
    if to is not None:
        tx["to"] = to
    if not fees.legacy:
        tx["type"] = 2
    tx.update(fees.tx_fields())
    return tx


async def sign_tx(key: DeployerKey, tx: dict) -> SignedTx:
    try:
        # ~1 ms of CPU (more without coincurve): off the event loop
        signed = await asyncio.to_thread(key.account.sign_transaction, tx)
    except Exception as exc:  # noqa: BLE001 - eth-account's failure, reported without the key
        raise PermanentError(f"signing failed: {type(exc).__name__}", code=ErrorCode.SIGN_FAILED) from None
    return SignedTx(tx_id=hex_id(signed.hash), raw_tx=bytes(signed.raw_transaction))


def hex_id(value: Any) -> str:
    """A transaction hash (bytes or hex text) as ``0x``-prefixed hex."""
    if isinstance(value, str):
        return value if value.startswith("0x") else "0x" + value
    return "0x" + bytes(value).hex()
