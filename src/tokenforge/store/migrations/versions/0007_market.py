"""the market: curves and their state, trades (partitioned by time on PostgreSQL), candles,
holders, indexed blocks and checkpoints, the market's live feed; launch fees of tokens

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 17:30:00
"""

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from tokenforge.store.partitions import partition_ddl

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

#: Channel name (also in tokenforge.store.notify).
MARKET_EVENTS_CHANNEL = "tokenforge_market_events"

_TS = sa.DateTime(timezone=True)


def _amount() -> sa.String:
    return sa.String(length=80)


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("tokens") as batch_op:
        batch_op.add_column(sa.Column("launch_fee_bps", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("launch_fee_window", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("launch_fee_in_blocks", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "markets",
        sa.Column("chain", sa.String(length=32), nullable=False),
        sa.Column("token_address", sa.String(length=64), nullable=False),
        sa.Column("token_id", sa.String(length=32), nullable=True),
        sa.Column("curve_address", sa.String(length=64), nullable=False),
        sa.Column("creator", sa.String(length=64), nullable=False),
        sa.Column("decimals", sa.Integer(), nullable=False),
        sa.Column("supply", _amount(), nullable=False),
        sa.Column("virtual_native0", _amount(), nullable=False),
        sa.Column("platform_fee_bps", sa.Integer(), nullable=False),
        sa.Column("creator_fee_bps", sa.Integer(), nullable=False),
        sa.Column("launch_fee_bps", sa.Integer(), nullable=False),
        sa.Column("launch_window", sa.Integer(), nullable=False),
        sa.Column("window_in_blocks", sa.Boolean(), nullable=False),
        sa.Column("migration_fee", _amount(), nullable=False),
        sa.Column("launched_at", sa.BigInteger(), nullable=False),
        sa.Column("created_block", sa.BigInteger(), nullable=False),
        sa.Column("created_tx", sa.String(length=128), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("native_raised", _amount(), nullable=False),
        sa.Column("tokens_sold", _amount(), nullable=False),
        sa.Column("price_native", sa.Float(), nullable=False),
        sa.Column("market_cap_native", sa.Float(), nullable=False),
        sa.Column("progress_bps", sa.Integer(), nullable=False),
        sa.Column("volume_24h_native", sa.Float(), nullable=False),
        sa.Column("price_change_24h_pct", sa.Float(), nullable=True),
        sa.Column("ath_price_native", sa.Float(), nullable=False),
        sa.Column("trade_count", sa.BigInteger(), nullable=False),
        sa.Column("holder_count", sa.BigInteger(), nullable=False),
        sa.Column("last_trade_at", _TS, nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("pair_address", sa.String(length=64), nullable=True),
        sa.Column("graduated_at", _TS, nullable=True),
        sa.Column("graduated_block", sa.BigInteger(), nullable=True),
        sa.Column("updated_block", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("chain", "token_address"),
    )
    op.create_index("ix_markets_token_id", "markets", ["token_id"])
    op.create_index("ix_markets_curve", "markets", ["chain", "curve_address"])
    op.create_index("ix_markets_market_cap", "markets", ["market_cap_native"])
    op.create_index("ix_markets_volume", "markets", ["volume_24h_native"])
    op.create_index("ix_markets_last_trade", "markets", ["last_trade_at"])
    op.create_index("ix_markets_progress", "markets", ["progress_bps"])

    trade_columns: list[Any] = [
        sa.Column("chain", sa.String(length=32), nullable=False),
        sa.Column("tx_hash", sa.String(length=128), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_time", _TS, nullable=False),
        sa.Column("token_address", sa.String(length=64), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.String(length=128), nullable=False),
        sa.Column("trader", sa.String(length=64), nullable=False),
        sa.Column("side", sa.String(length=4), nullable=False),
        sa.Column("native_amount", _amount(), nullable=False),
        sa.Column("token_amount", _amount(), nullable=False),
        sa.Column("fee", _amount(), nullable=False),
        sa.Column("virtual_native", _amount(), nullable=False),
        sa.Column("virtual_token", _amount(), nullable=False),
        sa.Column("price_native", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("chain", "tx_hash", "log_index", "block_time"),
    ]
    op.create_table("trades", *trade_columns, postgresql_partition_by="RANGE (block_time)")
    op.create_index("ix_trades_token_block", "trades", ["chain", "token_address", "block_number", "log_index"])
    op.create_index("ix_trades_block", "trades", ["chain", "block_number"])
    op.create_index("ix_trades_time", "trades", ["block_time"])
    if postgres:
        now = datetime.now(UTC)
        nxt = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
        op.execute(partition_ddl(now.year, now.month))
        op.execute(partition_ddl(*nxt))

    op.create_table(
        "candles",
        sa.Column("chain", sa.String(length=32), nullable=False),
        sa.Column("token_address", sa.String(length=64), nullable=False),
        sa.Column("interval", sa.String(length=4), nullable=False),
        sa.Column("bucket", sa.BigInteger(), nullable=False),
        sa.Column("open", sa.Float(), nullable=False),
        sa.Column("high", sa.Float(), nullable=False),
        sa.Column("low", sa.Float(), nullable=False),
        sa.Column("close", sa.Float(), nullable=False),
        sa.Column("volume_native", _amount(), nullable=False),
        sa.Column("volume_token", _amount(), nullable=False),
        sa.Column("trades", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("chain", "token_address", "interval", "bucket"),
    )
    op.create_table(
        "holders",
        sa.Column("chain", sa.String(length=32), nullable=False),
        sa.Column("token_address", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=False),
        sa.Column("balance", _amount(), nullable=False),
        sa.Column("balance_sort", sa.Float(), nullable=False),
        sa.Column("updated_block", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("chain", "token_address", "holder"),
    )
    op.create_index("ix_holders_top", "holders", ["chain", "token_address", "balance_sort"])
    op.create_table(
        "holder_changes",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("chain", sa.String(length=32), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("token_address", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=False),
        sa.Column("delta", sa.String(length=81), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_index("ix_holder_changes_block", "holder_changes", ["chain", "block_number"])
    op.create_table(
        "indexed_blocks",
        sa.Column("chain", sa.String(length=32), nullable=False),
        sa.Column("number", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=128), nullable=False),
        sa.Column("parent_hash", sa.String(length=128), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("chain", "number"),
    )
    op.create_table(
        "index_checkpoints",
        sa.Column("chain", sa.String(length=32), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.String(length=128), nullable=False),
        sa.Column("leader", sa.String(length=96), nullable=True),
        sa.Column("lease_until", sa.Float(), nullable=True),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("chain"),
    )
    op.create_table(
        "market_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("chain", sa.String(length=32), nullable=False),
        sa.Column("token_address", sa.String(length=64), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_market_events_token", "market_events", ["token_address", "id"])
    if postgres:
        op.execute(
            f"""CREATE FUNCTION tokenforge_notify_market_event() RETURNS trigger AS $$
            BEGIN PERFORM pg_notify('{MARKET_EVENTS_CHANNEL}', ''); RETURN NULL; END $$ LANGUAGE plpgsql"""
        )
        op.execute(
            """CREATE TRIGGER market_events_notify AFTER INSERT ON market_events
            FOR EACH STATEMENT EXECUTE FUNCTION tokenforge_notify_market_event()"""
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS market_events_notify ON market_events")
        op.execute("DROP FUNCTION IF EXISTS tokenforge_notify_market_event()")
    for name in ("market_events", "index_checkpoints", "indexed_blocks", "holder_changes", "holders", "candles"):
        op.drop_table(name)
    op.drop_table("trades")  # drops its partitions with it
    op.drop_table("markets")
    with op.batch_alter_table("tokens") as batch_op:
        batch_op.drop_column("launch_fee_in_blocks")
        batch_op.drop_column("launch_fee_window")
        batch_op.drop_column("launch_fee_bps")
