"""SQLAlchemy models: tokens, jobs, job events, outbox, idempotency keys, nonce cursors;
API keys, sign-in sessions and nonces, the audit log, webhooks and their deliveries; the
market: curves and their state, trades, candles, holders, indexed blocks, market events.

Big integers (supplies, fees in wei) are stored as decimal strings so SQLite and
PostgreSQL hold them exactly.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given; use tokenforge.store.db.utcnow()")
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    pass


def table(model: type[Base]) -> Table:
    """The Core table of ``model``, for Core ``insert``/``update`` (``Model.__table__`` is typed
    as a plain ``FromClause``)."""
    return Base.metadata.tables[model.__tablename__]


class TokenRow(Base):
    __tablename__ = "tokens"

    seq: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(32), unique=True)
    chain: Mapped[str] = mapped_column(String(32))
    network: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(16))
    decimals: Mapped[int] = mapped_column(Integer)
    supply: Mapped[str] = mapped_column(String(80))
    supply_base_units: Mapped[str] = mapped_column(String(80))
    creator: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")
    image_url: Mapped[str | None] = mapped_column(String(256))
    website: Mapped[str | None] = mapped_column(String(256))
    twitter: Mapped[str | None] = mapped_column(String(256))
    telegram: Mapped[str | None] = mapped_column(String(256))
    metadata_uri: Mapped[str | None] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16))
    address: Mapped[str | None] = mapped_column(String(64))
    tx_id: Mapped[str | None] = mapped_column(String(128))
    block_number: Mapped[int | None] = mapped_column(BigInteger)
    gas_used: Mapped[int | None] = mapped_column(BigInteger)
    fee_paid_base_units: Mapped[str | None] = mapped_column(String(80))
    job_id: Mapped[str] = mapped_column(String(32), unique=True)
    #: Who asked for the launch: the principal's subject (:mod:`tokenforge.auth.principal`).
    requested_by: Mapped[str | None] = mapped_column(String(128))
    #: The curve's decaying launch fee chosen at launch (0, 0 = none).
    launch_fee_bps: Mapped[int] = mapped_column(Integer, default=0)
    launch_fee_window: Mapped[int] = mapped_column(Integer, default=0)
    launch_fee_in_blocks: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_tokens_chain_seq", "chain", "seq"),
        Index("ix_tokens_creator_seq", "creator", "seq"),
        Index("ix_tokens_status_seq", "status", "seq"),
        Index("ix_tokens_chain_address", "chain", "address"),
    )


class JobRow(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    token_id: Mapped[str] = mapped_column(String(32), ForeignKey("tokens.id"))
    chain: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    # Lease: one worker at a time works on a job, even with duplicate deliveries.
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[float | None] = mapped_column(Float)
    # The signed transaction, written before broadcast (write-ahead).
    tx_id: Mapped[str | None] = mapped_column(String(128))
    raw_tx: Mapped[bytes | None] = mapped_column(LargeBinary)
    signer: Mapped[str | None] = mapped_column(String(64))
    nonce: Mapped[int | None] = mapped_column(BigInteger)
    recent_blockhash: Mapped[str | None] = mapped_column(String(64))
    last_valid_block_height: Mapped[int | None] = mapped_column(BigInteger)
    token_address: Mapped[str | None] = mapped_column(String(64))
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Earlier transactions of this job replaced by a higher-fee one with the same nonce;
    # any of them may still be the one that gets mined.
    replaced_tx_ids: Mapped[list[str] | None] = mapped_column(JSON)
    confirm_checks: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_jobs_status", "status"),
        Index("ix_jobs_signer_nonce", "chain", "signer", "nonce"),
        Index("ix_jobs_lease", "lease_owner"),
    )


class NonceCursorRow(Base):
    """The next nonce to hand out per EVM signer, shared by every worker process."""

    __tablename__ = "nonce_cursors"

    chain: Mapped[str] = mapped_column(String(32), primary_key=True)
    signer: Mapped[str] = mapped_column(String(64), primary_key=True)
    next_nonce: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class JobEventRow(Base):
    """Every state change of a job, in order; streamed to clients over SSE."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(32), ForeignKey("jobs.id"))
    status: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_job_events_job_id", "job_id", "id"),)


