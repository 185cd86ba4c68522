"""Dataset files in the bucket root (a tuneforge extension, the console's Datasets view and upload): list, upload,
inspect."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request
from starlette.concurrency import run_in_threadpool

from tuneforge.api.deps import authorize, datasets
from tuneforge.api.errors import CREATE_ERRORS, ERRORS
from tuneforge.control.datasets import DatasetService, too_large
from tuneforge.wire.datasets import DatasetFile, DatasetReport, InspectDatasetRequest, ListDatasetFilesResponse

router = APIRouter(tags=["datasets (tuneforge)"], responses=ERRORS)
BASE = "/projects/{project}/locations/{location}/tuneforge/datasets"
Service = Annotated[DatasetService, Depends(datasets)]
RAW_BODY = {"requestBody": {"required": True, "content": {"application/octet-stream": {"schema": {"type": "string"}}}}}


@router.get(BASE, response_model=ListDatasetFilesResponse, response_model_exclude_none=True)
async def list_datasets(request: Request, project: str, location: str, service: Service) -> ListDatasetFilesResponse:
    """Files uploaded here and files the project's jobs name: format, counts, problems of a structure check."""
    authorize(request, project)
    return await run_in_threadpool(service.list, project, location)


@router.post(
    BASE + ":upload",
    response_model=DatasetFile,
    response_model_exclude_none=True,
    responses=CREATE_ERRORS,
    openapi_extra=RAW_BODY,
)
async def upload(
    request: Request, project: str, location: str, service: Service, uri: str, purpose: str = "supervised"
) -> DatasetFile:
    """Write the request body as a new file at ``uri`` (gs://BUCKET/path.jsonl under the bucket root); an existing
    file is never replaced (409)."""
    authorize(request, project)
    data = await _body(request, service.settings.max_upload_bytes)
    return await run_in_threadpool(service.upload, project, location, uri, purpose, data)


async def _body(request: Request, limit: int) -> bytes:
    """The request body, read until it passes ``limit`` (then refused: a huge upload never fills the memory)."""
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise too_large(limit)
    return bytes(data)


@router.post(BASE + ":inspect", response_model=DatasetReport, response_model_exclude_none=True)
async def inspect(
    request: Request, project: str, location: str, service: Service, body: Annotated[InspectDatasetRequest, Body()]
) -> DatasetReport:
    """One file's whole report for what it is for (supervised, preference, distillation, code-generation,
    code-chat), against a model's token limits when ``baseModel`` is given."""
    authorize(request, project)
    return await run_in_threadpool(service.inspect, project, location, body)
