"""Long-running operations, stored so polling survives restarts. ``response``/``metadata`` carry ``@type``."""

from __future__ import annotations

from tuneforge.errors import NotFound
from tuneforge.control.db import Store
from tuneforge.control.tables import OperationRow, new_id, utcnow
from tuneforge.wire.base import timestamp


def record_done(store: Store, parent: str, response: dict, metadata_type: str | None = None) -> dict:
    """An operation that finished synchronously (the common case for resource bookkeeping)."""
    now = utcnow()
    name = f"{parent}/operations/{new_id()}"
    metadata = {"@type": metadata_type, "genericMetadata": {"createTime": timestamp(now), "updateTime": timestamp(now)}} if metadata_type else None
    with store.session() as s:
        s.add(OperationRow(name=name, done=True, metadata_json=metadata, response=response, create_time=now, update_time=now))
    return operation_json(name, True, metadata, response, None)


def record_pending(store: Store, parent: str, metadata_type: str) -> str:
    """An operation that a background task finishes later with ``finish``; returns its name."""
    now = utcnow()
    name = f"{parent}/operations/{new_id()}"
    metadata = {"@type": metadata_type, "genericMetadata": {"createTime": timestamp(now), "updateTime": timestamp(now)}}
    with store.session() as s:
        s.add(OperationRow(name=name, done=False, metadata_json=metadata, create_time=now, update_time=now))
    return name


def finish(store: Store, name: str, response: dict | None = None, error: dict | None = None) -> None:
    now = utcnow()
    with store.session() as s:
        row = s.get(OperationRow, name)
        if row is None or row.done:
            return
        row.done, row.response, row.error, row.update_time = True, response, error, now
        if row.metadata_json:
            generic = {**row.metadata_json.get("genericMetadata", {}), "updateTime": timestamp(now)}
            row.metadata_json = {**row.metadata_json, "genericMetadata": generic}


def operation_json(name: str, done: bool, metadata: dict | None, response: dict | None, error: dict | None) -> dict:
    out: dict = {"name": name, "done": done}
    if metadata:
        out["metadata"] = metadata
    if done:
        if error:
            out["error"] = error
        else:
            out["response"] = response if response is not None else {"@type": "type.googleapis.com/google.protobuf.Empty"}
    return out


def get(store: Store, name: str) -> dict:
    with store.session() as s:
        row = s.get(OperationRow, name)
    if row is None:
        raise NotFound(f"Operation {name} not found.")
    return operation_json(row.name, row.done, row.metadata_json, row.response, row.error)


def get_row(store: Store, name: str) -> OperationRow | None:
    with store.session() as s:
        return s.get(OperationRow, name)