class OutboxRow(Base):
    """Messages to publish, written in the same transaction as the state they announce."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(String(64))
    message_id: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: Message headers (request id, trace context: :mod:`tokenforge.observability.context`).
    headers: Mapped[dict[str, str] | None] = mapped_column(JSON)
    #: The job the message advances (None for messages that are not about one job).
    job_id: Mapped[str | None] = mapped_column(String(32))
    available_at: Mapped[float] = mapped_column(Float)  # unix seconds; delayed delivery
    sent_at: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_outbox_pending", "sent_at", "available_at"),
        Index("ix_outbox_job", "job_id", "sent_at"),
    )


class ChainHealthRow(Base):
    """The last reported health of one RPC endpoint or deployer key, written by the
    process that uses it, so that any API process can report it (``GET /v1/chains``)."""

    __tablename__ = "chain_health"

    chain: Mapped[str] = mapped_column(String(32), primary_key=True)
    #: ``endpoint`` or ``key``
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    #: the endpoint's redacted URL or the key's address
    name: Mapped[str] = mapped_column(String(256), primary_key=True)
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: the reporting process (``host:pid``)
    reporter: Mapped[str] = mapped_column(String(96))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class IdempotencyKeyRow(Base):
    __tablename__ = "idempotency_keys"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(128))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    response_status: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("scope", "key", name="uq_idempotency_scope_key"),)


class ApiKeyRow(Base):
    """An API key of a programmatic client. Only the SHA-256 of the key is stored."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    #: The key's public start (``tfk_<id>``), shown in listings and the audit log.
    prefix: Mapped[str] = mapped_column(String(48))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    #: The wallet the key launches for (required for creators).
    wallet: Mapped[str | None] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(128), default="")
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AuthSessionRow(Base):
    """A wallet sign-in session (opaque bearer token; only its SHA-256 is stored)."""

    __tablename__ = "auth_sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    wallet: Mapped[str] = mapped_column(String(64))
    #: ``evm`` or ``solana``: the kind of wallet that signed in.
    family: Mapped[str] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_auth_sessions_wallet", "wallet"),)


class SigninNonceRow(Base):
    """A server-issued sign-in nonce; deleted when a signed message uses it (single use)."""

    __tablename__ = "signin_nonces"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AuditRow(Base):
    """One entry of the append-only, hash-chained audit log (:mod:`tokenforge.audit`).

    ``seq`` runs 1, 2, 3, ... with no gaps; ``hash`` = SHA-256 over ``prev_hash`` and the
    entry's canonical JSON, so editing, deleting or inserting a row breaks the chain."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: Who: ``api_key:<id>``, ``session:<id>``, ``cli:<user>@<host>``, ``system:<role>``, ...
    actor: Mapped[str] = mapped_column(String(160))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(256))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_audit_action_seq", "action", "seq"),
        Index("ix_audit_actor_seq", "actor", "seq"),
        Index("ix_audit_subject_seq", "subject", "seq"),
    )


class WebhookRow(Base):
    """A callback URL registered by a creator or API key for its launches."""

    __tablename__ = "webhooks"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    #: The principal subject whose launches it follows (a wallet, or ``api_key:<id>``).
    owner: Mapped[str] = mapped_column(String(128))
    url: Mapped[str] = mapped_column(String(2048))
    #: The signing secret, envelope-encrypted (:mod:`tokenforge.keys.envelope`).
    secret: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: Job statuses delivered; None = every state change.
    events: Mapped[list[str] | None] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(160))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_webhooks_owner", "owner"),)


class WebhookDeliveryRow(Base):
    """One job event for one webhook, with its delivery attempts."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    webhook_id: Mapped[str] = mapped_column(String(32), ForeignKey("webhooks.id"))
    job_id: Mapped[str] = mapped_column(String(32))
    #: The job event delivered (None for a re-send or a test ping).
    event_id: Mapped[int | None] = mapped_column(BigInteger)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: ``pending``, ``delivered`` or ``failed`` (attempts used up).
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("webhook_id", "event_id", name="uq_webhook_delivery_event"),
        Index("ix_webhook_deliveries_webhook", "webhook_id", "created_at"),
        Index("ix_webhook_deliveries_status", "status"),
    )


