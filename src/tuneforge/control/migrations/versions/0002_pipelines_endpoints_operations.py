"""pipelineJobs, endpoints and long-running operations.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    tz = sa.DateTime(timezone=True)
    op.create_table(
        "pipeline_jobs",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("project", sa.String(128), nullable=False, index=True),
        sa.Column("location", sa.String(64), nullable=False),
        sa.Column("state", sa.String(40), nullable=False, index=True),
        sa.Column("template", sa.String(64), nullable=False),
        sa.Column("resource", sa.JSON, nullable=False),
        sa.Column("parameters", sa.JSON, nullable=False),
        sa.Column("tasks", sa.JSON, nullable=False),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("create_time", tz, nullable=False, index=True),
        sa.Column("update_time", tz, nullable=False),
        sa.Column("start_time", tz),
        sa.Column("end_time", tz),
        sa.Column("error", sa.JSON),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
    )
    op.create_table(
        "endpoints",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("project", sa.String(128), nullable=False, index=True),
        sa.Column("location", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(256), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("deployed_models", sa.JSON, nullable=False),
        sa.Column("traffic_split", sa.JSON, nullable=False),
        sa.Column("create_time", tz, nullable=False, index=True),
        sa.Column("update_time", tz, nullable=False),
    )
    op.create_table(
        "operations",
        sa.Column("name", sa.String(512), primary_key=True),
        sa.Column("done", sa.Boolean, nullable=False),
        sa.Column("metadata_json", sa.JSON),
        sa.Column("response", sa.JSON),
        sa.Column("error", sa.JSON),
        sa.Column("create_time", tz, nullable=False),
        sa.Column("update_time", tz, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("operations")
    op.drop_table("endpoints")
    op.drop_table("pipeline_jobs")
