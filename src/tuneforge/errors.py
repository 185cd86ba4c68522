"""Domain exceptions. Each carries the google.rpc code it maps to; the API maps them to HTTP in one place."""

from __future__ import annotations


class TuneforgeError(Exception):
    """Base class: a message that says what is wrong and what to do next."""

    code = "INTERNAL"

    def __init__(self, message: str, *, details: list[str] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or []

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


class ModelNotFound(NotFound):
    """An id that is not in the catalog."""


class WeightsNotConfigured(FailedPrecondition):
    """A catalog model (or closed alias) whose weights the operator has not configured."""


class DatasetInvalid(InvalidArgument):
    """A dataset with errors; ``report`` holds every problem found, not just the first."""

    def __init__(self, message: str, report):
        details = [f"{p.source}: {p}" if p.source and p.line is not None else str(p) for p in report.errors]
        super().__init__(message, details=details)
        self.report = report
