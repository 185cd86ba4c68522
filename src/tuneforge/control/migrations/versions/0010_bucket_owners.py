"""Buckets have owners (control/access.py): the project that first wrote to a bucket nobody owned; and a lock row per
project that admissions write first, so a project's quota holds under concurrent creates and claims.

Revision ID: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bucket_owners",
        sa.Column("bucket", sa.String(255), primary_key=True),
        sa.Column("project", sa.String(128), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "project_locks",
        sa.Column("project", sa.String(128), primary_key=True),
        sa.Column("admissions", sa.BigInteger, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_table("project_locks")
    op.drop_table("bucket_owners")
