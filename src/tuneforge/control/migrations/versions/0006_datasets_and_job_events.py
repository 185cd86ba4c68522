"""Uploaded datasets (the console's upload into the bucket root) and job events (what happened to a job).

Revision ID: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("project", sa.String(128), nullable=False, index=True),
        sa.Column("location", sa.String(64), nullable=False),
        sa.Column("uri", sa.String(1024), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False, server_default="supervised"),
        sa.Column("size_bytes", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), index=True),
    )
    op.create_table(
        "job_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("job_id", sa.String(128), nullable=False, index=True),
        sa.Column("time", sa.DateTime(timezone=True)),
        sa.Column("severity", sa.String(16), nullable=False, server_default="INFO"),
        sa.Column("message", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("job_events")
    op.drop_table("datasets")
