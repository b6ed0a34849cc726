"""outbox rows name their job, so the sweeper can tell a job with a pending message

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.add_column(sa.Column("job_id", sa.String(length=32), nullable=True))
        batch_op.create_index("ix_outbox_job", ["job_id", "sent_at"], unique=False)
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.create_index("ix_jobs_lease", ["lease_owner"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_index("ix_jobs_lease")
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.drop_index("ix_outbox_job")
        batch_op.drop_column("job_id")
