"""Domain exceptions -> google.rpc.Status JSON with the HTTP status Vertex uses. The one place errors are mapped."""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from tuneforge.errors import DatasetInvalid, TuneforgeError
from tuneforge.wire.base import messages
from tuneforge.wire.openai_ft import OpenAIError, OpenAIErrorBody
from tuneforge.wire.status import ErrorBody

log = logging.getLogger("tuneforge.api")

HTTP_STATUS = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "INTERNAL": 500,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
}
_BY_HTTP = {404: "NOT_FOUND", 405: "UNIMPLEMENTED", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED"}
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"

# The error answers every API route documents (google.rpc.Status in the body).
_DESCRIPTIONS = {
    400: "INVALID_ARGUMENT or FAILED_PRECONDITION: the message names the field and the fix",
    401: "UNAUTHENTICATED: no or an unknown API key",
    403: "PERMISSION_DENIED: the key's projects",
    404: "NOT_FOUND",
    500: "INTERNAL: a bug; see the server log",
}
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text} for code, text in _DESCRIPTIONS.items()
}
CREATE_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    409: {"model": ErrorBody, "description": "ALREADY_EXISTS"},
    429: {"model": ErrorBody, "description": "RESOURCE_EXHAUSTED: over the project's quota"},
}


def status_body(code: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": HTTP_STATUS.get(code, 500), "message": message, "status": code}
    if details:
        error["details"] = details
    return {"error": error}


def error_response(code: str, message: str, details: list[dict[str, Any]] | None = None) -> JSONResponse:
    return JSONResponse(status_body(code, message, details), status_code=HTTP_STATUS.get(code, 500))


def _body_name(request: Request) -> str:
    """The wire name of the route's request body (for messages about the body as a whole)."""
    field = getattr(request.scope.get("route"), "body_field", None)
    model = getattr(getattr(field, "field_info", None), "annotation", None)
    return str(getattr(model, "WIRE_NAME", "") or getattr(model, "__name__", "") or "request")


def validation_error(exc: ValidationError | RequestValidationError, resource: str) -> JSONResponse:
    found = messages(exc, resource)
    violations = [{"field": path, "description": text} for path, text in found]
    message = "; ".join(text for _, text in found) or "invalid request"
    return error_response("INVALID_ARGUMENT", message, [{"@type": BAD_REQUEST, "fieldViolations": violations}])


# The OpenAI-compatible routes answer errors in OpenAI's shape ({"error": {"message", "type", "param", "code"}}),
# which the openai client reads; every other route answers google.rpc.Status.
OPENAI_PATHS = ("/v1/files", "/v1/fine_tuning", "/v1/models", "/v1/chat/completions")
_OPENAI_TYPES = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}
_OPENAI_CODES = {401: "invalid_api_key", 404: "not_found", 429: "rate_limit_exceeded"}
OPENAI_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": OpenAIErrorBody, "description": text}
    for code, text in {
        400: "invalid_request_error: the message names the field (param) and the fix",
        401: "authentication_error: no or an unknown API key",
        403: "permission_error: the key's projects",
        404: "invalid_request_error: no such object in this project",
        500: "server_error: a bug; see the server log",
    }.items()
}


def is_openai(request: Request) -> bool:
    path = request.url.path
    return any(path == p or path.startswith(p + "/") for p in OPENAI_PATHS)


def openai_error(status: int, message: str, param: str | None = None) -> JSONResponse:
    kind = _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    body = OpenAIErrorBody(error=OpenAIError(message=message, type=kind, param=param, code=_OPENAI_CODES.get(status)))
    return JSONResponse(body.model_dump(), status_code=status)


def install(app: FastAPI) -> None:
    @app.exception_handler(TuneforgeError)
    async def _domain(request: Request, exc: TuneforgeError) -> JSONResponse:
        if is_openai(request):
            return openai_error(HTTP_STATUS.get(exc.code, 500), str(exc), exc.param)
        details = []
        if isinstance(exc, DatasetInvalid):
            details.append(
                {
                    "@type": BAD_REQUEST,
                    "fieldViolations": [
                        {"field": f"{p.source}:{p.line}" if p.line else (p.source or ""), "description": str(p)}
                        for p in exc.report.errors
                    ],
                }
            )
        elif exc.details:
            details.append({"@type": "type.googleapis.com/google.rpc.DebugInfo", "detail": "\n".join(exc.details)})
        return error_response(exc.code, str(exc), details)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        if is_openai(request):
            found = messages(exc, "request")
            message = "; ".join(t for _, t in found) or "invalid request"
            param = re.sub(r"^(query|path|body|header)\.", "", found[0][0]) if found else None  # as OpenAI names it
            return openai_error(400, message, param)
        return validation_error(exc, _body_name(request))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _BY_HTTP.get(exc.status_code, "INVALID_ARGUMENT" if exc.status_code < 500 else "INTERNAL")
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"{request.method} {request.url.path} is not a tuneforge API path"
        if is_openai(request):
            return openai_error(exc.status_code, message)
        return JSONResponse(status_body(code, message), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        message = f"internal error ({type(exc).__name__}); see the server log"
        return openai_error(500, message) if is_openai(request) else error_response("INTERNAL", message)
