"""OpenAI chat completions, as an endpoint serves them (``…/endpoints/ID/chat/completions``). Lenient: fields
OpenAI clients send that tuneforge does not use are ignored."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from tuneforge.wire.base import FIELD, LenientModel, problem


class ChatMessage(LenientModel):
    role: str = Field(description="system (or developer), user, assistant or tool.")
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = Field(default=None, description="An assistant turn's function calls.")
    tool_call_id: str | None = Field(default=None, description="A tool message: the call it answers.")


class StreamOptions(LenientModel):
    include_usage: bool = False


class ChatCompletionRequest(LenientModel):
    model: str | None = Field(
        default=None,
        description="On endpoints/openapi: the endpoint's name; elsewhere a "
        "deployed model's id or display name picks it.",
    )
    messages: list[ChatMessage] = []
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = Field(default=None, description="An extension: sample among the k most likely tokens.")
    n: int | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[dict[str, Any]] | None = Field(
        default=None, description="Functions the model may call: rendered by its chat template, calls parsed back."
    )
    tool_choice: str | dict[str, Any] | None = Field(
        default=None, description='"auto" (the default with tools) or "none" (no calls parsed); forcing one is refused.'
    )
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = Field(
        default=None, description='{"type": "text"} only: structured output (json_object, json_schema) is refused.'
    )

    @field_validator("messages", mode="before")
    @classmethod
    def _messages(cls, value: Any) -> Any:
        if not isinstance(value, list):
            raise problem(f'{FIELD}: expected a list like [{{"role": "user", "content": "…"}}]')
        return value


class FunctionCall(LenientModel):
    name: str
    arguments: str = Field(description="A JSON object, as a string.")


class ToolCall(LenientModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ResponseMessage(LenientModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    tool_calls: list[ToolCall] | None = None


class Choice(LenientModel):
    index: int
    message: ResponseMessage
    finish_reason: str
    logprobs: None = None


class Usage(LenientModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(LenientModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage


class OpenAIModel(LenientModel):
    id: str
    object: Literal["model"] = "model"
    created: int | None = Field(default=None, description="Unix seconds (a fine-tuned model: when its job ended).")
    owned_by: str = "tuneforge"
    root: str | None = None
    deployed_model_id: str | None = None


class ModelList(LenientModel):
    object: Literal["list"] = "list"
    data: list[OpenAIModel]
