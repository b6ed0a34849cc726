import pytest
from solders.keypair import Keypair

from tokenforge.chains.solana.mint_keys import derive_mint_keypair, derive_mint_seed
from tokenforge.errors import PermanentError

SECRET_A = bytes(range(32))
SECRET_B = bytes(range(1, 33))
JOB_1 = "0123456789abcdef0123456789abcdef"
JOB_2 = "fedcba9876543210fedcba9876543210"


def test_deterministic():
    assert derive_mint_keypair(SECRET_A, JOB_1).pubkey() == derive_mint_keypair(SECRET_A, JOB_1).pubkey()
    assert bytes(derive_mint_keypair(SECRET_A, JOB_1)) == bytes(derive_mint_keypair(SECRET_A, JOB_1))


def test_differs_per_job_and_per_secret():
    keys = {
        derive_mint_keypair(SECRET_A, JOB_1).pubkey(),
        derive_mint_keypair(SECRET_A, JOB_2).pubkey(),
        derive_mint_keypair(SECRET_B, JOB_1).pubkey(),
        derive_mint_keypair(SECRET_B, JOB_2).pubkey(),
    }
    assert len(keys) == 4


def test_matches_rfc5869_hkdf_sha256():
    # Independent HKDF (RFC 5869) with hmac/hashlib: extract then one expand block.
    import hashlib
    import hmac

    prk = hmac.new(b"tokenforge/solana-mint/v1", SECRET_A, hashlib.sha256).digest()
    okm = hmac.new(prk, JOB_1.encode() + b"\x01", hashlib.sha256).digest()
    assert derive_mint_seed(SECRET_A, JOB_1) == okm
    assert derive_mint_keypair(SECRET_A, JOB_1).pubkey() == Keypair.from_seed(okm).pubkey()


@pytest.mark.parametrize("secret", [b"", b"short", bytes(31), bytes(33)])
def test_rejects_wrong_secret_length(secret):
    with pytest.raises(PermanentError):
        derive_mint_keypair(secret, JOB_1)


def test_rejects_empty_job_id():
    with pytest.raises(PermanentError):
        derive_mint_keypair(SECRET_A, "")
