"""endpoints (create, get, list, delete, deployModel, undeployModel), serving (predict, generateContent,
streamGenerateContent, OpenAI chat completions and models), publisher models' generateContent (a base model without
an endpoint), Model Garden ``:deploy``, and operations.get."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from tuneforge.api.deps import api_version, authorize, bucket_access, endpoints, unknown_verb
from tuneforge.api.errors import ERRORS
from tuneforge.control import operations
from tuneforge.control.endpoints import EndpointService
from tuneforge.control.tables import DeployedModelRow
from tuneforge.errors import InvalidArgument
from tuneforge.infer.engine import Deployment
from tuneforge.serve import apis
from tuneforge.wire import names
from tuneforge.wire.endpoints import (
    DeployModelRequest,
    DeployRequest,
    Endpoint,
    ListEndpointsResponse,
    UndeployModelRequest,
)
from tuneforge.wire.openai import ChatCompletion, ChatCompletionRequest, ModelList, OpenAIModel
from tuneforge.wire.operations import Operation
from tuneforge.wire.serving import GenerateContentRequest, GenerateContentResponse, PredictRequest, PredictResponse

router = APIRouter(tags=["endpoints"], responses=ERRORS)
LOCATION = "/projects/{project}/locations/{location}"
BASE = LOCATION + "/endpoints"
VERBS = ("deployModel", "undeployModel", "predict", "generateContent", "streamGenerateContent")
Service = Annotated[EndpointService, Depends(endpoints)]
STREAM: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Server-sent events (alt=sse) or a JSON array streamed element by element",
        "content": {"text/event-stream": {}, "application/json": {}},
    }
}


@router.post(BASE, response_model=Operation, response_model_exclude_none=True)
def create(
    request: Request, project: str, location: str, service: Service, endpoint: Annotated[Endpoint, Body()]
) -> Operation:
    authorize(request, project)
    return service.create(project, location, endpoint, api_version(request))


@router.get(BASE, response_model=ListEndpointsResponse, response_model_exclude_none=True)
def list_endpoints(
    request: Request,
    project: str,
    location: str,
    service: Service,
    pageSize: int | None = None,
    pageToken: str | None = None,
) -> ListEndpointsResponse:
    authorize(request, project)
    return service.list(project, location, pageSize, pageToken)


@router.get(BASE + "/{endpoint_id}", response_model=Endpoint, response_model_exclude_none=True)
def get(request: Request, project: str, location: str, endpoint_id: str, service: Service) -> Endpoint:
    authorize(request, project)
    return service.get(project, location, endpoint_id)


@router.delete(BASE + "/{endpoint_id}", response_model=Operation, response_model_exclude_none=True)
def delete(request: Request, project: str, location: str, endpoint_id: str, service: Service) -> Operation:
    authorize(request, project)
    return service.delete(project, location, endpoint_id)


@router.post(BASE + "/{endpoint_id}:deployModel", response_model=Operation, response_model_exclude_none=True)
async def deploy_model(
    request: Request,
    project: str,
    location: str,
    endpoint_id: str,
    service: Service,
    body: Annotated[DeployModelRequest, Body()],
) -> Operation:
    """Deploy a registry model; the operation finishes when the model is loaded."""
    authorize(request, project)
    return await run_in_threadpool(service.deploy_model, project, location, endpoint_id, body)


@router.post(BASE + "/{endpoint_id}:undeployModel", response_model=Operation, response_model_exclude_none=True)
async def undeploy_model(
    request: Request,
    project: str,
    location: str,
    endpoint_id: str,
    service: Service,
    body: Annotated[UndeployModelRequest, Body()],
) -> Operation:
    authorize(request, project)
    return await run_in_threadpool(service.undeploy_model, project, location, endpoint_id, body)


def _model_fields(row: DeployedModelRow) -> dict[str, str]:
    return {
        "deployed_model_id": row.id,
        "model": names.name("models", row.project, row.location, row.model_id),
        "model_display_name": row.display_name,
        "model_version_id": "1",
    }


@router.post(BASE + "/{endpoint_id}:predict", response_model=PredictResponse, response_model_exclude_none=True)
async def predict(
    request: Request,
    project: str,
    location: str,
    endpoint_id: str,
    service: Service,
    body: Annotated[PredictRequest, Body()],
) -> PredictResponse:
    """Vertex predict: open-model prompts, or the text, code and chat models' instances."""
    authorize(request, project)
    row, dep = await run_in_threadpool(service.serving, project, location, endpoint_id)
    prompts, kinds = await run_in_threadpool(apis.predict_prompts, dep, body, bucket_access(request, project))
    results = await apis.Run(dep, prompts).results(request.is_disconnected)
    answers, cursor = [], 0
    for prompt, kind in zip(prompts, kinds):
        answers.append(apis.predict_answer(kind, prompt, results[cursor : cursor + prompt.params.n]))
        cursor += prompt.params.n
    return PredictResponse(predictions=answers, **_model_fields(row))


