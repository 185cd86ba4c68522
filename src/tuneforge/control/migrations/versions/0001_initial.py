"""Initial schema: tuning jobs, their metrics, registry models.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    tz = sa.DateTime(timezone=True)
    op.create_table(
        "tuning_jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("project", sa.String(128), nullable=False, index=True),
        sa.Column("location", sa.String(64), nullable=False),
        sa.Column("state", sa.String(40), nullable=False, index=True),
        sa.Column("resource", sa.JSON, nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("display_name", sa.String(256), nullable=False),
        sa.Column("base_model", sa.String(256), nullable=False),
        sa.Column("create_time", tz, nullable=False, index=True),
        sa.Column("update_time", tz, nullable=False),
        sa.Column("start_time", tz),
        sa.Column("end_time", tz),
        sa.Column("error", sa.JSON),
        sa.Column("tuned_model", sa.JSON),
        sa.Column("data_stats", sa.JSON),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("worker_id", sa.String(128)),
        sa.Column("heartbeat_time", tz),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("progress", sa.JSON),
    )
    op.create_index("ix_tuning_jobs_project_state", "tuning_jobs", ["project", "state"])
    op.create_table(
        "job_metrics",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "job_id", sa.String(32), sa.ForeignKey("tuning_jobs.id", ondelete="CASCADE"), nullable=False, index=True
        ),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("name", sa.String(96), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("time", tz, nullable=False),
    )
    op.create_table(
        "models",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("project", sa.String(128), nullable=False, index=True),
        sa.Column("location", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("display_name", sa.String(256), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("artifact_uri", sa.Text, nullable=False),
        sa.Column("base_model", sa.String(256), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("job_id", sa.String(32)),
        sa.Column("create_time", tz, nullable=False, index=True),
        sa.Column("update_time", tz, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("models")
    op.drop_table("job_metrics")
    op.drop_index("ix_tuning_jobs_project_state", "tuning_jobs")
    op.drop_table("tuning_jobs")
