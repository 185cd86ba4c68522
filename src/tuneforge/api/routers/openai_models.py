"""OpenAI's models and chat (``/v1/models``, ``/v1/chat/completions``): a fine-tuned model (``ft:…``, from a job
that succeeded) or a base model id answers ``client.chat.completions.create`` (plain and streamed), loaded on first
use on the serving engine, where fine-tunes of one base share it. The project comes from the API key."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from tuneforge.api.deps import fine_tuning, openai_project
from tuneforge.api.errors import OPENAI_ERRORS
from tuneforge.api.routers.endpoints import STREAM, chat_reply
from tuneforge.control.fine_tuning import FineTuningService
from tuneforge.errors import InvalidArgument
from tuneforge.wire.openai import ChatCompletion, ChatCompletionRequest, ModelList, OpenAIModel
from tuneforge.wire.openai_ft import ModelDeleted

router = APIRouter(tags=["models and chat (OpenAI)"], responses=OPENAI_ERRORS)
Service = Annotated[FineTuningService, Depends(fine_tuning)]


@router.get("/v1/models", response_model=ModelList, response_model_exclude_none=True)
async def list_models(request: Request, service: Service) -> ModelList:
    """The project's fine-tuned models, newest first."""
    return await run_in_threadpool(service.models, openai_project(request))


@router.get("/v1/models/{model:path}", response_model=OpenAIModel, response_model_exclude_none=True)
async def retrieve_model(request: Request, model: str, service: Service) -> OpenAIModel:
    return await run_in_threadpool(service.model, openai_project(request), model)


@router.delete("/v1/models/{model:path}", response_model=ModelDeleted)
async def delete_model(request: Request, model: str, service: Service) -> ModelDeleted:
    """Take a fine-tuned model out of models.list and chat (its job and files stay)."""
    return await run_in_threadpool(service.delete_model, openai_project(request), model)


@router.post("/v1/chat/completions", response_model=ChatCompletion, responses=STREAM)
async def chat(
    request: Request, service: Service, body: Annotated[ChatCompletionRequest, Body()]
) -> ChatCompletion | StreamingResponse:
    """OpenAI chat with ``model`` a fine-tuned model (``ft:…``) or a base model id."""
    project = openai_project(request)
    if not body.model:
        raise InvalidArgument("model is required: a fine-tuned model (ft:…) or a base model id", param="model")
    dep = await run_in_threadpool(service.serving, project, body.model)
    return await chat_reply(request, project, dep, body, body.model)