@router.post(
    BASE + "/{endpoint_id}:generateContent", response_model=GenerateContentResponse, response_model_exclude_none=True
)
async def generate_content(
    request: Request,
    project: str,
    location: str,
    endpoint_id: str,
    service: Service,
    body: Annotated[GenerateContentRequest, Body()],
) -> GenerateContentResponse:
    authorize(request, project)
    row, dep = await run_in_threadpool(service.serving, project, location, endpoint_id)
    model_version = names.name("models", row.project, row.location, row.model_id) + "@1"
    return await _generate(request, project, dep, body, model_version)


@router.post(BASE + "/{endpoint_id}:streamGenerateContent", response_class=StreamingResponse, responses=STREAM)
async def stream_generate_content(
    request: Request,
    project: str,
    location: str,
    endpoint_id: str,
    service: Service,
    body: Annotated[GenerateContentRequest, Body()],
    alt: str | None = None,
) -> StreamingResponse:
    """generateContent, streamed: GenerateContentResponse chunks with the new text."""
    authorize(request, project)
    row, dep = await run_in_threadpool(service.serving, project, location, endpoint_id)
    model_version = names.name("models", row.project, row.location, row.model_id) + "@1"
    return await _stream(request, project, dep, body, model_version, alt)


PUBLISHER = LOCATION + "/publishers/{publisher}/models/{model}"


@router.post(PUBLISHER + ":generateContent", response_model=GenerateContentResponse, response_model_exclude_none=True)
async def publisher_generate_content(
    request: Request,
    project: str,
    location: str,
    publisher: str,
    model: str,
    service: Service,
    body: Annotated[GenerateContentRequest, Body()],
) -> GenerateContentResponse:
    """generateContent on a catalog model's own weights (publishers/google/models/gemini-2.5-flash in dev mode,
    publishers/meta/models/llama3_1@llama-3.1-8b, publishers/tuneforge/models/tiny-llama): the base model, for
    comparing a tuned model with where it started."""
    authorize(request, project)
    dep = await run_in_threadpool(service.base_serving, publisher, model)
    return await _generate(request, project, dep, body, f"publishers/{publisher}/models/{model}")


@router.post(PUBLISHER + ":streamGenerateContent", response_class=StreamingResponse, responses=STREAM)
async def publisher_stream_generate_content(
    request: Request,
    project: str,
    location: str,
    publisher: str,
    model: str,
    service: Service,
    body: Annotated[GenerateContentRequest, Body()],
    alt: str | None = None,
) -> StreamingResponse:
    """streamGenerateContent on a catalog model's own weights."""
    authorize(request, project)
    dep = await run_in_threadpool(service.base_serving, publisher, model)
    return await _stream(request, project, dep, body, f"publishers/{publisher}/models/{model}", alt)


async def _generate(
    request: Request, project: str, dep: Deployment, body: GenerateContentRequest, model_version: str
) -> GenerateContentResponse:
    prompt = await run_in_threadpool(apis.generate_content_prompt, dep, body, bucket_access(request, project))
    results = await apis.Run(dep, [prompt]).results(request.is_disconnected)
    return apis.gemini_response(results, model_version, uuid.uuid4().hex)


async def _stream(
    request: Request, project: str, dep: Deployment, body: GenerateContentRequest, model_version: str, alt: str | None
) -> StreamingResponse:
    prompt = await run_in_threadpool(apis.generate_content_prompt, dep, body, bucket_access(request, project))
    sse = alt == "sse"
    return StreamingResponse(
        apis.gemini_stream(apis.Run(dep, [prompt]), model_version, sse),
        media_type="text/event-stream" if sse else "application/json",
    )


