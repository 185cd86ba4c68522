"""tuningJobs: create, get, list, cancel (v1, v1beta1 and ui prefixes)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from tuneforge.api.deps import authorize, json_body, split_verb
from tuneforge.control.paging import page_json
from tuneforge.control.tuning_jobs import tuning_job_json

router = APIRouter()
BASE = "/{version}/projects/{project}/locations/{location}/tuningJobs"


def _service(request: Request):
    return request.app.state.tuning_jobs


@router.post(BASE)
async def create(request: Request, version: str, project: str, location: str):
    authorize(request, project)
    body = await json_body(request)
    from starlette.concurrency import run_in_threadpool

    row = await run_in_threadpool(_service(request).create, project, location, body)
    return tuning_job_json(row)


@router.get(BASE)
def list_jobs(request: Request, version: str, project: str, location: str, filter: str | None = None,
              pageSize: int | None = None, pageToken: str | None = None):
    authorize(request, project)
    rows, token = _service(request).list(project, location, filter=filter, page_size=pageSize, page_token=pageToken)
    return page_json("tuningJobs", [tuning_job_json(r) for r in rows], token)


@router.get(BASE + "/{job_id}")
def get(request: Request, version: str, project: str, location: str, job_id: str):
    authorize(request, project)
    return tuning_job_json(_service(request).get(project, location, job_id))


@router.post(BASE + "/{job_and_verb}")
def verb(request: Request, version: str, project: str, location: str, job_and_verb: str):
    authorize(request, project)
    job_id, _ = split_verb(job_and_verb, "tuningJobs")
    _service(request).cancel(project, location, job_id)
    return {}


@router.get(BASE + "/{job_id}/metrics")
def metrics(request: Request, version: str, project: str, location: str, job_id: str, sinceStep: int = 0):
    """Metrics streamed by the running job, and its progress (tuneforge extension, for the CLI and console)."""
    authorize(request, project)
    row = _service(request).get(project, location, job_id)
    rows = _service(request).metrics(job_id, since_step=sinceStep)
    progress = row.progress or {}
    return {
        "metrics": [{"step": r.step, "name": r.name, "value": r.value} for r in rows],
        "progress": {"step": progress.get("step", 0), "totalSteps": progress.get("totalSteps")},
    }
