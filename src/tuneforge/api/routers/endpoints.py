"""endpoints (create, get, list, delete) and operations.get for every resource's operations."""

from __future__ import annotations

from fastapi import APIRouter, Request

from tuneforge.api.deps import authorize, json_body
from tuneforge.jobs import operations
from tuneforge.jobs.paging import page_json
from tuneforge.serve.endpoints import endpoint_json

router = APIRouter()
BASE = "/{version}/projects/{project}/locations/{location}/endpoints"


@router.post(BASE)
async def create(request: Request, version: str, project: str, location: str):
    authorize(request, project)
    return request.app.state.endpoints.create(project, location, await json_body(request), version)


@router.get(BASE)
def list_endpoints(request: Request, version: str, project: str, location: str, pageSize: int | None = None,
                   pageToken: str | None = None):
    authorize(request, project)
    rows, token = request.app.state.endpoints.list(project, location, pageSize, pageToken)
    return page_json("endpoints", [endpoint_json(r) for r in rows], token)


@router.get(BASE + "/{endpoint_id}")
def get(request: Request, version: str, project: str, location: str, endpoint_id: str):
    authorize(request, project)
    return endpoint_json(request.app.state.endpoints.get(project, location, endpoint_id))


@router.delete(BASE + "/{endpoint_id}")
def delete(request: Request, version: str, project: str, location: str, endpoint_id: str):
    authorize(request, project)
    return request.app.state.endpoints.delete(project, location, endpoint_id)


@router.get("/{version}/projects/{project}/locations/{location}/{path:path}/operations/{op_id}")
def get_operation(request: Request, version: str, project: str, location: str, path: str, op_id: str):
    authorize(request, project)
    return operations.get(request.app.state.store, f"projects/{project}/locations/{location}/{path}/operations/{op_id}")


@router.get("/{version}/projects/{project}/locations/{location}/operations/{op_id}")
def get_flat_operation(request: Request, version: str, project: str, location: str, op_id: str):
    authorize(request, project)
    return operations.get(request.app.state.store, f"projects/{project}/locations/{location}/operations/{op_id}")
