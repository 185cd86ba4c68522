"""Long-running operations, stored so polling survives restarts. ``response``/``metadata`` carry ``@type``."""

from __future__ import annotations

from typing import Any

from tuneforge.control.db import Store
from tuneforge.control.tables import OperationRow, new_id, utcnow
from tuneforge.errors import NotFound
from tuneforge.wire.base import timestamp
from tuneforge.wire.operations import Operation
from tuneforge.wire.status import Status


def record_done(store: Store, parent: str, response: dict[str, Any], metadata_type: str | None = None) -> Operation:
    """An operation that finished synchronously (the common case for resource bookkeeping)."""
    name, metadata = _record(store, parent, metadata_type, response)
    return operation_json(name, True, metadata, response, None)


def record_pending(store: Store, parent: str, metadata_type: str, extra: dict[str, Any] | None = None) -> str:
    """An operation that a background task finishes later with ``finish``; returns its name. ``extra``: more
    metadata fields (an export's ``outputInfo``)."""
    return _record(store, parent, metadata_type, None, extra)[0]


def _record(
    store: Store,
    parent: str,
    metadata_type: str | None,
    response: dict[str, Any] | None,
    extra: dict[str, Any] | None = None,
) -> tuple[str, dict[str, Any] | None]:
    """A new operation under ``parent``, done when it has its ``response``: (its name, its metadata)."""
    now = utcnow()
    name = f"{parent}/operations/{new_id()}"
    stamps = {"createTime": timestamp(now), "updateTime": timestamp(now)}
    metadata = {"@type": metadata_type, "genericMetadata": stamps, **(extra or {})} if metadata_type else None
    with store.session() as s:
        s.add(
            OperationRow(
                name=name,
                done=response is not None,
                metadata_json=metadata,
                response=response,
                create_time=now,
                update_time=now,
            )
        )
    return name, metadata


def finish(
    store: Store, name: str | None, response: dict[str, Any] | None = None, error: dict[str, Any] | None = None
) -> None:
    if name is None:
        return
    now = utcnow()
    with store.session() as s:
        row = s.get(OperationRow, name)
        if row is None or row.done:
            return
        row.done, row.response, row.error, row.update_time = True, response, error, now
        if row.metadata_json:
            generic = {**row.metadata_json.get("genericMetadata", {}), "updateTime": timestamp(now)}
            row.metadata_json = {**row.metadata_json, "genericMetadata": generic}


def operation_json(
    name: str,
    done: bool,
    metadata: dict[str, Any] | None,
    response: dict[str, Any] | None,
    error: dict[str, Any] | None,
) -> Operation:
    op = Operation(name=name, done=done, metadata=metadata or None)
    if done and error:
        op.error = Status.model_validate(error)
    elif done:
        op.response = response if response is not None else {"@type": "type.googleapis.com/google.protobuf.Empty"}
    return op


def get(store: Store, name: str) -> Operation:
    with store.session() as s:
        row = s.get(OperationRow, name)
    if row is None:
        raise NotFound(f"Operation {name} not found.")
    return operation_json(row.name, row.done, row.metadata_json, row.response, row.error)


def get_row(store: Store, name: str | None) -> OperationRow | None:
    if name is None:
        return None
    with store.session() as s:
        row: OperationRow | None = s.get(OperationRow, name)
        return row