@router.post(BASE + "/{endpoint_and_verb}", include_in_schema=False)
def unknown_method(request: Request, project: str, location: str, endpoint_and_verb: str) -> None:
    authorize(request, project)
    raise unknown_verb(endpoint_and_verb, "endpoints", VERBS)


@router.get(BASE + "/{endpoint_id}/models", response_model=ModelList)
def openai_models(request: Request, project: str, location: str, endpoint_id: str, service: Service) -> ModelList:
    """The endpoint's deployed models, as OpenAI's models list."""
    authorize(request, project)
    resource = service.get(project, location, endpoint_id)
    return ModelList(
        data=[
            OpenAIModel(id=d.display_name or d.id or "", root=d.model, deployed_model_id=d.id)
            for d in resource.deployed_models
        ]
    )


@router.post(BASE + "/{endpoint_id}/chat/completions", response_model=ChatCompletion, responses=STREAM)
async def chat_completions(
    request: Request,
    project: str,
    location: str,
    endpoint_id: str,
    service: Service,
    body: Annotated[ChatCompletionRequest, Body()],
) -> ChatCompletion | StreamingResponse:
    """OpenAI-compatible chat. On ``endpoints/openapi`` the body's ``model`` names the endpoint (Vertex's managed
    form); elsewhere ``model`` may pick a deployed model by id or display name, and is informational otherwise."""
    authorize(request, project)
    choose = body.model
    if endpoint_id == "openapi":
        if not choose:
            raise InvalidArgument(
                "model must name the endpoint (projects/P/locations/L/endpoints/E) on endpoints/openapi"
            )
        endpoint_id, choose = choose.rstrip("/").split("/")[-1], None
    row, dep = await run_in_threadpool(service.serving, project, location, endpoint_id, choose)
    return await chat_reply(request, project, dep, body, body.model or row.display_name)


async def chat_reply(
    request: Request, project: str, dep: Deployment, body: ChatCompletionRequest, model: str
) -> ChatCompletion | StreamingResponse:
    """One OpenAI chat completion from ``dep`` for ``project`` (its images read from its own buckets), streamed as
    server-sent events when the body asks."""
    offered = apis.offered_tools(body.tools, body.tool_choice)  # the functions whose calls are read back from the reply
    prompt = await run_in_threadpool(apis.openai_prompt, dep, body, bucket_access(request, project))
    run = apis.Run(dep, [prompt])
    completion_id = "chatcmpl-" + uuid.uuid4().hex
    if body.stream:
        usage = bool(body.stream_options and body.stream_options.include_usage)
        stream = apis.openai_stream(run, model, completion_id, usage, offered)
        return StreamingResponse(stream, media_type="text/event-stream")
    return apis.openai_response(await run.results(request.is_disconnected), model, completion_id, offered)


@router.post(
    "/projects/{project}/locations/{location}:deploy", response_model=Operation, response_model_exclude_none=True
)
async def model_garden_deploy(
    request: Request, project: str, location: str, service: Service, body: Annotated[DeployRequest, Body()]
) -> Operation:
    """Model Garden ``CustomModel(gcs_uri).deploy(...)``: register the weights, create an endpoint, deploy."""
    authorize(request, project)
    return await run_in_threadpool(service.garden_deploy, project, location, body)


@router.post("/projects/{project}/locations/{location_and_verb}", include_in_schema=False)
def unknown_location_method(request: Request, project: str, location_and_verb: str) -> None:
    authorize(request, project)
    raise unknown_verb(location_and_verb, "locations", ("deploy",))


@router.get(LOCATION + "/{path:path}/operations/{op_id}", response_model=Operation, response_model_exclude_none=True)
def get_operation(request: Request, project: str, location: str, path: str, op_id: str) -> Operation:
    authorize(request, project)
    return operations.get(request.app.state.store, f"{names.parent(project, location)}/{path}/operations/{op_id}")


@router.get(LOCATION + "/operations/{op_id}", response_model=Operation, response_model_exclude_none=True)
def get_flat_operation(request: Request, project: str, location: str, op_id: str) -> Operation:
    authorize(request, project)
    return operations.get(request.app.state.store, f"{names.parent(project, location)}/operations/{op_id}")
