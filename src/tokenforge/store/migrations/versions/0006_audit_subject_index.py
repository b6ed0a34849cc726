"""the audit log is searched by subject too (``GET /v1/ops/audit?subject=job:…``)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 15:30:00
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_audit_subject_seq", "audit_log", ["subject", "seq"])


def downgrade() -> None:
    op.drop_index("ix_audit_subject_seq", table_name="audit_log")
