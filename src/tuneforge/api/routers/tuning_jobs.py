"""tuningJobs: create, get, list, cancel; and the metrics a running job streams (a tuneforge extension)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request
from starlette.concurrency import run_in_threadpool

from tuneforge.api.deps import authorize, tuning_jobs, unknown_verb
from tuneforge.api.errors import CREATE_ERRORS, ERRORS
from tuneforge.control.tuning_jobs import TuningJobService
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
    request: Request, project: str, location: str, job_id: str, service: Service, sinceStep: int = 0
) -> JobMetrics:
    """Metrics streamed by the running job after ``sinceStep``, and its progress (for the CLI)."""
    authorize(request, project)
    return service.metrics(project, location, job_id, since_step=sinceStep)
