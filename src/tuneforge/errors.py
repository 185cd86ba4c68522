"""Domain exceptions. Each carries the google.rpc code it maps to; the API maps them to HTTP in one place."""

from __future__ import annotations

from typing import Any

# google.rpc.Code: the numbers a Status (a job's ``error``, an operation's) carries, by the names exceptions use.
RPC_CODES = {
    "OK": 0,
    "CANCELLED": 1,
    "UNKNOWN": 2,
    "INVALID_ARGUMENT": 3,
    "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5,
    "ALREADY_EXISTS": 6,
    "PERMISSION_DENIED": 7,
    "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9,
    "ABORTED": 10,
    "OUT_OF_RANGE": 11,
    "UNIMPLEMENTED": 12,
    "INTERNAL": 13,
    "UNAVAILABLE": 14,
    "DATA_LOSS": 15,
    "UNAUTHENTICATED": 16,
}


def rpc_code(name: str) -> int:
    """The google.rpc code number of a code name (INTERNAL for a name that is not one)."""
    return RPC_CODES.get(name, RPC_CODES["INTERNAL"])


def rpc_name(number: int) -> str:
    """The name of a google.rpc code number (an unknown number is UNKNOWN)."""
    return next((name for name, n in RPC_CODES.items() if n == number), "UNKNOWN")


def status(code: str, message: str) -> dict[str, Any]:
    """A google.rpc.Status as stored on a job or an operation: ``{"code": 9, "message": ...}``."""
    return {"code": rpc_code(code), "message": message}


class TuneforgeError(Exception):
    """Base class: a message that says what is wrong and what to do next."""

    code = "INTERNAL"

    def __init__(self, message: str, *, details: list[str] | None = None, param: str | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or []
        self.param = param  # the request field at fault (OpenAI's error body names it)

    def __str__(self) -> str:
        if not self.details:
            return self.message
        return self.message + "\n" + "\n".join(f"  - {d}" for d in self.details)


class InvalidArgument(TuneforgeError):
    code = "INVALID_ARGUMENT"


class NotFound(TuneforgeError):
    code = "NOT_FOUND"


class FailedPrecondition(TuneforgeError):
    code = "FAILED_PRECONDITION"


class AlreadyExists(TuneforgeError):
    code = "ALREADY_EXISTS"


class ResourceExhausted(TuneforgeError):
    code = "RESOURCE_EXHAUSTED"


class Unauthenticated(TuneforgeError):
    code = "UNAUTHENTICATED"


class PermissionDenied(TuneforgeError):
    code = "PERMISSION_DENIED"


class ModelNotFound(NotFound):
    """An id that is not in the catalog."""


class WeightsNotConfigured(FailedPrecondition):
    """A catalog model (or closed alias) whose weights the operator has not configured."""


class DatasetInvalid(InvalidArgument):
    """A dataset with errors; ``report`` holds every problem found, not just the first."""

    def __init__(self, message: str, report: Any, *, listed: bool = True):
        details = [f"{p.source}: {p}" if p.source and p.line is not None else str(p) for p in report.errors]
        super().__init__(message, details=details if listed else [])
        self.report = report
