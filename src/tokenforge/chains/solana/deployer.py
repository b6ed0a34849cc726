"""Solana launches: one Token-2022 transaction per job, mint address derived from the job.

:class:`SolanaDeployer` implements :class:`~tokenforge.chains.ports.ChainDeployer` over a
:class:`~tokenforge.chains.solana.transport.SolanaTransport`: the embedded LiteSVM chain
(:func:`open_embedded_solana_deployer`) or a JSON-RPC node through solana-py's
``AsyncClient`` (:func:`open_rpc_solana_deployer`). The transaction layout is in
:mod:`~tokenforge.chains.solana.instructions`, the mint keypair derivation in
:mod:`~tokenforge.chains.solana.mint_keys`.

Behaviour per call (see ``chains/ports.py`` for the shared contract):

* ``sign`` fetches a fresh blockhash and signs with the payer and the job's mint keypair.
  Re-signing a job later yields a different transaction (new blockhash) for the SAME mint.
  With ``compute_unit_price_micro_lamports > 0`` the transaction carries a priority fee
  (ComputeBudget instructions first; see ``instructions``).
* ``broadcast`` submits ``raw_tx``; an already known signature is fine, and so is an
  expired blockhash (the transaction can never land; ``confirm`` then reports it).
* ``confirm`` returns ``None`` while the signature is unknown and the blockhash is still
  valid; raises ``TransientError(code=ErrorCode.TX_DROPPED)`` once the chain's block height has
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
import time

from solana.rpc.async_api import AsyncClient
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature

from tokenforge.chains.ports import LaunchReceipt, LaunchRequest, SignedLaunch
from tokenforge.chains.solana.embedded import EmbeddedSolanaChain, EmbeddedTransport
from tokenforge.chains.solana.instructions import (
    ASSOCIATED_TOKEN_PROGRAM_ID,
    MINT_BASE_LEN,
    SYSTEM_PROGRAM_ID,
    TOKEN_2022_PROGRAM_ID,
    LaunchParams,
    build_launch_transaction,
    compute_budget_instructions,
    instruction_program,
    mint_account_final_len,
)
from tokenforge.chains.solana.mint_keys import derive_mint_keypair
from tokenforge.chains.solana.rpc_transport import Commitment, RpcSolanaTransport
from tokenforge.chains.solana.transport import SendOutcome, SolanaTransport, TxStatus
from tokenforge.errors import ErrorCode, PermanentError, TransientError

log = logging.getLogger(__name__)

LAMPORTS_PER_SOL = 1_000_000_000
EMBEDDED_PAYER_TARGET_LAMPORTS = 100_000 * LAMPORTS_PER_SOL
EMBEDDED_PAYER_MIN_LAMPORTS = 10_000 * LAMPORTS_PER_SOL
_MINT_IS_INITIALIZED_OFFSET = 45  # COption<Pubkey> authority (36) + supply (8) + decimals (1)
_SYSTEM_INSUFFICIENT_LAMPORTS = 1  # SystemError::ResultWithNegativeLamports
# Programs that debit the payer in the launch: System CreateAccount (the mint's rent) and the
# ATA program (the token account's rent, through System).
_PAYER_DEBITING_PROGRAMS = (SYSTEM_PROGRAM_ID, ASSOCIATED_TOKEN_PROGRAM_ID)
AIRDROP_VISIBLE_TIMEOUT_S = 30.0
AIRDROP_POLL_INTERVAL_S = 0.1


class SolanaDeployer:
    """Launches Token-2022 mints with on-chain metadata. Payer = fee payer, rent payer,
    temporary mint authority (revoked in the same transaction) and metadata update authority.

    ``compute_unit_price_micro_lamports`` > 0 adds a priority fee; ``compute_unit_limit``
    overrides the per-launch default limit (see ``instructions.launch_compute_unit_limit``).
    """

    def __init__(
        self,
        chain: str,
        transport: SolanaTransport,
        payer: Keypair,
        mint_secret: bytes,
        *,
        embedded: EmbeddedSolanaChain | None = None,
        compute_unit_price_micro_lamports: int = 0,
        compute_unit_limit: int | None = None,
    ) -> None:
        self.chain = chain
        self.transport = transport
        self.embedded = embedded
        self._payer = payer
        self._mint_secret = mint_secret
        self._rent_cache: dict[int, int] = {}
        derive_mint_keypair(mint_secret, "check")  # fail early on a malformed secret
        try:
            compute_budget_instructions(compute_unit_limit, compute_unit_price_micro_lamports, default_limit=1)
        except ValueError as exc:
            raise PermanentError(str(exc), code=ErrorCode.INVALID_COMPUTE_BUDGET) from exc
        self.compute_unit_price_micro_lamports = compute_unit_price_micro_lamports
        self.compute_unit_limit = compute_unit_limit

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
            tx = build_launch_transaction(
                self._payer,
                mint,
                params,
                blockhash,
                mint_lamports,
                compute_unit_limit=self.compute_unit_limit,
                compute_unit_price_micro_lamports=self.compute_unit_price_micro_lamports,
            )
        except Exception as exc:  # solders refused to compile or sign the message
            raise PermanentError(f"cannot build the launch transaction: {exc}", code=ErrorCode.INVALID_PARAMETER) from exc
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
                    code=ErrorCode.TX_DROPPED,
                )
        mint = _parse_pubkey(signed.token_address, "token_address")
        if status.err is None:
            return _receipt(mint, status)
        existing = await self._existing_receipt(mint)
        if existing is not None:  # an earlier attempt created this job's mint
            return existing
        raise _failure(status, signed.raw_tx)

    async def close(self) -> None:
        await self.transport.close()

    # ------------------------------------------------------------------ helpers
    def _check_chain(self, req: LaunchRequest) -> None:
        if req.chain != self.chain:
            raise PermanentError(f"request for chain {req.chain!r} sent to {self.chain!r}", code=ErrorCode.WRONG_CHAIN)

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


def _failure(status: TxStatus, raw_tx: bytes) -> PermanentError:
    # The failed instruction's program is read from the transaction itself: its position
    # depends on whether ComputeBudget instructions were prepended when it was signed.
    if (
        status.custom_code == _SYSTEM_INSUFFICIENT_LAMPORTS
        and status.instruction_index is not None
        and instruction_program(raw_tx, status.instruction_index) in _PAYER_DEBITING_PROGRAMS
    ):
        # CreateAccount or the ATA's rent transfer could not debit the payer.
        return PermanentError(f"payer has insufficient lamports: {status.err}", code=ErrorCode.INSUFFICIENT_FUNDS)
    return PermanentError(f"launch transaction {status.signature} failed: {status.err}", code=ErrorCode.TX_FAILED)


def _parse_signature(value: str) -> Signature:
    try:
        return Signature.from_string(value)
    except (ValueError, TypeError) as exc:
        raise PermanentError(f"not a Solana signature: {value!r}", code=ErrorCode.INVALID_TX_ID) from exc


def _parse_pubkey(value: str, field: str) -> Pubkey:
    try:
        return Pubkey.from_string(value)
    except (ValueError, TypeError) as exc:
        raise PermanentError(f"{field} is not a Solana address: {value!r}", code=ErrorCode.INVALID_ADDRESS) from exc


def _keypair_from_seed(seed: bytes) -> Keypair:
    if len(seed) != 32:
        raise PermanentError("the Solana payer seed must be 32 bytes", code=ErrorCode.INVALID_PAYER_SEED)
    return Keypair.from_seed(seed)


async def open_embedded_solana_deployer(
    chain: str,
    state_dir: pathlib.Path | None,
    payer_seed: bytes,
    mint_secret: bytes,
    *,
    compute_unit_price_micro_lamports: int = 0,
    compute_unit_limit: int | None = None,
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
        deployer = SolanaDeployer(
            chain,
            transport,
            payer,
            mint_secret,
            embedded=embedded,
            compute_unit_price_micro_lamports=compute_unit_price_micro_lamports,
            compute_unit_limit=compute_unit_limit,
        )
        balance = await transport.get_balance(payer.pubkey())
        if balance < EMBEDDED_PAYER_MIN_LAMPORTS:
            await transport.airdrop(payer.pubkey(), EMBEDDED_PAYER_TARGET_LAMPORTS - balance)
    except BaseException:
        await transport.close()
        raise
    return deployer


async def open_rpc_solana_deployer(
    chain: str,
    client: AsyncClient,
    payer_seed: bytes,
    mint_secret: bytes,
    *,
    commitment: Commitment = "confirmed",
    compute_unit_price_micro_lamports: int = 0,
    compute_unit_limit: int | None = None,
    airdrop_below_lamports: int | None = None,
) -> SolanaDeployer:
    """A deployer over a JSON-RPC node, checked to answer before it is returned.

    The deployer takes ``client`` over: ``close()`` closes it (also when opening fails).
    The node must serve ``getLatestBlockhash``; when it cannot be reached the call raises
    ``TransientError(code=ErrorCode.RPC_UNAVAILABLE)``, a node that rejects the request outright
    raises ``PermanentError``. ``airdrop_below_lamports`` (local devnets only): when the
    payer holds less, it asks the node's faucet for the difference and waits until the
    balance shows it (``TransientError(code=ErrorCode.AIRDROP_TIMEOUT)`` after 30 s).
    """
    transport = RpcSolanaTransport(client, commitment=commitment)
    try:
        payer = _keypair_from_seed(payer_seed)
        deployer = SolanaDeployer(
            chain,
            transport,
            payer,
            mint_secret,
            compute_unit_price_micro_lamports=compute_unit_price_micro_lamports,
            compute_unit_limit=compute_unit_limit,
        )
        try:
            await transport.latest_blockhash()
        except TransientError as exc:
            raise TransientError(
                f"the Solana RPC node for {chain} does not answer: {exc.message}",
                code=ErrorCode.RPC_UNAVAILABLE,
                retry_after_s=exc.retry_after_s,
            ) from exc
        if airdrop_below_lamports is not None:
            await _top_up(transport, payer.pubkey(), airdrop_below_lamports)
    except BaseException:
        await transport.close()
        raise
    return deployer


async def _top_up(transport: RpcSolanaTransport, payer: Pubkey, target_lamports: int) -> None:
    balance = await transport.get_balance(payer)
    if balance >= target_lamports:
        return
    await transport.request_airdrop(payer, target_lamports - balance)
    # JSON-RPC over HTTP has no push: poll the balance until the airdrop shows.
    deadline = time.monotonic() + AIRDROP_VISIBLE_TIMEOUT_S
    while await transport.get_balance(payer) < target_lamports:
        if time.monotonic() >= deadline:
            raise TransientError(
                f"airdrop to the payer not visible after {AIRDROP_VISIBLE_TIMEOUT_S:.0f} s", code=ErrorCode.AIRDROP_TIMEOUT
            )
        await asyncio.sleep(AIRDROP_POLL_INTERVAL_S)
    log.info("solana payer funded by airdrop", extra={"payer": str(payer), "lamports": target_lamports - balance})
