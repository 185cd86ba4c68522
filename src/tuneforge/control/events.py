"""Job events: what happened to a job, written where it happens (the services, the worker, the job's child) and read
back in order by the API. ``kind`` is the job's kind (tuning, pipeline), as the worker names it."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneforge.control.db import Store
from tuneforge.control.tables import JobEventRow, utcnow
from tuneforge.wire.base import timestamp
from tuneforge.wire.events import JobEvent, ListJobEventsResponse

TUNING, PIPELINE = "tuning", "pipeline"


def record(s: Session, kind: str, job_id: str, message: str, severity: str = "INFO") -> None:
    """Add an event in the caller's transaction (it lands with the state change it describes)."""
    s.add(JobEventRow(kind=kind, job_id=job_id, time=utcnow(), severity=severity, message=message))


def record_now(store: Store, kind: str, job_id: str, message: str, severity: str = "INFO") -> None:
    with store.session() as s:
        record(s, kind, job_id, message, severity)


def listed(store: Store, kind: str, job_id: str) -> ListJobEventsResponse:
    with store.session() as s:
        rows = s.scalars(
            select(JobEventRow)
            .where(JobEventRow.kind == kind, JobEventRow.job_id == job_id)
            .order_by(JobEventRow.time, JobEventRow.id)
        ).all()
    return ListJobEventsResponse(
        events=[JobEvent(time=timestamp(r.time) or "", severity=r.severity, message=r.message) for r in rows]
    )
