"""models: the registry (get, list). Every successful tuning job uploads its model here."""

from __future__ import annotations

from fastapi import APIRouter, Request

from tuneforge.api.deps import authorize
from tuneforge.control.paging import page_json

router = APIRouter()
BASE = "/{version}/projects/{project}/locations/{location}/models"


@router.get(BASE)
def list_models(request: Request, version: str, project: str, location: str, filter: str | None = None,
                pageSize: int | None = None, pageToken: str | None = None):
    authorize(request, project)
    items, token = request.app.state.models.list(project, location, filter=filter, page_size=pageSize,
                                                 page_token=pageToken)
    return page_json("models", items, token)


@router.get(BASE + "/{model_id}")
def get_model(request: Request, version: str, project: str, location: str, model_id: str):
    authorize(request, project)
    return request.app.state.models.get(project, location, model_id)
