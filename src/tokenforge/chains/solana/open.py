"""Opening a Solana chain: the embedded chain's lifecycle or an RPC node's check, the deployer.

* :func:`open_embedded_solana_deployer` — opens (or reopens) the in-process LiteSVM chain,
  funds the payer from its faucet and returns a deployer that owns the chain.
* :func:`open_rpc_solana_deployer` — a deployer over a JSON-RPC node (``tokenforge
  devnet``, a validator, real clusters), checked to answer before it is returned.

Both read the payer's balance so ``GET /v1/chains`` shows it, and with ``balance_interval_s``
keep reading it. LiteSVM (and the embedded chain's modules) are imported only inside
:func:`open_embedded_solana_deployer`: a process that reaches Solana over JSON-RPC never
loads them.
"""

from __future__ import annotations

import asyncio
import pathlib

from solana.rpc.async_api import AsyncClient
from solders.pubkey import Pubkey

from tokenforge.chains.solana import market
from tokenforge.chains.solana.deployer import SolanaDeployer
from tokenforge.chains.solana.market import CURVE_PROGRAM_ID
from tokenforge.chains.solana.payer import watch_balance
from tokenforge.chains.solana.rpc_transport import Commitment, RpcSolanaTransport
from tokenforge.chains.solana.setup import payer_keypair, top_up_by_airdrop, top_up_embedded
from tokenforge.domain.curve import PlatformTerms
from tokenforge.errors import ErrorCode, TransientError


async def open_embedded_solana_deployer(
    chain: str,
    state_dir: pathlib.Path | None,
    payer_seed: bytes,
    mint_secret: bytes,
    *,
    compute_unit_price_micro_lamports: int = 0,
    compute_unit_limit: int | None = None,
    min_balance_lamports: int = 0,
    balance_interval_s: float | None = None,
    market_terms: PlatformTerms | None = None,
) -> SolanaDeployer:
    """Open (or reopen) the embedded chain, fund the payer and return a ready deployer.

    The chain carries TokenForge's curve program; every launch creates its token's curve.
    The program's config is initialised from ``market_terms`` (default: the domain's
    defaults), with the payer as admin and fee recipient, the first time.

    ``state_dir=None`` keeps the chain in memory; otherwise its state lives in
    ``state_dir/solana.sqlite3`` and survives restarts. The payer is topped up to
    100,000 SOL whenever it holds less than 10,000 SOL at open. ``close()`` closes the chain.
    """
    from tokenforge.chains.solana.embedded import EmbeddedSolanaChain  # LiteSVM: embedded only
    from tokenforge.chains.solana.embedded_transport import EmbeddedTransport

    payer = payer_keypair(payer_seed)
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
            min_balance_lamports=min_balance_lamports,
            curve_program=CURVE_PROGRAM_ID,
        )
        deployer.payer_account.record_balance(await top_up_embedded(transport, payer.pubkey()))
        await _ensure_market(deployer, market_terms)
    except BaseException:
        await transport.close()
        raise
    _watch(deployer, balance_interval_s)
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
    min_balance_lamports: int = 0,
    balance_interval_s: float | None = None,
    curve_program: Pubkey | None = None,
    market_terms: PlatformTerms | None = None,
) -> SolanaDeployer:
    """A deployer over a JSON-RPC node, checked to answer before it is returned.

    The deployer takes ``client`` over: ``close()`` closes it (also when opening fails).
    The node must serve ``getLatestBlockhash``; when it cannot be reached the call raises
    ``TransientError(code=ErrorCode.RPC_UNAVAILABLE)``, a node that rejects the request outright
    raises ``PermanentError``. ``airdrop_below_lamports`` (local devnets only): when the
    payer holds less, it asks the node's faucet for the difference and waits until the
    balance shows it (``TransientError(code=ErrorCode.AIRDROP_TIMEOUT)`` after 30 s).
    With ``curve_program`` (``tokenforge devnet`` loads it at :data:`CURVE_PROGRAM_ID`;
    elsewhere wherever it was deployed) every launch creates its token's curve, and the
    program's config is initialised from ``market_terms`` when it has none.
    """
    transport = RpcSolanaTransport(client, commitment=commitment)
    try:
        payer = payer_keypair(payer_seed)
        deployer = SolanaDeployer(
            chain,
            transport,
            payer,
            mint_secret,
            compute_unit_price_micro_lamports=compute_unit_price_micro_lamports,
            compute_unit_limit=compute_unit_limit,
            min_balance_lamports=min_balance_lamports,
            curve_program=curve_program,
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
            deployer.payer_account.record_balance(
                await top_up_by_airdrop(transport, payer.pubkey(), airdrop_below_lamports)
            )
        else:
            await deployer.payer_balance()
        if curve_program is not None:
            await _ensure_market(deployer, market_terms)
    except BaseException:
        await transport.close()
        raise
    _watch(deployer, balance_interval_s)
    return deployer


def _watch(deployer: SolanaDeployer, interval_s: float | None) -> None:
    if interval_s is None:
        return

    async def read() -> int:
        return await deployer.transport.get_balance(deployer.payer)

    deployer.run_in_background(watch_balance(read, deployer.payer_account, interval_s), "payer-balance")


async def _ensure_market(deployer: SolanaDeployer, terms: PlatformTerms | None) -> None:
    """The curve program's config, initialised once with the payer as admin and fee recipient
    (``terms`` None: the default settings')."""
    program = deployer.curve_program
    assert program is not None
    if terms is None:
        from tokenforge.bootstrap import market_terms  # settings → terms lives there
        from tokenforge.config import ChainSettings

        terms = market_terms("solana", ChainSettings())
    config = market.ConfigTerms.of(terms, deployer.payer)
    await market.ensure_config(deployer.transport, deployer.send_instructions, deployer.payer, config, program)
