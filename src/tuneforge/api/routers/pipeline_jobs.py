"""pipelineJobs: create (?pipelineJobId=), get, list, cancel."""

from __future__ import annotations

from fastapi import APIRouter, Request

from tuneforge.api.deps import authorize, json_body, split_verb
from tuneforge.control.paging import page_json
from tuneforge.control.pipeline_jobs import pipeline_job_json

router = APIRouter()
BASE = "/{version}/projects/{project}/locations/{location}/pipelineJobs"


@router.post(BASE)
async def create(request: Request, version: str, project: str, location: str, pipelineJobId: str | None = None):
    authorize(request, project)
    body = await json_body(request)
    return pipeline_job_json(request.app.state.pipeline_jobs.create(project, location, body, pipelineJobId))


@router.get(BASE)
def list_jobs(request: Request, version: str, project: str, location: str, pageSize: int | None = None,
              pageToken: str | None = None):
    authorize(request, project)
    rows, token = request.app.state.pipeline_jobs.list(project, location, pageSize, pageToken)
    return page_json("pipelineJobs", [pipeline_job_json(r) for r in rows], token)


@router.get(BASE + "/{job_id}")
def get(request: Request, version: str, project: str, location: str, job_id: str):
    authorize(request, project)
    return pipeline_job_json(request.app.state.pipeline_jobs.get(project, location, job_id))


@router.post(BASE + "/{job_and_verb}")
def verb(request: Request, version: str, project: str, location: str, job_and_verb: str):
    authorize(request, project)
    job_id, _ = split_verb(job_and_verb, "pipelineJobs")
    request.app.state.pipeline_jobs.cancel(project, location, job_id)
    return {}
