"""scale-out: per-chain launch topics, message headers, shared chain health, NOTIFY triggers

* outbox rows carry headers (request id, trace context) to the broker;
* launch messages go to ``jobs.launch.<chain>``: unsent rows of the old single topic move;
* ``chain_health`` holds RPC endpoint and key health reported by worker processes;
* on PostgreSQL, triggers ``NOTIFY`` listeners when outbox rows or job events are
  inserted (the relay and the SSE streams of every API process wake on them), delivered
  at commit like the rows themselves.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 12:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

#: Channel names (also in tokenforge.store.notify).
OUTBOX_CHANNEL = "tokenforge_outbox"
JOB_EVENTS_CHANNEL = "tokenforge_job_events"


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.add_column(sa.Column("headers", sa.JSON(), nullable=True))
    op.execute(
        "UPDATE outbox SET topic = 'jobs.launch.' || (SELECT chain FROM jobs WHERE jobs.id = outbox.job_id) "
        "WHERE topic = 'jobs.launch' AND sent_at IS NULL AND job_id IS NOT NULL"
    )
    op.create_table(
        "chain_health",
        sa.Column("chain", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("reporter", sa.String(length=96), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("chain", "kind", "name"),
    )
    if op.get_bind().dialect.name == "postgresql":
        for statement in (
            f"""CREATE FUNCTION tokenforge_notify_outbox() RETURNS trigger AS $$
            BEGIN PERFORM pg_notify('{OUTBOX_CHANNEL}', ''); RETURN NULL; END $$ LANGUAGE plpgsql""",
            """CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
            FOR EACH STATEMENT EXECUTE FUNCTION tokenforge_notify_outbox()""",
            f"""CREATE FUNCTION tokenforge_notify_job_event() RETURNS trigger AS $$
            BEGIN PERFORM pg_notify('{JOB_EVENTS_CHANNEL}', NEW.job_id); RETURN NULL; END $$ LANGUAGE plpgsql""",
            """CREATE TRIGGER job_events_notify AFTER INSERT ON job_events
            FOR EACH ROW EXECUTE FUNCTION tokenforge_notify_job_event()""",
        ):
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in (
            "DROP TRIGGER IF EXISTS job_events_notify ON job_events",
            "DROP FUNCTION IF EXISTS tokenforge_notify_job_event()",
            "DROP TRIGGER IF EXISTS outbox_notify ON outbox",
            "DROP FUNCTION IF EXISTS tokenforge_notify_outbox()",
        ):
            op.execute(statement)
    op.drop_table("chain_health")
    op.execute("UPDATE outbox SET topic = 'jobs.launch' WHERE topic LIKE 'jobs.launch.%' AND sent_at IS NULL")
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.drop_column("headers")
