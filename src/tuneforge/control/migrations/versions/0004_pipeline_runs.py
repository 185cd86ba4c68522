"""pipeline_jobs run on workers: worker id, heartbeat and attempts, as tuning_jobs have.

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pipeline_jobs") as batch:
        batch.add_column(sa.Column("worker_id", sa.String(128)))
        batch.add_column(sa.Column("heartbeat_time", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("attempts", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("pipeline_jobs") as batch:
        batch.drop_column("attempts")
        batch.drop_column("heartbeat_time")
        batch.drop_column("worker_id")
