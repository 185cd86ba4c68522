"""Domain exceptions -> google.rpc.Status JSON with the HTTP status Vertex uses. The one place errors are mapped."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tuneforge.errors import DatasetInvalid, TuneforgeError

log = logging.getLogger("tuneforge.api")

HTTP_STATUS = {
    "INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "OUT_OF_RANGE": 400, "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403, "NOT_FOUND": 404, "ALREADY_EXISTS": 409, "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499, "INTERNAL": 500, "UNIMPLEMENTED": 501, "UNAVAILABLE": 503,
}
_BY_HTTP = {404: "NOT_FOUND", 405: "UNIMPLEMENTED", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED"}


def status_body(code: str, message: str, details: list | None = None) -> dict:
    error = {"code": HTTP_STATUS.get(code, 500), "message": message, "status": code}
    if details:
        error["details"] = details
    return {"error": error}


def error_response(code: str, message: str, details: list | None = None) -> JSONResponse:
    return JSONResponse(status_body(code, message, details), status_code=HTTP_STATUS.get(code, 500))


def install(app: FastAPI) -> None:
    @app.exception_handler(TuneforgeError)
    async def _domain(request: Request, exc: TuneforgeError):
        details = []
        if isinstance(exc, DatasetInvalid):
            details.append({
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": f"{p.source}:{p.line}" if p.line else (p.source or ""), "description": str(p)}
                                    for p in exc.report.errors],
            })
        elif exc.details:
            details.append({"@type": "type.googleapis.com/google.rpc.DebugInfo", "detail": "\n".join(exc.details)})
        return error_response(exc.code, str(exc), details)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        violations = []
        for err in exc.errors():
            loc = ".".join(str(x) for x in err["loc"] if x != "body")
            violations.append({"field": loc, "description": err["msg"]})
        message = "; ".join(f"{v['field']}: {v['description']}" for v in violations) or "invalid request"
        return error_response("INVALID_ARGUMENT", message,
                              [{"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": violations}])

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        code = _BY_HTTP.get(exc.status_code, "INVALID_ARGUMENT" if exc.status_code < 500 else "INTERNAL")
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"{request.method} {request.url.path} is not a tuneforge API path"
        return JSONResponse(status_body(code, message), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response("INTERNAL", f"internal error ({type(exc).__name__}); see the server log")
