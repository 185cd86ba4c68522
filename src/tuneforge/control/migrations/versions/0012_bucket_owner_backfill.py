"""A deployment from before bucket owners keeps its tenants' buckets: each bucket a project uploaded a dataset to,
or named as a tuning job's output, becomes that project's (the earliest such use decides), as if the rule of
control/access.py had been in force. tuneforge's layout buckets are owned by name and are left alone; an operator's
TUNEFORGE_BUCKET_ACCESS grants still decide first.

Revision ID: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def _bucket(uri: object) -> str | None:
    if not isinstance(uri, str) or not uri.startswith("gs://"):
        return None
    bucket = uri[5:].split("/", 1)[0]
    return bucket if bucket and not bucket.startswith("tuneforge-") else None  # layout buckets: owned by name


def upgrade() -> None:
    conn = op.get_bind()
    jobs = sa.table(
        "tuning_jobs",
        sa.column("project"),
        sa.column("config", sa.JSON),
        sa.column("create_time", sa.DateTime(timezone=True)),
    )
    datasets = sa.table(
        "datasets", sa.column("project"), sa.column("uri"), sa.column("create_time", sa.DateTime(timezone=True))
    )
    uses = [
        (t, p, _bucket(u))
        for p, u, t in conn.execute(sa.select(datasets.c.project, datasets.c.uri, datasets.c.create_time))
    ]
    for project, config, time in conn.execute(sa.select(jobs.c.project, jobs.c.config, jobs.c.create_time)):
        uses.append((time, project, _bucket((config or {}).get("output_uri"))))
    owners: dict[str, tuple[str, object]] = {}
    for time, project, bucket in sorted(uses, key=lambda u: u[0]):
        if bucket is not None:
            owners.setdefault(bucket, (project, time))
    taken = {row[0] for row in conn.execute(sa.text("SELECT bucket FROM bucket_owners"))}
    rows = [{"bucket": b, "project": p, "create_time": t} for b, (p, t) in owners.items() if b not in taken]
    if rows:
        table = sa.table(
            "bucket_owners",
            sa.column("bucket"),
            sa.column("project"),
            sa.column("create_time", sa.DateTime(timezone=True)),
        )
        op.bulk_insert(table, rows)


def downgrade() -> None:  # the claims cannot be told from later ones; they stay
    pass
