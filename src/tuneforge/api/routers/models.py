"""models: the registry (get, list). Every successful tuning job uploads its model here."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from tuneforge.api.deps import authorize, models
from tuneforge.api.errors import ERRORS
from tuneforge.control.models import ModelService
from tuneforge.wire.models import ListModelsResponse, Model

router = APIRouter(tags=["models"], responses=ERRORS)
BASE = "/projects/{project}/locations/{location}/models"
Service = Annotated[ModelService, Depends(models)]


@router.get(BASE, response_model=ListModelsResponse, response_model_exclude_none=True)
def list_models(
    request: Request,
    project: str,
    location: str,
    service: Service,
    filter: str | None = None,
    pageSize: int | None = None,
    pageToken: str | None = None,
) -> ListModelsResponse:
    authorize(request, project)
    return service.list(project, location, filter=filter, page_size=pageSize, page_token=pageToken)


@router.get(BASE + "/{model_id}", response_model=Model, response_model_exclude_none=True)
def get_model(request: Request, project: str, location: str, model_id: str, service: Service) -> Model:
    authorize(request, project)
    return service.get(project, location, model_id)
