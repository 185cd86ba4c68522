"""Stored data stats: ``userDatasetExamples`` is a list of Content (as the proto has it), not of {"contents": [...]}.

Revision ID: 0005
"""

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _flatten(stats: dict[str, Any]) -> dict[str, Any] | None:
    supervised = (stats or {}).get("supervisedTuningDataStats") or {}
    examples = supervised.get("userDatasetExamples")
    if not examples or not any(isinstance(e, dict) and "contents" in e for e in examples):
        return None
    contents = [
        c
        for e in examples
        for c in (e.get("contents", [e]) if isinstance(e, dict) else [])
        if c.get("role") != "system"
    ]
    return {**stats, "supervisedTuningDataStats": {**supervised, "userDatasetExamples": contents}}


def upgrade() -> None:
    conn = op.get_bind()
    jobs = sa.table("tuning_jobs", sa.column("id", sa.String), sa.column("data_stats", sa.JSON))
    for job_id, stats in conn.execute(sa.select(jobs.c.id, jobs.c.data_stats)).all():
        if isinstance(stats, str):
            stats = json.loads(stats)
        fixed = _flatten(stats)
        if fixed is not None:
            conn.execute(jobs.update().where(jobs.c.id == job_id).values(data_stats=fixed))


def downgrade() -> None:
    pass  # the flat list is what every version reads
