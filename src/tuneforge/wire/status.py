"""google.rpc.Status, and the error body every failed request gets: ``{"error": {code, message, status, details}}``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Status(BaseModel):
    """google.rpc.Status: a job's or an operation's error (``code`` is a google.rpc.Code number)."""

    model_config = ConfigDict(extra="forbid")

    code: int = Field(description="google.rpc.Code number: 3 INVALID_ARGUMENT, 5 NOT_FOUND, 9 FAILED_PRECONDITION, …")
    message: str
    details: list[dict[str, Any]] | None = Field(default=None, description="google.rpc detail messages with @type.")


class ErrorStatus(Status):
    """The error of an HTTP response: the Status with the code's name (``status``) and the HTTP code (``code``)."""

    code: int = Field(description="The HTTP status code.")
    status: str = Field(description="The google.rpc.Code name: INVALID_ARGUMENT, NOT_FOUND, …")


class ErrorBody(BaseModel):
    """What a failed request gets, as Google APIs answer."""

    error: ErrorStatus
