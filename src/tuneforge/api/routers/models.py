"""models: the registry (get, list, export). Every successful tuning job uploads its model here."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request
from starlette.concurrency import run_in_threadpool

from tuneforge.api.deps import authorize, exports, models
from tuneforge.api.errors import ERRORS
from tuneforge.control.exports import ExportService
from tuneforge.control.models import ModelService
from tuneforge.wire.models import ExportModelRequest, ListModelsResponse, Model
from tuneforge.wire.operations import Operation

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


@router.post(BASE + "/{model_id}:export", response_model=Operation, response_model_exclude_none=True)
async def export_model(
    request: Request,
    project: str,
    location: str,
    model_id: str,
    service: Annotated[ExportService, Depends(exports)],
    body: Annotated[ExportModelRequest, Body()],
) -> Operation:
    """Write the model as GGUF (exportFormatId gguf-f16 or gguf-q8_0) with an Ollama Modelfile under
    outputConfig.artifactDestination.outputUriPrefix; the operation's metadata says where (outputInfo)."""
    authorize(request, project)
    return await run_in_threadpool(service.export, project, location, model_id, body)
