"""OpenAI's fine-tuning jobs (``/v1/fine_tuning/jobs``), as the ``openai`` client calls them: ``create``,
``retrieve``, ``list`` (``after``, ``limit``, ``metadata[k]=v``), ``cancel``, ``pause``, ``resume``, ``list_events``,
``checkpoints.list``. Each is a tuning job
of the same engine (control/fine_tuning.py); the project comes from the API key, errors are OpenAI's shape."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from tuneforge.api.deps import fine_tuning, openai_project
from tuneforge.api.errors import OPENAI_ERRORS
from tuneforge.control.fine_tuning import FineTuningService
from tuneforge.wire.openai_ft import (
    CheckpointList,
    CreateFineTuningJob,
    FineTuningJob,
    FineTuningJobEventList,
    FineTuningJobList,
)

router = APIRouter(tags=["fine-tuning jobs (OpenAI)"], responses=OPENAI_ERRORS)
BASE = "/v1/fine_tuning/jobs"
Service = Annotated[FineTuningService, Depends(fine_tuning)]
Limit = Annotated[int, Query(ge=1, le=1000)]


@router.post(BASE, response_model=FineTuningJob, response_model_exclude_none=True)
async def create_job(request: Request, service: Service, body: Annotated[CreateFineTuningJob, Body()]) -> FineTuningJob:
    """Validate the files (the line-numbered report) and start the job: the same run as a tuningJob."""
    project = openai_project(request)
    return await run_in_threadpool(service.create, project, body)


@router.get(BASE, response_model=FineTuningJobList, response_model_exclude_none=True)
async def list_jobs(
    request: Request, service: Service, after: str | None = None, limit: Limit = 20
) -> FineTuningJobList:
    """The project's jobs, newest first; ``metadata[key]=value`` query parameters filter by metadata."""
    project = openai_project(request)
    metadata = {
        k[len("metadata[") : -1]: v
        for k, v in request.query_params.items()
        if k.startswith("metadata[") and k[-1] == "]"
    }
    return await run_in_threadpool(service.listed, project, after, limit, metadata)


@router.get(BASE + "/{job_id}", response_model=FineTuningJob, response_model_exclude_none=True)
async def retrieve_job(request: Request, job_id: str, service: Service) -> FineTuningJob:
    return await run_in_threadpool(service.retrieve, openai_project(request), job_id)


@router.post(BASE + "/{job_id}/cancel", response_model=FineTuningJob, response_model_exclude_none=True)
async def cancel_job(request: Request, job_id: str, service: Service) -> FineTuningJob:
    """Stop the job (a running one stops at its next step and keeps its checkpoints)."""
    return await run_in_threadpool(service.cancel, openai_project(request), job_id)


@router.post(BASE + "/{job_id}/pause", response_model=FineTuningJob, response_model_exclude_none=True)
async def pause_job(request: Request, job_id: str, service: Service) -> FineTuningJob:
    """Pause: a running job saves a checkpoint at its next step and stops ("pausing", then "paused")."""
    return await run_in_threadpool(service.pause, openai_project(request), job_id)


@router.post(BASE + "/{job_id}/resume", response_model=FineTuningJob, response_model_exclude_none=True)
async def resume_job(request: Request, job_id: str, service: Service) -> FineTuningJob:
    """Resume a paused job: back in the queue, it continues from the checkpoint it paused at."""
    return await run_in_threadpool(service.resume, openai_project(request), job_id)


@router.get(BASE + "/{job_id}/events", response_model=FineTuningJobEventList, response_model_exclude_none=True)
async def list_events(
    request: Request, job_id: str, service: Service, after: str | None = None, limit: Limit = 20
) -> FineTuningJobEventList:
    """What happened, newest first: created, started, the run's messages, each step's metrics, the end."""
    return await run_in_threadpool(service.events, openai_project(request), job_id, after, limit)


@router.get(BASE + "/{job_id}/checkpoints", response_model=CheckpointList, response_model_exclude_none=True)
async def list_checkpoints(
    request: Request, job_id: str, service: Service, after: str | None = None, limit: Limit = 10
) -> CheckpointList:
    """The job's exported checkpoints, with their step's metrics and a model id chat takes."""
    return await run_in_threadpool(service.checkpoints, openai_project(request), job_id, after, limit)
