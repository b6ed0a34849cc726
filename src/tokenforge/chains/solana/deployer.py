"""Solana launches: one Token-2022 transaction per job, mint address derived from the job.

:class:`SolanaDeployer` implements :class:`~tokenforge.chains.ports.ChainDeployer` over a
:class:`~tokenforge.chains.solana.transport.SolanaTransport`: the embedded LiteSVM chain or a
JSON-RPC node through solana-py's ``AsyncClient`` (:mod:`.open` builds either, after
:mod:`.setup` funded the payer). The transaction layout is in
:mod:`~tokenforge.chains.solana.instructions`, the mint keypair derivation in
:mod:`~tokenforge.chains.solana.mint_keys`, the payer's balance and alert in :mod:`.payer`.

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
  mint means metadata, supply, the revoked mint authority and (with a curve program) the
  token's curve are all in place.
* ``health`` reports the payer like an EVM deployer key (address, balance, alert); a
  launch refused for lack of funds raises the payer's alert.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import Transaction

from tokenforge.chains.ports import LaunchReceipt, LaunchRequest, SignedLaunch
from tokenforge.chains.solana.instructions import (
    ASSOCIATED_TOKEN_PROGRAM_ID,
    MINT_BASE_LEN,
    SYSTEM_PROGRAM_ID,
    TOKEN_2022_PROGRAM_ID,
    CurveLaunch,
    LaunchParams,
    build_launch_transaction,
    compute_budget_instructions,
    instruction_program,
    mint_account_final_len,
)
from tokenforge.chains.solana.mint_keys import derive_mint_keypair
from tokenforge.chains.solana.payer import PayerAccount
from tokenforge.chains.solana.transport import SendOutcome, SolanaTransport, TxStatus
from tokenforge.errors import ErrorCode, PermanentError, TransientError

if TYPE_CHECKING:
    from tokenforge.chains.solana.embedded import EmbeddedSolanaChain

log = logging.getLogger(__name__)

_MINT_IS_INITIALIZED_OFFSET = 45  # COption<Pubkey> authority (36) + supply (8) + decimals (1)
_SYSTEM_INSUFFICIENT_LAMPORTS = 1  # SystemError::ResultWithNegativeLamports
# Programs that debit the payer in the launch: System CreateAccount (the mint's rent) and the
# ATA program (the token account's rent, through System).
# The curve program debits it too (the curve account's rent, through System): its own error 1
# is a malformed instruction, which a launch never carries, so 1 there is System's.
_PAYER_DEBITING_PROGRAMS = (SYSTEM_PROGRAM_ID, ASSOCIATED_TOKEN_PROGRAM_ID)


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
        min_balance_lamports: int = 0,
        curve_program: Pubkey | None = None,
    ) -> None:
        self.chain = chain
        #: the curve program every launch creates its token's curve with (None: no curve)
        self.curve_program = curve_program
        self.transport = transport
        #: the embedded chain under ``transport`` (closed with it), None over JSON-RPC
        self.embedded = embedded
        self._payer = payer
        self._mint_secret = mint_secret
        self._rent_cache: dict[int, int] = {}
        self._background: list[asyncio.Task] = []
        self.payer_account = PayerAccount(chain, str(payer.pubkey()), min_balance_lamports=min_balance_lamports)
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
        curve = None
        if self.curve_program is not None:
            curve = CurveLaunch(self.curve_program, req.launch_fee_bps, req.launch_fee_window, req.launch_fee_in_blocks)
        try:
            tx = build_launch_transaction(
                self._payer,
                mint,
                params,
                blockhash,
                mint_lamports,
                compute_unit_limit=self.compute_unit_limit,
                compute_unit_price_micro_lamports=self.compute_unit_price_micro_lamports,
                curve=curve,
            )
        except Exception as exc:  # solders refused to compile or sign the message
            raise PermanentError(
                f"cannot build the launch transaction: {exc}", code=ErrorCode.INVALID_PARAMETER
            ) from exc
        return SignedLaunch(
            tx_id=str(tx.signatures[0]),
            raw_tx=bytes(tx),
            token_address=str(mint.pubkey()),
            signer=str(self._payer.pubkey()),
            recent_blockhash=str(blockhash),
            last_valid_block_height=last_valid_block_height,
        )

    async def broadcast(self, signed: SignedLaunch) -> None:
        try:
            outcome = await self.transport.send_raw_transaction(signed.raw_tx)
        except PermanentError as err:
            if err.code is ErrorCode.INSUFFICIENT_FUNDS:
                await self._payer_refused()
            raise
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
        failure = _failure(status, signed.raw_tx, self.curve_program)
        if failure.code is ErrorCode.INSUFFICIENT_FUNDS:
            await self._payer_refused()
        raise failure

    def health(self) -> dict:
        return {"keys": [self.payer_account.health()]}

    async def payer_balance(self) -> int:
        """Reads the payer's balance and records it for :meth:`health`."""
        balance = await self.transport.get_balance(self.payer)
        self.payer_account.record_balance(balance)
        return balance

    async def send_instructions(self, instructions: list[Instruction], timeout_s: float = 30.0) -> TxStatus:
        """Sends ``instructions`` as one transaction paid and signed by the payer and waits
        until it landed (set-up work such as the curve program's config, not launches).
        PermanentError ``tx_failed`` when it failed on chain; TransientError ``tx_dropped``
        when it did not land in ``timeout_s``."""
        blockhash, _ = await self.transport.latest_blockhash()
        message = Message.new_with_blockhash(instructions, self.payer, blockhash)
        tx = Transaction([self._payer], message, blockhash)
        await self.transport.send_raw_transaction(bytes(tx))
        deadline = asyncio.get_running_loop().time() + timeout_s
        while (status := await self.transport.get_transaction_status(tx.signatures[0])) is None:
            if asyncio.get_running_loop().time() > deadline:
                raise TransientError(f"transaction {tx.signatures[0]} did not land", code=ErrorCode.TX_DROPPED)
            await asyncio.sleep(0.05)
        if status.err is not None:
            raise PermanentError(f"transaction {tx.signatures[0]} failed: {status.err}", code=ErrorCode.TX_FAILED)
        return status

    def run_in_background(self, coro: Any, name: str) -> None:
        """Runs ``coro`` (e.g. the payer's balance watch) until the deployer is closed."""
        self._background.append(asyncio.create_task(coro, name=f"{self.chain}-{name}"))

    async def close(self) -> None:
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._background.clear()
        await self.transport.close()

    # ------------------------------------------------------------------ helpers
    async def _payer_refused(self) -> None:
        try:
            balance = await self.transport.get_balance(self.payer)
        except TransientError:
            balance = self.payer_account.balance_lamports or 0
        self.payer_account.record_balance(balance, refused=True)

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


def _failure(status: TxStatus, raw_tx: bytes, curve_program: Pubkey | None) -> PermanentError:
    # The failed instruction's program is read from the transaction itself: its position
    # depends on whether ComputeBudget instructions were prepended when it was signed.
    if (
        status.custom_code == _SYSTEM_INSUFFICIENT_LAMPORTS
        and status.instruction_index is not None
        and instruction_program(raw_tx, status.instruction_index) in (*_PAYER_DEBITING_PROGRAMS, curve_program)
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
