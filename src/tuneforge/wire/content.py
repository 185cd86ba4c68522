"""Content and Part (the Gemini API's message shape): generateContent requests and responses, tuning data samples."""

from __future__ import annotations

from typing import Any

from pydantic import model_validator

from tuneforge.wire.base import WireModel, problem


class Blob(WireModel):
    WIRE_NAME = "Blob"
    mime_type: str | None = None
    data: str | None = None


class FileData(WireModel):
    WIRE_NAME = "FileData"
    mime_type: str | None = None
    file_uri: str | None = None


class Part(WireModel):
    WIRE_NAME = "Part"
    text: str | None = None
    inline_data: Blob | None = None
    file_data: FileData | None = None


class Content(WireModel):
    """A message: ``role`` user or model (any case is read), and its parts (one part object is read as a list)."""

    WIRE_NAME = "Content"
    role: str | None = None
    parts: list[Part] = []

    @model_validator(mode="before")
    @classmethod
    def _one_part(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("parts"), dict):  # SPEC §8 S3: a lone part object
            return {**data, "parts": [data["parts"]]}
        if not isinstance(data, (dict, Content)):
            raise problem('{field} must be an object like {"role": "user", "parts": [{"text": "…"}]}')
        return data
