"""pipelineJobs: create (?pipelineJobId=), get, list, cancel; and tuneforge's preview and events."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request
from starlette.concurrency import run_in_threadpool

from tuneforge.api.deps import authorize, pipeline_jobs, unknown_verb
from tuneforge.api.errors import CREATE_ERRORS, ERRORS
from tuneforge.control.pipeline_jobs import PipelineJobService
from tuneforge.control.previews import preview_pipeline_job
from tuneforge.wire.events import ListJobEventsResponse
from tuneforge.wire.pipelines import ListPipelineJobsResponse, PipelineJob
from tuneforge.wire.preview import JobPreview
from tuneforge.wire.tuning import CancelResponse

router = APIRouter(tags=["pipelineJobs"], responses=ERRORS)
BASE = "/projects/{project}/locations/{location}/pipelineJobs"
Service = Annotated[PipelineJobService, Depends(pipeline_jobs)]


@router.post(BASE, response_model=PipelineJob, response_model_exclude_none=True, responses=CREATE_ERRORS)
async def create(
    request: Request,
    project: str,
    location: str,
    service: Service,
    job: Annotated[PipelineJob, Body()],
    pipelineJobId: str | None = None,
) -> PipelineJob:
    """Create a code-model tuning or distillation job, identified by its templateUri."""
    authorize(request, project)
    return await run_in_threadpool(service.create, project, location, job, pipelineJobId)


@router.post(BASE + ":preview", response_model=JobPreview, response_model_exclude_none=True)
async def preview(
    request: Request, project: str, location: str, service: Service, job: Annotated[PipelineJob, Body()]
) -> JobPreview:
    """What create would do with this body, stored nowhere: the data's report under the pipeline's rules and, for the
    code pipelines, the tune task's plan, statistics, trained tokens and estimated duration."""
    authorize(request, project)
    return await run_in_threadpool(preview_pipeline_job, service, project, location, job)


@router.get(BASE, response_model=ListPipelineJobsResponse, response_model_exclude_none=True)
def list_jobs(
    request: Request,
    project: str,
    location: str,
    service: Service,
    filter: str | None = None,
    pageSize: int | None = None,
    pageToken: str | None = None,
) -> ListPipelineJobsResponse:
    authorize(request, project)
    return service.list(project, location, pageSize, pageToken, filter)


@router.get(BASE + "/{job_id}", response_model=PipelineJob, response_model_exclude_none=True)
def get(request: Request, project: str, location: str, job_id: str, service: Service) -> PipelineJob:
    authorize(request, project)
    return service.get(project, location, job_id)


@router.post(BASE + "/{job_id}:cancel", response_model=CancelResponse)
def cancel(request: Request, project: str, location: str, job_id: str, service: Service) -> CancelResponse:
    authorize(request, project)
    service.cancel(project, location, job_id)
    return CancelResponse()


@router.post(BASE + "/{job_and_verb}", include_in_schema=False)
def unknown_method(request: Request, project: str, location: str, job_and_verb: str) -> None:
    authorize(request, project)
    raise unknown_verb(job_and_verb, "pipelineJobs", ("cancel",))


@router.get(BASE + "/{job_id}/events", response_model=ListJobEventsResponse)
def job_events(request: Request, project: str, location: str, job_id: str, service: Service) -> ListJobEventsResponse:
    """What happened to the job, in order (a tuneforge extension)."""
    authorize(request, project)
    return service.events(project, location, job_id)
