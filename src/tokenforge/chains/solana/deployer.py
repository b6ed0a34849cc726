"""Solana launches: one Token-2022 transaction per job, mint address derived from the job.

:class:`SolanaDeployer` implements :class:`~tokenforge.chains.ports.ChainDeployer` over a
:class:`~tokenforge.chains.solana.transport.SolanaTransport` (embedded LiteSVM today, an
RPC node through the same seam). The transaction layout is in
:mod:`~tokenforge.chains.solana.instructions`, the mint keypair derivation in
:mod:`~tokenforge.chains.solana.mint_keys`.

Behaviour per call (see ``chains/ports.py`` for the shared contract):

* ``sign`` fetches a fresh blockhash and signs with the payer and the job's mint keypair.
  Re-signing a job later yields a different transaction (new blockhash) for the SAME mint.
* ``broadcast`` submits ``raw_tx``; an already known signature is fine, and so is an
  expired blockhash (the transaction can never land; ``confirm`` then reports it).
* ``confirm`` returns ``None`` while the signature is unknown and the blockhash is still
  valid; raises ``TransientError(code="tx_dropped")`` once the chain's block height has
  passed ``last_valid_block_height`` without the signature landing; raises
  ``PermanentError`` when the transaction failed on chain - unless the job's mint exists
  anyway (an earlier attempt created it), in which case that launch's receipt is returned.
* ``find_existing`` returns a receipt when the job's mint account exists and is an
  initialized Token-2022 mint. The launch is one atomic transaction, so an initialized
  mint means metadata, supply and the revoked mint authority are all in place.
"""

from __future__ import annotations

import asyncio
import logging
import pathlib

from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature

from tokenforge.chains.ports import LaunchReceipt, LaunchRequest, SignedLaunch
from tokenforge.chains.solana.embedded import EmbeddedSolanaChain, EmbeddedTransport
from tokenforge.chains.solana.instructions import (
    MINT_BASE_LEN,
    TOKEN_2022_PROGRAM_ID,
    LaunchParams,
    build_launch_transaction,
    mint_account_final_len,
)
from tokenforge.chains.solana.mint_keys import derive_mint_keypair
from tokenforge.chains.solana.transport import SendOutcome, SolanaTransport, TxStatus
from tokenforge.errors import PermanentError, TransientError

log = logging.getLogger(__name__)

LAMPORTS_PER_SOL = 1_000_000_000
EMBEDDED_PAYER_TARGET_LAMPORTS = 100_000 * LAMPORTS_PER_SOL
EMBEDDED_PAYER_MIN_LAMPORTS = 10_000 * LAMPORTS_PER_SOL
_MINT_IS_INITIALIZED_OFFSET = 45  # COption<Pubkey> authority (36) + supply (8) + decimals (1)
_SYSTEM_INSUFFICIENT_LAMPORTS = 1  # SystemError::ResultWithNegativeLamports


