"""endpoints (create, get, list, delete, deployModel, undeployModel), serving (predict, generateContent,
streamGenerateContent, OpenAI chat completions and models), Model Garden ``:deploy``, and operations.get."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from tuneforge.api.deps import authorize, json_body, split_verb
from tuneforge.errors import InvalidArgument
from tuneforge.control import operations
from tuneforge.control.paging import page_json
from tuneforge.serve import apis

router = APIRouter()
LOCATION = "/{version}/projects/{project}/locations/{location}"
BASE = LOCATION + "/endpoints"
VERBS = ("deployModel", "undeployModel", "predict", "generateContent", "streamGenerateContent")


def _svc(request: Request):
    return request.app.state.endpoints


@router.post(BASE)
async def create(request: Request, version: str, project: str, location: str):
    authorize(request, project)
    return _svc(request).create(project, location, await json_body(request), version)


@router.get(BASE)
def list_endpoints(request: Request, version: str, project: str, location: str, pageSize: int | None = None,
                   pageToken: str | None = None):
    authorize(request, project)
    items, token = _svc(request).list(project, location, pageSize, pageToken)
    return page_json("endpoints", items, token)


@router.get(BASE + "/{endpoint_id}")
def get(request: Request, version: str, project: str, location: str, endpoint_id: str):
    authorize(request, project)
    return _svc(request).resource(project, location, endpoint_id)


@router.delete(BASE + "/{endpoint_id}")
def delete(request: Request, version: str, project: str, location: str, endpoint_id: str):
    authorize(request, project)
    return _svc(request).delete(project, location, endpoint_id)


async def _target(request: Request, project: str, location: str, endpoint_id: str, choose: str | None = None):
    """The deployed model that answers, loaded (the first request after a restart loads it)."""
    svc = _svc(request)
    row = await run_in_threadpool(svc.target, project, location, endpoint_id, choose)
    return row, await run_in_threadpool(svc.load, row)


def _model_fields(row) -> dict:
    return {"deployedModelId": row.id, "model": f"projects/{row.project}/locations/{row.location}/models/{row.model_id}",
            "modelDisplayName": row.display_name, "modelVersionId": "1"}


@router.post(BASE + "/{endpoint_and_verb}")
async def verb(request: Request, version: str, project: str, location: str, endpoint_and_verb: str):
    authorize(request, project)
    endpoint_id, name = split_verb(endpoint_and_verb, "endpoints", VERBS)
    body = await json_body(request)
    svc = _svc(request)
    if name == "deployModel":
        return await run_in_threadpool(svc.deploy_model, project, location, endpoint_id, body)
    if name == "undeployModel":
        return await run_in_threadpool(svc.undeploy_model, project, location, endpoint_id, body)
    row, dep = await _target(request, project, location, endpoint_id)
    model_version = f"projects/{row.project}/locations/{row.location}/models/{row.model_id}@1"
    if name == "predict":
        prompts, kinds = await run_in_threadpool(apis.predict_prompts, dep, body)
        results = await apis.Run(dep, prompts).results(request.is_disconnected)
        answers, cursor = [], 0
        for prompt, kind in zip(prompts, kinds):
            answers.append(apis.predict_answer(kind, prompt, results[cursor : cursor + prompt.params.n]))
            cursor += prompt.params.n
        return {"predictions": answers, **_model_fields(row)}
    prompt = await run_in_threadpool(apis.generate_content_prompt, dep, body)
    run = apis.Run(dep, [prompt])
    if name == "generateContent":
        return apis.gemini_response(await run.results(request.is_disconnected), model_version, uuid.uuid4().hex)
    sse = request.query_params.get("alt") == "sse"
    return StreamingResponse(apis.gemini_stream(run, model_version, sse),
                             media_type="text/event-stream" if sse else "application/json")


@router.get(BASE + "/{endpoint_id}/models")
def openai_models(request: Request, version: str, project: str, location: str, endpoint_id: str):
    authorize(request, project)
    resource = _svc(request).resource(project, location, endpoint_id)
    return {"object": "list", "data": [
        {"id": d["displayName"] or d["id"], "object": "model", "owned_by": "tuneforge", "root": d["model"],
         "deployed_model_id": d["id"]} for d in resource["deployedModels"]]}


@router.post(BASE + "/{endpoint_id}/chat/completions")
async def chat_completions(request: Request, version: str, project: str, location: str, endpoint_id: str):
    """OpenAI-compatible chat. On ``endpoints/openapi`` the body's ``model`` names the endpoint (Vertex's managed
    form); elsewhere ``model`` may pick a deployed model by id or display name, and is informational otherwise."""
    authorize(request, project)
    body = await json_body(request)
    choose = body.get("model") if isinstance(body.get("model"), str) else None
    if endpoint_id == "openapi":
        if not choose:
            raise InvalidArgument("model must name the endpoint (projects/P/locations/L/endpoints/E) on endpoints/openapi")
        endpoint_id, choose = choose.rstrip("/").split("/")[-1], None
    row, dep = await _target(request, project, location, endpoint_id, choose)
    prompt = await run_in_threadpool(apis.openai_prompt, dep, body)
    run = apis.Run(dep, [prompt])
    model = body.get("model") if isinstance(body.get("model"), str) else row.display_name
    completion_id = "chatcmpl-" + uuid.uuid4().hex
    if body.get("stream"):
        options = body.get("stream_options") if isinstance(body.get("stream_options"), dict) else {}
        return StreamingResponse(apis.openai_stream(run, model, completion_id, bool(options.get("include_usage"))),
                                 media_type="text/event-stream")
    return apis.openai_response(await run.results(request.is_disconnected), model, completion_id)


@router.post("/{version}/projects/{project}/locations/{location_and_verb}")
async def model_garden_deploy(request: Request, version: str, project: str, location_and_verb: str):
    """Model Garden ``CustomModel(gcs_uri).deploy(...)``: register the weights, create an endpoint, deploy."""
    location, _ = split_verb(location_and_verb, "locations", ("deploy",))
    authorize(request, project)
    return await run_in_threadpool(_svc(request).garden_deploy, project, location, await json_body(request))


@router.get("/tuneforge/serving")
def serving_stats(request: Request):
    """What the serving engine holds: loaded weights, adapters, bytes (tuneforge extension, for operators)."""
    authorize(request, None)
    return request.app.state.engine.stats()


@router.get(LOCATION + "/{path:path}/operations/{op_id}")
def get_operation(request: Request, version: str, project: str, location: str, path: str, op_id: str):
    authorize(request, project)
    return operations.get(request.app.state.store, f"projects/{project}/locations/{location}/{path}/operations/{op_id}")


@router.get(LOCATION + "/operations/{op_id}")
def get_flat_operation(request: Request, version: str, project: str, location: str, op_id: str):
    authorize(request, project)
    return operations.get(request.app.state.store, f"projects/{project}/locations/{location}/operations/{op_id}")
