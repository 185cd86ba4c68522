"""deployed_models: models deployed on endpoints (the serving layer loads them from here after a restart).

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    tz = sa.DateTime(timezone=True)
    op.create_table(
        "deployed_models",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("endpoint_id", sa.String(32), nullable=False, index=True),
        sa.Column("model_id", sa.String(32), nullable=False, index=True),
        sa.Column("project", sa.String(128), nullable=False),
        sa.Column("location", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(256), nullable=False),
        sa.Column("resources", sa.JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("operation", sa.String(512)),
        sa.Column("error", sa.JSON),
        sa.Column("create_time", tz, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("deployed_models")
