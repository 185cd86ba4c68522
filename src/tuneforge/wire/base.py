"""What every wire model shares: proto-JSON field names, timestamps."""

from __future__ import annotations

from datetime import datetime, timezone


def timestamp(value: datetime | None) -> str | None:
    """A google.protobuf.Timestamp in proto-JSON: RFC 3339 in UTC with microseconds (``…T12:00:00.000000Z``)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
