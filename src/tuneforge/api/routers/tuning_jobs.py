"""tuningJobs: create, get, list, cancel; and tuneforge's extensions: preview (a create checked, not stored), the
metrics a running job streams, and its events."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from tuneforge.api.deps import authorize, tuning_jobs, unknown_verb
from tuneforge.api.errors import CREATE_ERRORS, ERRORS
from tuneforge.control.previews import preview_tuning_job
from tuneforge.control.tuning_jobs import TuningJobService
from tuneforge.wire.events import ListJobEventsResponse
from tuneforge.wire.preview import JobPreview
from tuneforge.wire.tuning import CancelResponse, JobMetrics, ListTuningJobsResponse, TuningJob

router = APIRouter(tags=["tuningJobs"], responses=ERRORS)
BASE = "/projects/{project}/locations/{location}/tuningJobs"
Service = Annotated[TuningJobService, Depends(tuning_jobs)]


@router.post(BASE, response_model=TuningJob, response_model_exclude_none=True, responses=CREATE_ERRORS)
async def create(
    request: Request, project: str, location: str, service: Service, job: Annotated[TuningJob, Body()]
) -> TuningJob:
    """Create a tuning job; the request is validated whole (datasets included) before it is stored."""
    authorize(request, project)
    return await run_in_threadpool(service.create, project, location, job)


@router.post(BASE + ":preview", response_model=JobPreview, response_model_exclude_none=True)
async def preview(
    request: Request, project: str, location: str, service: Service, job: Annotated[TuningJob, Body()]
) -> JobPreview:
    """What create would do with this body, stored nowhere: the datasets' report (every error and warning, with line
    numbers), the resolved plan, the data statistics, trained tokens and an estimated duration on this server."""
    authorize(request, project)
    return await run_in_threadpool(preview_tuning_job, service, project, location, job)


@router.get(BASE, response_model=ListTuningJobsResponse, response_model_exclude_none=True)
def list_jobs(
    request: Request,
    project: str,
    location: str,
    service: Service,
    filter: str | None = None,
    pageSize: int | None = None,
    pageToken: str | None = None,
) -> ListTuningJobsResponse:
    authorize(request, project)
    return service.list(project, location, filter=filter, page_size=pageSize, page_token=pageToken)


@router.get(BASE + "/{job_id}", response_model=TuningJob, response_model_exclude_none=True)
def get(request: Request, project: str, location: str, job_id: str, service: Service) -> TuningJob:
    authorize(request, project)
    return service.get(project, location, job_id)


@router.post(BASE + "/{job_id}:cancel", response_model=CancelResponse)
def cancel(request: Request, project: str, location: str, job_id: str, service: Service) -> CancelResponse:
    """Cancel a job: a queued one ends at once, a running one stops at its next step (FAILED_PRECONDITION if it has
    ended)."""
    authorize(request, project)
    service.cancel(project, location, job_id)
    return CancelResponse()


@router.post(BASE + "/{job_and_verb}", include_in_schema=False)
def unknown_method(request: Request, project: str, location: str, job_and_verb: str) -> None:
    authorize(request, project)
    raise unknown_verb(job_and_verb, "tuningJobs", ("cancel",))


@router.get(BASE + "/{job_id}/metrics", response_model=JobMetrics, response_model_exclude_none=True)
def metrics(
    request: Request,
    project: str,
    location: str,
    job_id: str,
    service: Service,
    sinceStep: Annotated[int, Query(ge=-1, le=2**53, description="Only steps after this one.")] = 0,
) -> JobMetrics:
    """Metrics streamed by the running job after ``sinceStep``, and its progress (for the CLI)."""
    authorize(request, project)
    return service.metrics(project, location, job_id, since_step=sinceStep)


@router.get(BASE + "/{job_id}/events", response_model=ListJobEventsResponse)
def job_events(request: Request, project: str, location: str, job_id: str, service: Service) -> ListJobEventsResponse:
    """What happened to the job, in order (a tuneforge extension)."""
    authorize(request, project)
    return service.events(project, location, job_id)