class SolanaDeployer:
    """Launches Token-2022 mints with on-chain metadata. Payer = fee payer, rent payer,
    temporary mint authority (revoked in the same transaction) and metadata update authority.
    """

    def __init__(
        self,
        chain: str,
        transport: SolanaTransport,
        payer: Keypair,
        mint_secret: bytes,
        *,
        embedded: EmbeddedSolanaChain | None = None,
    ) -> None:
        self.chain = chain
        self.transport = transport
        self.embedded = embedded
        self._payer = payer
        self._mint_secret = mint_secret
        self._rent_cache: dict[int, int] = {}
        derive_mint_keypair(mint_secret, "check")  # fail early on a malformed secret

    @property
    def payer(self) -> Pubkey:
        return self._payer.pubkey()

    def mint_address(self, job_id: str) -> Pubkey:
        """The mint address a job's launch has (or will have)."""
        return derive_mint_keypair(self._mint_secret, job_id).pubkey()

    # ------------------------------------------------------------------ port
    async def find_existing(self, req: LaunchRequest) -> LaunchReceipt | None:
        self._check_chain(req)
        return await self._existing_receipt(self.mint_address(req.job_id))

    async def sign(self, req: LaunchRequest) -> SignedLaunch:
        self._check_chain(req)
        params = LaunchParams.create(
            name=req.name,
            symbol=req.symbol,
            uri=req.metadata_uri,
            decimals=req.decimals,
            supply_base_units=req.supply_base_units,
            creator=req.creator,
        )
        mint = derive_mint_keypair(self._mint_secret, req.job_id)
        mint_lamports = await self._rent(mint_account_final_len(params.name, params.symbol, params.uri))
        blockhash, last_valid_block_height = await self.transport.latest_blockhash()
        try:
            tx = build_launch_transaction(self._payer, mint, params, blockhash, mint_lamports)
        except Exception as exc:  # solders refused to compile or sign the message
            raise PermanentError(f"cannot build the launch transaction: {exc}", code="invalid_parameter") from exc
        return SignedLaunch(
            tx_id=str(tx.signatures[0]),
            raw_tx=bytes(tx),
            token_address=str(mint.pubkey()),
            signer=str(self._payer.pubkey()),
            recent_blockhash=str(blockhash),
            last_valid_block_height=last_valid_block_height,
        )

    async def broadcast(self, signed: SignedLaunch) -> None:
        outcome = await self.transport.send_raw_transaction(signed.raw_tx)
        if outcome is SendOutcome.BLOCKHASH_NOT_FOUND:
            log.info("solana launch not accepted: blockhash expired", extra={"tx_id": signed.tx_id})

    async def confirm(self, signed: SignedLaunch) -> LaunchReceipt | None:
        signature = _parse_signature(signed.tx_id)
        status = await self.transport.get_transaction_status(signature)
        if status is None:
            if signed.last_valid_block_height is not None and (
                await self.transport.block_height() <= signed.last_valid_block_height
            ):
                return None
            # Expired. Look once more: it may have landed between the two calls.
            status = await self.transport.get_transaction_status(signature)
            if status is None:
                raise TransientError(
                    f"transaction {signed.tx_id} expired without landing; re-sign with a fresh blockhash",
                    code="tx_dropped",
                )
        mint = _parse_pubkey(signed.token_address, "token_address")
        if status.err is None:
            return _receipt(mint, status)
        existing = await self._existing_receipt(mint)
        if existing is not None:  # an earlier attempt created this job's mint
            return existing
        raise _failure(status)

    async def close(self) -> None:
        await self.transport.close()

    # ------------------------------------------------------------------ helpers
    def _check_chain(self, req: LaunchRequest) -> None:
        if req.chain != self.chain:
            raise PermanentError(f"request for chain {req.chain!r} sent to {self.chain!r}", code="wrong_chain")

    async def _rent(self, data_len: int) -> int:
        lamports = self._rent_cache.get(data_len)
        if lamports is None:
            lamports = await self.transport.minimum_balance_for_rent_exemption(data_len)
            self._rent_cache[data_len] = lamports
        return lamports

    async def _existing_receipt(self, mint: Pubkey) -> LaunchReceipt | None:
        account = await self.transport.get_account(mint)
        if (
            account is None
            or account.owner != TOKEN_2022_PROGRAM_ID
            or len(account.data) < MINT_BASE_LEN
            or account.data[_MINT_IS_INITIALIZED_OFFSET] != 1
        ):
            return None
        for status in await self.transport.signatures_for_address(mint):
            if status.err is None:
                return _receipt(mint, status, found_existing=True)
        # The mint exists but its creating transaction is no longer in the node's history.
        return LaunchReceipt(str(mint), "", 0, None, 0, {"found_existing": True, "history": "unavailable"})


def _receipt(mint: Pubkey, status: TxStatus, *, found_existing: bool = False) -> LaunchReceipt:
    return LaunchReceipt(
        token_address=str(mint),
        tx_id=str(status.signature),
        block_number=status.slot,
        gas_used=None,
        fee_paid_base_units=status.fee_lamports,
        extra={"found_existing": True} if found_existing else {},
    )


def _failure(status: TxStatus) -> PermanentError:
    if status.custom_code == _SYSTEM_INSUFFICIENT_LAMPORTS and status.instruction_index in (0, 4):
        # CreateAccount (0) or the ATA's rent transfer (4) could not debit the payer.
        return PermanentError(f"payer has insufficient lamports: {status.err}", code="insufficient_funds")
    return PermanentError(f"launch transaction {status.signature} failed: {status.err}", code="tx_failed")


def _parse_signature(value: str) -> Signature:
    try:
        return Signature.from_string(value)
    except (ValueError, TypeError) as exc:
        raise PermanentError(f"not a Solana signature: {value!r}", code="invalid_tx_id") from exc


def _parse_pubkey(value: str, field: str) -> Pubkey:
    try:
        return Pubkey.from_string(value)
    except (ValueError, TypeError) as exc:
        raise PermanentError(f"{field} is not a Solana address: {value!r}", code="invalid_address") from exc


def _keypair_from_seed(seed: bytes) -> Keypair:
    if len(seed) != 32:
        raise PermanentError("the Solana payer seed must be 32 bytes", code="invalid_payer_seed")
    return Keypair.from_seed(seed)


async def open_embedded_solana_deployer(
    chain: str, state_dir: pathlib.Path | None, payer_seed: bytes, mint_secret: bytes
) -> SolanaDeployer:
    """Open (or reopen) the embedded chain, fund the payer and return a ready deployer.

    ``state_dir=None`` keeps the chain in memory; otherwise its state lives in
    ``state_dir/solana.sqlite3`` and survives restarts. The payer is topped up to
    100,000 SOL whenever it holds less than 10,000 SOL at open. ``close()`` closes the chain.
    """
    payer = _keypair_from_seed(payer_seed)
    embedded = await asyncio.to_thread(EmbeddedSolanaChain, state_dir)
    transport = EmbeddedTransport(embedded)
    try:
        deployer = SolanaDeployer(chain, transport, payer, mint_secret, embedded=embedded)
        balance = await transport.get_balance(payer.pubkey())
        if balance < EMBEDDED_PAYER_MIN_LAMPORTS:
            await transport.airdrop(payer.pubkey(), EMBEDDED_PAYER_TARGET_LAMPORTS - balance)
    except BaseException:
        await transport.close()
        raise
    return deployer
