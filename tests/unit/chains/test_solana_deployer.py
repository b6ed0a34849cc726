import os
import uuid

import pytest
from solders.keypair import Keypair

from tokenforge.chains.ports import ChainDeployer, LaunchRequest
from tokenforge.chains.solana.deployer import SolanaDeployer
from tokenforge.chains.solana.open import open_embedded_solana_deployer
from tokenforge.chains.solana.transport import TxStatus
from tokenforge.errors import PermanentError, TokenForgeError, TransientError, ValidationFailed

SOL = 1_000_000_000


def _req(**overrides) -> LaunchRequest:
    values = dict(
        job_id=uuid.uuid4().hex,
        chain="solana",
        name="Unit Token",
        symbol="UNIT",
        decimals=6,
        supply_base_units=1_000_000 * 10**6,
        creator=str(Keypair().pubkey()),
        metadata_uri="https://example.com/u.json",
    )
    values.update(overrides)
    return LaunchRequest(**values)


@pytest.fixture
async def deployer():
    d = await open_embedded_solana_deployer("solana", None, os.urandom(32), os.urandom(32))
    yield d
    await d.close()


async def test_is_a_chain_deployer(deployer):
    assert isinstance(deployer, ChainDeployer)
    assert deployer.chain == "solana"
    assert deployer.embedded.get_balance(deployer.payer) >= 10_000 * SOL


async def test_sign_never_broadcasts_and_address_depends_on_job_only(deployer):
    req = _req()
    first = await deployer.sign(req)
    deployer.embedded.expire_blockhash()
    second = await deployer.sign(req)
    assert first.token_address == second.token_address == str(deployer.mint_address(req.job_id))
    assert first.tx_id != second.tx_id
    assert first.signer == second.signer == str(deployer.payer)
    assert await deployer.find_existing(req) is None
    assert deployer.embedded.get_account(deployer.mint_address(req.job_id)) is None


async def test_pending_until_broadcast(deployer):
    signed = await deployer.sign(_req())
    assert await deployer.confirm(signed) is None
    await deployer.broadcast(signed)
    receipt = await deployer.confirm(signed)
    assert receipt.tx_id == signed.tx_id and receipt.gas_used is None and receipt.fee_paid_base_units == 10_000


async def test_invalid_input_is_permanent(deployer):
    with pytest.raises(ValidationFailed) as info:
        await deployer.sign(_req(symbol="lower"))
    assert info.value.field == "symbol"
    with pytest.raises(PermanentError) as info:
        await deployer.sign(_req(chain="base"))
    assert info.value.code == "wrong_chain"


async def test_payer_without_account_is_permanent(deployer):
    poor = SolanaDeployer("solana", deployer.transport, Keypair(), os.urandom(32))
    signed = await poor.sign(_req())
    with pytest.raises(PermanentError) as info:
        await poor.broadcast(signed)
    assert info.value.code == "insufficient_funds"


async def test_payer_short_of_rent_fails_permanently(deployer):
    payer = Keypair()
    deployer.embedded.airdrop(payer.pubkey(), SOL // 1000)  # 0.001 SOL < mint rent
    poor = SolanaDeployer("solana", deployer.transport, payer, os.urandom(32))
    signed = await poor.sign(_req())
    await poor.broadcast(signed)
    with pytest.raises(PermanentError) as info:
        await poor.confirm(signed)
    assert info.value.code == "insufficient_funds"
    assert not info.value.is_transient()


async def test_expired_blockhash_is_tx_dropped(deployer):
    req = _req()
    signed = await deployer.sign(req)
    deployer.embedded.expire_blockhash()
    await deployer.broadcast(signed)  # not an error: it can just never land
    with pytest.raises(TransientError) as info:
        await deployer.confirm(signed)
    assert info.value.code == "tx_dropped"


class _LandsLate:
    """Transport stub: the signature shows up between the expiry check and the re-check."""

    def __init__(self, inner, status):
        self._inner, self._status, self.calls = inner, status, 0

    async def get_transaction_status(self, signature):
        self.calls += 1
        return None if self.calls == 1 else self._status

    async def block_height(self):
        return 10**9

    def __getattr__(self, name):
        return getattr(self._inner, name)


async def test_confirm_rechecks_before_reporting_drop(deployer):
    req = _req()
    signed = await deployer.sign(req)
    from solders.signature import Signature

    status = TxStatus(Signature.from_string(signed.tx_id), slot=7, fee_lamports=10_000)
    late = SolanaDeployer("solana", _LandsLate(deployer.transport, status), Keypair(), os.urandom(32))
    receipt = await late.confirm(signed)
    assert receipt.block_number == 7


async def test_malformed_signed_launch_is_a_tokenforge_error(deployer):
    signed = await deployer.sign(_req())
    from dataclasses import replace

    with pytest.raises(TokenForgeError):
        await deployer.confirm(replace(signed, tx_id="not-base58-!"))
    with pytest.raises(TokenForgeError):
        await deployer.broadcast(replace(signed, raw_tx=b"junk"))


async def test_closed_deployer_raises_tokenforge_error():
    d = await open_embedded_solana_deployer("solana", None, os.urandom(32), os.urandom(32))
    signed = await d.sign(_req())
    await d.close()
    with pytest.raises(TokenForgeError):
        await d.broadcast(signed)


async def test_bad_seed_lengths():
    with pytest.raises(PermanentError):
        await open_embedded_solana_deployer("solana", None, b"short", os.urandom(32))
    with pytest.raises(PermanentError):
        await open_embedded_solana_deployer("solana", None, os.urandom(32), b"short")
