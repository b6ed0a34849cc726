"""real chains: nonce cursors per signer, replaced transactions per job

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 04:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "nonce_cursors",
        sa.Column("chain", sa.String(length=32), nullable=False),
        sa.Column("signer", sa.String(length=64), nullable=False),
        sa.Column("next_nonce", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("chain", "signer"),
    )
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("replaced_tx_ids", sa.JSON(), nullable=True))
        batch_op.create_index("ix_jobs_signer_nonce", ["chain", "signer", "nonce"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_index("ix_jobs_signer_nonce")
        batch_op.drop_column("replaced_tx_ids")
    op.drop_table("nonce_cursors")
