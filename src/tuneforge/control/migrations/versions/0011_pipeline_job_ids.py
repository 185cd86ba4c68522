"""Pipeline job ids are per project: the resource id (pipelineJobId) is a column unique within a project and
location; the primary key is internal. Existing jobs keep their id as both.

Revision ID: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pipeline_jobs") as batch:
        batch.add_column(sa.Column("pipeline_job_id", sa.String(128), nullable=True))
    op.execute("UPDATE pipeline_jobs SET pipeline_job_id = id")
    with op.batch_alter_table("pipeline_jobs") as batch:
        batch.alter_column("pipeline_job_id", existing_type=sa.String(128), nullable=False)
        batch.create_unique_constraint("uq_pipeline_job_id", ["project", "location", "pipeline_job_id"])


def downgrade() -> None:
    with op.batch_alter_table("pipeline_jobs") as batch:
        batch.drop_constraint("uq_pipeline_job_id", type_="unique")
        batch.drop_column("pipeline_job_id")
