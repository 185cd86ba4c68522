"""models: the registry (get, list). Every successful tuning job uploads its model here."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy import select

from tuneforge.api.deps import authorize
from tuneforge.jobs.db import get_scoped
from tuneforge.jobs.paging import page, page_json
from tuneforge.jobs.service import MODEL_FILTERS, filter_conditions, model_json
from tuneforge.jobs.tables import ModelRow
from tuneforge.serve.endpoints import deployments_of

router = APIRouter()
BASE = "/{version}/projects/{project}/locations/{location}/models"


@router.get(BASE)
def list_models(request: Request, version: str, project: str, location: str, filter: str | None = None,
                pageSize: int | None = None, pageToken: str | None = None):
    authorize(request, project)
    q = select(ModelRow).where(ModelRow.project == project, ModelRow.location == location,
                               *filter_conditions(filter, MODEL_FILTERS, ModelRow.labels))
    with request.app.state.store.session() as s:
        rows, token = page(s, q.order_by(ModelRow.create_time.desc(), ModelRow.id.desc()), pageSize, pageToken)
        deployed = deployments_of(s, [r.id for r in rows])
    return page_json("models", [model_json(r, deployed[r.id]) for r in rows], token)


@router.get(BASE + "/{model_id}")
def get_model(request: Request, version: str, project: str, location: str, model_id: str):
    authorize(request, project)
    model_id = model_id.split("@", 1)[0]  # models/123@1: version 1 is the only version
    row = get_scoped(request.app.state.store, ModelRow, model_id, project, location, "Model", "models")
    with request.app.state.store.session() as s:
        return model_json(row, deployments_of(s, [row.id])[row.id])
