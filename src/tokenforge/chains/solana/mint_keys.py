"""Mint keypair derivation: one job id, one mint address, forever.

The mint keypair of a launch is derived from a 32-byte platform secret and the job id with
HKDF-SHA256 (RFC 5869)::

    seed = HKDF(SHA-256, ikm=mint_secret, salt=b"tokenforge/solana-mint/v1", info=job_id) [32 bytes]
    mint = Keypair.from_seed(seed)

Every attempt for a job (re-sign after an expired blockhash, a crashed worker's successor)
therefore signs with the same mint keypair, and the System Program refuses to create an
account that already exists: one job can only ever make one mint. Changing the salt or the
secret changes every future mint address, so both are part of the platform's identity.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from solders.keypair import Keypair

from tokenforge.errors import ErrorCode, PermanentError

MINT_KDF_SALT = b"tokenforge/solana-mint/v1"
MINT_SECRET_BYTES = 32


def derive_mint_seed(mint_secret: bytes, job_id: str) -> bytes:
    """The 32-byte ed25519 seed of the mint keypair for ``job_id``."""
    if len(mint_secret) != MINT_SECRET_BYTES:
        raise PermanentError(
            f"the Solana mint secret must be {MINT_SECRET_BYTES} bytes", code=ErrorCode.INVALID_MINT_SECRET
        )
    if not job_id:
        raise PermanentError("job id must not be empty", code=ErrorCode.INVALID_JOB_ID)
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=MINT_KDF_SALT, info=job_id.encode("utf-8"))
    return hkdf.derive(mint_secret)


def derive_mint_keypair(mint_secret: bytes, job_id: str) -> Keypair:
    """The mint keypair for ``job_id`` (deterministic; never stored)."""
    return Keypair.from_seed(derive_mint_seed(mint_secret, job_id))
