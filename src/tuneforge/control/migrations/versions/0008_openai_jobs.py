"""Fine-tuning jobs made through the OpenAI-compatible API (/v1/fine_tuning/jobs): what each asked for, beside the
tuning job that runs it.

Revision ID: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "openai_jobs",
        sa.Column("id", sa.String(32), sa.ForeignKey("tuning_jobs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("project", sa.String(128), nullable=False, index=True),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("training_file", sa.String(64), nullable=False),
        sa.Column("validation_file", sa.String(64)),
        sa.Column("suffix", sa.String(64)),
        sa.Column("seed", sa.BigInteger, nullable=False),
        sa.Column("job_metadata", sa.JSON),
        sa.Column("method", sa.JSON, nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), index=True),
        sa.Column("model_deleted", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("result_file", sa.String(64)),
    )


def downgrade() -> None:
    op.drop_table("openai_jobs")
