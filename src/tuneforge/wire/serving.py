"""The Vertex serving APIs: ``predict`` (instances in, predictions out) and ``generateContent`` (and its stream)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from tuneforge.wire.base import FIELD, WireModel, problem
from tuneforge.wire.content import Content


class PredictRequest(WireModel):
    WIRE_NAME = "PredictRequest"
    instances: list[dict[str, Any]] = Field(
        default=[],
        description='Up to 64 instances: {"prompt": …} (open models: max_tokens, temperature, top_p, '
        'top_k, stop, seed, raw_response beside it), {"content": …} / {"prefix": …} (text and code models) or '
        '{"messages": [{"author", "content"}], "context"?} (chat models).',
    )
    parameters: dict[str, Any] | None = Field(
        default=None, description="maxOutputTokens, temperature, topP, topK, stopSequences, candidateCount, seed."
    )
    labels: dict[str, str] | None = None

    @field_validator("instances", mode="before")
    @classmethod
    def _instances(cls, value: Any) -> Any:
        if not isinstance(value, list) or not value:
            raise problem(f'{FIELD} must be a non-empty list, e.g. [{{"prompt": "What is a car?"}}]')
        if len(value) > 64:
            raise problem(f"{FIELD} has {len(value)} items; send at most 64 per request")
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                raise problem(f'{FIELD}[{i}] must be an object like {{"prompt": "..."}}')
        return value

    @field_validator("parameters", mode="before")
    @classmethod
    def _parameters(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, dict):
            raise problem(f"{FIELD} must be an object")
        return value


class PredictResponse(WireModel):
    WIRE_NAME = "PredictResponse"
    predictions: list[Any]
    deployed_model_id: str
    model: str
    model_display_name: str
    model_version_id: str


class GenerationConfig(WireModel):
    WIRE_NAME = "GenerationConfig"
    temperature: float | None = None
    top_p: float | None = None
    top_k: float | None = None
    candidate_count: int | None = Field(default=None, description="1-8 candidates.")
    max_output_tokens: int | None = None
    stop_sequences: list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    response_logprobs: bool | None = None
    logprobs: int | None = None
    response_mime_type: str | None = None
    response_schema: dict[str, Any] | None = None
    response_json_schema: Any = None
    response_modalities: list[str] | None = None
    media_resolution: str | None = None
    thinking_config: dict[str, Any] | None = None
    routing_config: dict[str, Any] | None = None
    speech_config: dict[str, Any] | None = None
    image_config: dict[str, Any] | None = None
    audio_timestamp: bool | None = None


class GenerateContentRequest(WireModel):
    WIRE_NAME = "GenerateContentRequest"
    contents: list[Content] = Field(default=[], description="The conversation; the last turn is the user's.")
    system_instruction: Content | None = None
    generation_config: GenerationConfig | None = None
    model: str | None = None
    labels: dict[str, str] | None = None
    safety_settings: list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_config: dict[str, Any] | None = None
    cached_content: str | None = None
    model_armor_config: dict[str, Any] | None = None


class Candidate(WireModel):
    WIRE_NAME = "Candidate"
    content: Content
    index: int = 0
    finish_reason: str | None = Field(default=None, description="STOP, MAX_TOKENS or OTHER.")


class UsageMetadata(WireModel):
    WIRE_NAME = "GenerateContentResponse.UsageMetadata"
    prompt_token_count: int
    candidates_token_count: int
    total_token_count: int


class GenerateContentResponse(WireModel):
    WIRE_NAME = "GenerateContentResponse"
    candidates: list[Candidate]
    model_version: str
    response_id: str
    create_time: str | None = None
    usage_metadata: UsageMetadata | None = None