class CursorRow(Base):
    """A named position in an append-only table (e.g. the job events webhooks have seen)."""

    __tablename__ = "cursors"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


# ---------------------------------------------------------------------------- market
# Written by the indexer only (tokenforge.market.indexer), in one transaction per batch of
# blocks; amounts in base units as decimal strings, with a float twin where SQL sorts.


class MarketRow(Base):
    """One token's bonding curve: its launch terms and its market state."""

    __tablename__ = "markets"

    chain: Mapped[str] = mapped_column(String(32), primary_key=True)
    token_address: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: the TokenForge launch (None for a token launched on the factory directly)
    token_id: Mapped[str | None] = mapped_column(String(32))
    curve_address: Mapped[str] = mapped_column(String(64))
    creator: Mapped[str] = mapped_column(String(64))
    decimals: Mapped[int] = mapped_column(Integer)
    supply: Mapped[str] = mapped_column(String(80))
    virtual_native0: Mapped[str] = mapped_column(String(80))
    platform_fee_bps: Mapped[int] = mapped_column(Integer)
    creator_fee_bps: Mapped[int] = mapped_column(Integer)
    launch_fee_bps: Mapped[int] = mapped_column(Integer)
    launch_window: Mapped[int] = mapped_column(Integer)
    window_in_blocks: Mapped[bool] = mapped_column(Boolean)
    migration_fee: Mapped[str] = mapped_column(String(80))
    launched_at: Mapped[int] = mapped_column(BigInteger)
    created_block: Mapped[int] = mapped_column(BigInteger)
    created_tx: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # -- state after the last indexed trade
    native_raised: Mapped[str] = mapped_column(String(80))
    tokens_sold: Mapped[str] = mapped_column(String(80))
    #: marginal price in native coin per whole token, and supply x price
    price_native: Mapped[float] = mapped_column(Float)
    market_cap_native: Mapped[float] = mapped_column(Float)
    progress_bps: Mapped[int] = mapped_column(Integer)
    volume_24h_native: Mapped[float] = mapped_column(Float, default=0.0)
    price_change_24h_pct: Mapped[float | None] = mapped_column(Float)
    ath_price_native: Mapped[float] = mapped_column(Float)
    trade_count: Mapped[int] = mapped_column(BigInteger, default=0)
    holder_count: Mapped[int] = mapped_column(BigInteger, default=0)
    last_trade_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: ``trading`` or ``graduated``
    state: Mapped[str] = mapped_column(String(16))
    pair_address: Mapped[str | None] = mapped_column(String(64))
    graduated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    graduated_block: Mapped[int | None] = mapped_column(BigInteger)
    updated_block: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        Index("ix_markets_token_id", "token_id"),
        Index("ix_markets_curve", "chain", "curve_address"),
        Index("ix_markets_market_cap", "market_cap_native"),
        Index("ix_markets_volume", "volume_24h_native"),
        Index("ix_markets_last_trade", "last_trade_at"),
        Index("ix_markets_progress", "progress_bps"),
    )


