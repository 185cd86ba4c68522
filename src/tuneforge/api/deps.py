"""Request plumbing shared by routers: API-key authentication scoped to projects, the API version, the services."""

from __future__ import annotations

import re

from fastapi import Request

from tuneforge.control.access import BucketPolicy
from tuneforge.control.datasets import DatasetService
from tuneforge.control.endpoints import EndpointService
from tuneforge.control.exports import ExportService
from tuneforge.control.files import FileService
from tuneforge.control.fine_tuning import FineTuningService
from tuneforge.control.models import ModelService
from tuneforge.control.pipeline_jobs import PipelineJobService
from tuneforge.control.tuning_jobs import TuningJobService
from tuneforge.errors import InvalidArgument, PermissionDenied, Unauthenticated
from tuneforge.storage import Access

VERSIONS = ("v1", "v1beta1", "ui")  # the documented API versions; each is a path prefix of the same routes
PROJECT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")  # a project named by a header (it names folders too)


def parse_api_keys(spec: str) -> dict[str, set[str] | None]:
    """``KEY`` (all projects) or ``KEY=proj1|proj2``, comma-separated."""
    keys: dict[str, set[str] | None] = {}
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        key, _, projects = item.partition("=")
        keys[key.strip()] = {p.strip() for p in projects.split("|") if p.strip()} if projects else None
    return keys


def _scope(request: Request) -> set[str] | None:
    """The projects the request's key may use (None: all); a missing or unknown key is refused."""
    keys: dict[str, set[str] | None] = request.app.state.api_keys
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    if token not in keys:
        raise Unauthenticated(
            "missing or unknown API key; send Authorization: Bearer <key> (with the SDK: "
            "credentials=google.oauth2.credentials.Credentials(token=KEY); with openai: api_key=KEY)"
        )
    return keys[token]


def authorize(request: Request, project: str | None) -> None:
    """A valid key for ``project``; ``None`` (server-wide operator views) needs a key scoped to every project."""
    if not request.app.state.api_keys:
        return
    scope = _scope(request)
    if scope is not None and (project is None or project not in scope):
        raise PermissionDenied(
            f"this API key may not use project {project!r}"
            if project is not None
            else "this view needs an API key that is not scoped to projects"
        )


def bucket_access(request: Request, project: str) -> Access | None:
    """What ``project`` may read and write in the buckets (None on a server without API keys: one tenant)."""
    policy: BucketPolicy = request.app.state.buckets
    return policy.for_project(project)


def project_scope(request: Request) -> None:
    """The app-wide dependency: a route under ``/projects/{project}/…`` needs a key for that project, checked before
    its query and body are read, so no route can forget it and another project's key learns nothing from a 400."""
    project = request.path_params.get("project")
    if project is not None:
        authorize(request, project)


def openai_project(request: Request) -> str:
    """The project an OpenAI-API request works in: the ``OpenAI-Project`` header (``openai.OpenAI(project=…)``), else
    the key's one project, else the server's default project; the key must be allowed it."""
    asked = request.headers.get("openai-project", "").strip() or None
    if asked is not None and not PROJECT_ID.fullmatch(asked):
        raise InvalidArgument(
            f"OpenAI-Project {asked[:64]!r} is not a project id: letters, digits, '-' and '_', at most 128",
            param="OpenAI-Project",
        )
    default = str(request.app.state.settings.project)
    if not request.app.state.api_keys:
        return asked or default
    scope = _scope(request)
    if asked or scope is None:
        authorize(request, asked or default)
        return asked or default
    if len(scope) == 1:
        return next(iter(scope))
    raise InvalidArgument(
        f"this API key may use several projects ({', '.join(sorted(scope))}); name one with the OpenAI-Project "
        "header (openai.OpenAI(project=...))"
    )


def api_version(request: Request) -> str:
    """The version prefix the request came in on (v1, v1beta1 or ui)."""
    first = request.url.path.lstrip("/").split("/", 1)[0]
    return first if first in VERSIONS else "v1"


def unknown_verb(value: str, collection: str, verbs: tuple[str, ...]) -> InvalidArgument:
    """``123:explode``: a method the collection does not have is a clear 400."""
    verb = value.partition(":")[2]
    return InvalidArgument(f"unknown method {verb!r} on {collection}; supported: {', '.join(verbs)}")


def tuning_jobs(request: Request) -> TuningJobService:
    service: TuningJobService = request.app.state.tuning_jobs
    return service


def pipeline_jobs(request: Request) -> PipelineJobService:
    service: PipelineJobService = request.app.state.pipeline_jobs
    return service


def endpoints(request: Request) -> EndpointService:
    service: EndpointService = request.app.state.endpoints
    return service


def models(request: Request) -> ModelService:
    service: ModelService = request.app.state.models
    return service


def exports(request: Request) -> ExportService:
    service: ExportService = request.app.state.exports
    return service


def datasets(request: Request) -> DatasetService:
    service: DatasetService = request.app.state.datasets
    return service


def files(request: Request) -> FileService:
    service: FileService = request.app.state.files
    return service


def fine_tuning(request: Request) -> FineTuningService:
    service: FineTuningService = request.app.state.fine_tuning
    return service
