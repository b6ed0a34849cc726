"""Key custody port: deployer keys and platform secrets, never stored in plaintext.

Contract:

* ``evm_deployer_key(chain)`` and ``solana_payer_key(chain)`` return key material for
  signing *in memory only*; callers must not log, persist or put it in errors.
* ``platform_secret(purpose)`` returns a 32-byte secret for key derivation (e.g. the
  HKDF input for Solana mint keypairs); stable across restarts.
* Keys are created on first use when the store allows it (``create_missing=True``) and
  are then stable across restarts. At rest they are envelope-encrypted: each secret is
  sealed with its own AES-256-GCM data key, which is wrapped by the master key.
"""

from __future__ import annotations

from typing import Protocol


class KeyStore(Protocol):
    def evm_deployer_key(self, chain: str) -> bytes:
        """32-byte secp256k1 private key for the chain's deployer account."""

    def evm_deployer_keys(self, chain: str, count: int) -> list[bytes]:
        """The chain's first ``count`` deployer keys (a pool used in parallel)."""

    def solana_payer_key(self, chain: str) -> bytes:
        """32-byte ed25519 seed for the chain's fee payer."""

    def platform_secret(self, purpose: str) -> bytes:
        """32-byte secret for derivations such as Solana mint keypairs."""
