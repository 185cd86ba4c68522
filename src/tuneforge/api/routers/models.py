"""models: the registry (get, list). Every successful tuning job uploads its model here."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy import select

from tuneforge.api.deps import authorize
from tuneforge.errors import NotFound
from tuneforge.jobs.service import (
    DEFAULT_PAGE_SIZE,
    _decode_token,
    _encode_token,
    model_json,
)
from tuneforge.jobs.tables import ModelRow

router = APIRouter()
BASE = "/{version}/projects/{project}/locations/{location}/models"


@router.get(BASE)
def list_models(request: Request, version: str, project: str, location: str, filter: str | None = None,
                pageSize: int | None = None, pageToken: str | None = None):
    authorize(request, project)
    from tuneforge.jobs.service import parse_model_filter

    size = min(max(1, pageSize or DEFAULT_PAGE_SIZE), 1000)
    offset = _decode_token(pageToken)
    with request.app.state.store.session() as s:
        q = select(ModelRow).where(ModelRow.project == project, ModelRow.location == location)
        for clause in parse_model_filter(filter):
            q = clause(q)
        rows = s.scalars(q.order_by(ModelRow.create_time.desc(), ModelRow.id.desc()).offset(offset).limit(size + 1)).all()
    out: dict = {"models": [model_json(r) for r in rows[:size]]}
    if len(rows) > size:
        out["nextPageToken"] = _encode_token(offset + size)
    return out


@router.get(BASE + "/{model_id}")
def get_model(request: Request, version: str, project: str, location: str, model_id: str):
    authorize(request, project)
    model_id = model_id.split("@", 1)[0]  # models/123@1: version 1 is the only version
    with request.app.state.store.session() as s:
        row = s.get(ModelRow, model_id)
    if row is None or row.project != project or row.location != location:
        raise NotFound(f"Model projects/{project}/locations/{location}/models/{model_id} not found.")
    return model_json(row)