class TradeRow(Base):
    """One ``Trade`` log of a curve; unique by (chain, tx hash, log index). On PostgreSQL the
    table is partitioned by ``block_time`` (monthly), so the key includes it."""

    __tablename__ = "trades"

    chain: Mapped[str] = mapped_column(String(32), primary_key=True)
    tx_hash: Mapped[str] = mapped_column(String(128), primary_key=True)
    log_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    block_time: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    token_address: Mapped[str] = mapped_column(String(64))
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str] = mapped_column(String(128))
    trader: Mapped[str] = mapped_column(String(64))
    #: ``buy`` or ``sell``
    side: Mapped[str] = mapped_column(String(4))
    #: buy: native paid incl. fee; sell: native received after fee
    native_amount: Mapped[str] = mapped_column(String(80))
    token_amount: Mapped[str] = mapped_column(String(80))
    fee: Mapped[str] = mapped_column(String(80))
    virtual_native: Mapped[str] = mapped_column(String(80))
    virtual_token: Mapped[str] = mapped_column(String(80))
    price_native: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        Index("ix_trades_token_block", "chain", "token_address", "block_number", "log_index"),
        Index("ix_trades_block", "chain", "block_number"),
        Index("ix_trades_time", "block_time"),
    )


class CandleRow(Base):
    """OHLC and volume of one token per interval bucket, upserted with its trades."""

    __tablename__ = "candles"

    chain: Mapped[str] = mapped_column(String(32), primary_key=True)
    token_address: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: ``1s``, ``1m``, ``5m``, ``15m``, ``1h``, ``4h``, ``1d``
    interval: Mapped[str] = mapped_column(String(4), primary_key=True)
    #: bucket start, unix seconds
    bucket: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    open: Mapped[float] = mapped_column(Float)
    high: Mapped[float] = mapped_column(Float)
    low: Mapped[float] = mapped_column(Float)
    close: Mapped[float] = mapped_column(Float)
    volume_native: Mapped[str] = mapped_column(String(80))
    volume_token: Mapped[str] = mapped_column(String(80))
    trades: Mapped[int] = mapped_column(Integer)


class HolderRow(Base):
    """A token balance from ``Transfer`` logs (zero balances are deleted)."""

    __tablename__ = "holders"

    chain: Mapped[str] = mapped_column(String(32), primary_key=True)
    token_address: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64), primary_key=True)
    balance: Mapped[str] = mapped_column(String(80))
    #: the balance as a float, for ordering
    balance_sort: Mapped[float] = mapped_column(Float)
    updated_block: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_holders_top", "chain", "token_address", "balance_sort"),)


class HolderChangeRow(Base):
    """Each balance change by block, kept for the blocks a reorg can still undo."""

    __tablename__ = "holder_changes"

    seq: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    chain: Mapped[str] = mapped_column(String(32))
    block_number: Mapped[int] = mapped_column(BigInteger)
    token_address: Mapped[str] = mapped_column(String(64))
    holder: Mapped[str] = mapped_column(String(64))
    #: signed change of the balance (decimal string)
    delta: Mapped[str] = mapped_column(String(81))

    __table_args__ = (Index("ix_holder_changes_block", "chain", "block_number"),)


class IndexedBlockRow(Base):
    """Recent blocks the indexer has taken in, to find where a reorg forked."""

    __tablename__ = "indexed_blocks"

    chain: Mapped[str] = mapped_column(String(32), primary_key=True)
    number: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    hash: Mapped[str] = mapped_column(String(128))
    parent_hash: Mapped[str] = mapped_column(String(128))
    timestamp: Mapped[int] = mapped_column(BigInteger)


class IndexCheckpointRow(Base):
    """The newest block indexed per chain, and which indexer process leads it."""

    __tablename__ = "index_checkpoints"

    chain: Mapped[str] = mapped_column(String(32), primary_key=True)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str] = mapped_column(String(128))
    leader: Mapped[str | None] = mapped_column(String(96))
    lease_until: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class MarketEventRow(Base):
    """The market's live feed (new tokens, trades, graduations, rollbacks) in order, for SSE
    streams on any API process and ``Last-Event-ID`` replay."""

    __tablename__ = "market_events"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    chain: Mapped[str] = mapped_column(String(32))
    token_address: Mapped[str | None] = mapped_column(String(64))
    #: ``token``, ``trade``, ``graduation`` or ``rollback``
    kind: Mapped[str] = mapped_column(String(16))
    block_number: Mapped[int] = mapped_column(BigInteger)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_market_events_token", "token_address", "id"),)
