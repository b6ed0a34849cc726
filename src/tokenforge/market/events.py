"""What the indexer reads from a chain, chain-neutral: launches, trades, graduations, transfers.

A chain's log source (EVM: :mod:`tokenforge.market.evm_logs`; Solana: its program's
events, decoded by :mod:`tokenforge.market.solana_events`) turns its blocks into these
records; the indexer's writer only ever sees these. Every record carries its
:class:`Position` — block number and hash, transaction id and the log's index in the
block — which makes it idempotent (one row per (tx id, log index)) and lets a reorg remove
exactly the records of orphaned blocks.

Amounts are integers in base units (wei/lamports; token base units).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Position:
    block_number: int
    block_hash: str
    #: block timestamp, unix seconds
    block_time: int
    tx_id: str
    log_index: int


@dataclass(frozen=True, slots=True)
class Launched:
    """A token and its curve were created (``TokenCreated``)."""

    at: Position
    token: str
    curve: str
    creator: str
    supply: int
    virtual_native0: int
    platform_fee_bps: int
    creator_fee_bps: int
    launch_fee_bps: int
    launch_window: int
    window_in_blocks: bool
    migration_fee: int
    launched_at: int


@dataclass(frozen=True, slots=True)
class Traded:
    """One trade on a curve (``Trade``); reserves are the curve's *after* the trade."""

    at: Position
    curve: str
    trader: str
    is_buy: bool
    #: buy: native paid incl. fee (after any refund); sell: native received after the fee
    native_amount: int
    token_amount: int
    fee: int
    virtual_native: int
    virtual_token: int


@dataclass(frozen=True, slots=True)
class Graduated:
    """A sold-out curve moved its liquidity to an AMM pool (``Graduated``)."""

    at: Position
    curve: str
    pool: str
    native_liquidity: int
    token_liquidity: int
    liquidity_burnt: int
    migration_fee: int


@dataclass(frozen=True, slots=True)
class Transferred:
    """A token balance moved (ERC-20 ``Transfer``; mint from the zero address)."""

    at: Position
    token: str
    sender: str
    recipient: str
    amount: int


MarketRecord = Launched | Traded | Graduated | Transferred


@dataclass(frozen=True, slots=True)
class BlockRef:
    """A block the indexer took in: enough to notice when the chain replaced it."""

    number: int
    hash: str
    parent_hash: str
    timestamp: int


@dataclass(frozen=True, slots=True)
class Batch:
    """The records of consecutive blocks ``blocks[0].number … blocks[-1].number``, in
    chain order (block, then log index)."""

    blocks: tuple[BlockRef, ...]
    records: tuple[MarketRecord, ...]
