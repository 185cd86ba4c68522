"""OpenAI's fine-tuning API shapes, as the ``openai`` Python client (3.x) reads them: files (``/v1/files``) and the
error body every route under ``/v1/files`` (and the OpenAI-compatible routes to come) answers with.

Snake-case names and Unix-second times, as OpenAI has them; what the client does not read is left out.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

FILE_PURPOSES = ("fine-tune", "fine-tune-results", "batch", "batch_output", "assistants", "vision", "user_data")
FilePurpose = Literal["fine-tune", "fine-tune-results", "batch", "batch_output", "assistants", "vision", "user_data"]


class FileObject(BaseModel):
    id: str = Field(description="file-… (a tuneforge id, unique across projects).")
    object: Literal["file"] = "file"
    bytes: int
    created_at: int = Field(description="Unix seconds.")
    filename: str
    purpose: FilePurpose
    status: Literal["uploaded", "processed", "error"] = "processed"
    status_details: str | None = None
    expires_at: int | None = None


class FileList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FileObject]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True


class OpenAIError(BaseModel):
    message: str
    type: str = Field(description="invalid_request_error, authentication_error, permission_error, … server_error.")
    param: str | None = Field(default=None, description="The request field at fault, when one is.")
    code: str | None = None


class OpenAIErrorBody(BaseModel):
    error: OpenAIError
