"""SQLAlchemy models: tokens, jobs, job events, outbox, idempotency keys, nonce cursors;
API keys, sign-in sessions and nonces, the audit log, webhooks and their deliveries.

Big integers (supplies, fees in wei) are stored as decimal strings so SQLite and
PostgreSQL hold them exactly.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
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
