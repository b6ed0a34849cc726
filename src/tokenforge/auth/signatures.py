"""Checking a wallet's signature over a sign-in message.

* EVM: EIP-191 ``personal_sign`` over the message's UTF-8 bytes, recovered with
  eth-account (:func:`recover_evm`). A contract wallet (EIP-1271) is asked through an
  ``eth_call`` of ``isValidSignature(bytes32 hash, bytes signature)`` with the EIP-191 hash;
  it signs in when the call answers the magic value ``0x1626ba7e`` (:func:`eip1271_valid`).
* Solana: ed25519 over the message's UTF-8 bytes, with solders (:func:`verify_solana`);
  the signature is given base58-encoded (as Solana writes signatures).

No function here raises a vendor exception or echoes a signature.
"""

from __future__ import annotations

from typing import Protocol

from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import defunct_hash_message, encode_defunct
from solders.pubkey import Pubkey
from solders.signature import Signature

from tokenforge.errors import PermanentError

#: ``bytes4(keccak256("isValidSignature(bytes32,bytes)"))``, also the answer that accepts.
EIP1271_MAGIC = bytes.fromhex("1626ba7e")


class ContractCaller(Protocol):
    """What EIP-1271 needs of a chain: ``eth_call`` at the latest block, translated errors
    (:class:`~tokenforge.chains.evm.node.EvmNode` is one)."""

    async def call(self, to: str, data: bytes) -> bytes: ...


def eip191_hash(message: str) -> bytes:
    """The hash ``personal_sign`` signs: keccak256 of ``"\\x19Ethereum Signed Message:\\n" +
    len + message``."""
    return bytes(defunct_hash_message(text=message))


def recover_evm(message: str, signature: bytes) -> str | None:
    """The EIP-55 address whose key made the 65-byte ``personal_sign`` ``signature`` over
    ``message``, or None when it recovers to no key (or is not 65 bytes)."""
    if len(signature) != 65:
        return None
    try:
        return str(Account.recover_message(encode_defunct(text=message), signature=signature))
    except Exception:  # noqa: BLE001 - eth-keys raises several types for a bad signature
        return None


def eip1271_call_data(message_hash: bytes, signature: bytes) -> bytes:
    return EIP1271_MAGIC + abi_encode(["bytes32", "bytes"], [message_hash, signature])


async def eip1271_valid(caller: ContractCaller, wallet: str, message: str, signature: bytes) -> bool:
    """True when the contract at ``wallet`` accepts ``signature`` for ``message``. A revert,
    an account without code or any other answer is False; a chain that cannot be reached
    raises its :class:`~tokenforge.errors.TransientError`."""
    try:
        answer = await caller.call(wallet, eip1271_call_data(eip191_hash(message), signature))
    except PermanentError:  # reverted, invalid: the contract does not accept it
        return False
    return len(answer) >= 32 and answer[:4] == EIP1271_MAGIC


def verify_solana(message: str, address: str, signature_b58: str) -> bool:
    """True when ``signature_b58`` is ``address``'s ed25519 signature over ``message``."""
    try:
        signature = Signature.from_string(signature_b58)
        key = Pubkey.from_string(address)
    except (ValueError, TypeError):
        return False
    return bool(signature.verify(key, message.encode("utf-8")))
