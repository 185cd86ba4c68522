"""A job's events (a tuneforge extension): what happened to a tuning or pipeline job, in order."""

from __future__ import annotations

from pydantic import Field

from tuneforge.wire.base import WireModel


class JobEvent(WireModel):
    WIRE_NAME = "JobEvent"
    time: str
    severity: str = Field(default="INFO", description="INFO, WARNING or ERROR")
    message: str = Field(description="Created, started (attempt n), a message from the run, cancel requested, ended…")


class ListJobEventsResponse(WireModel):
    WIRE_NAME = "ListJobEventsResponse"
    events: list[JobEvent] = []
