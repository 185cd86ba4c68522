"""FastAPI app factory: store, services, routers under each API version, errors, the OpenAPI document; optionally an
in-process worker."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

import tuneforge
from tuneforge.api import errors
from tuneforge.api.body_check import CheckJsonBodies
from tuneforge.api.deps import VERSIONS, parse_api_keys, project_scope
from tuneforge.api.routers import (
    base_models,
    console,
    datasets,
    endpoints,
    models,
    openai_files,
    openai_jobs,
    openai_models,
    pipeline_jobs,
    sdk_support,
    tuning_jobs,
)
from tuneforge.control.access import BucketPolicy
from tuneforge.control.datasets import DatasetService
from tuneforge.control.db import Store
from tuneforge.control.endpoints import EndpointService
from tuneforge.control.exports import ExportService
from tuneforge.control.files import FileService
from tuneforge.control.fine_tuning import FineTuningService
from tuneforge.control.models import ModelService
from tuneforge.control.pipeline_jobs import PipelineJobService
from tuneforge.control.tuning_jobs import TuningJobService
from tuneforge.infer.engine import Engine
from tuneforge.settings import Settings
from tuneforge.worker.worker import Worker

DESCRIPTION = (
    "Vertex AI tuning on your own machines. Every path is served under /v1, /v1beta1 and /ui (the "
    "documented API versions); this document lists /v1. Errors are google.rpc.Status bodies."
)


class Health(BaseModel):
    status: str
    database: str


class JsonByDefault:
    """Read a request body that names no content type as JSON (what the Google APIs do; curl and hand-written
    clients often send none), so every route parses it as the typed body it declares."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH"):
            headers = list(scope.get("headers") or [])
            if not any(k.lower() == b"content-type" for k, _ in headers):
                scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
        await self.app(scope, receive, send)


def create_app(settings: Settings, *, with_worker: bool = True, store: Store | None = None) -> FastAPI:
    store = store or Store(settings.resolved_database_url)  # upgrades an empty or older database

    lifespan = _lifespan(store, settings, with_worker)
    app = FastAPI(
        title="tuneforge",
        version=tuneforge.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        separate_input_output_schemas=False,
        dependencies=[Depends(project_scope)],
    )
    app.state.settings = settings
    app.state.store = store
    app.state.api_keys = parse_api_keys(settings.api_keys)
    app.state.buckets = BucketPolicy(store, settings)
    app.state.tuning_jobs = TuningJobService(store, settings)
    app.state.pipeline_jobs = PipelineJobService(store, settings)
    app.state.models = ModelService(store, settings)
    app.state.exports = ExportService(store, settings)
    app.state.datasets = DatasetService(store, settings)
    app.state.files = FileService(store, settings)
    app.state.engine = Engine(
        device=settings.serve_device,
        max_batch=settings.serve_max_batch_size,
        batch_wait_ms=settings.serve_batch_wait_ms,
        memory_limit_bytes=settings.serve_memory_limit_bytes,
        default_max_tokens=settings.serve_default_max_tokens,
    )
    app.state.endpoints = EndpointService(store, settings, app.state.engine)
    app.state.fine_tuning = FineTuningService(
        store, settings, app.state.tuning_jobs, app.state.files, app.state.endpoints.deployments
    )
    app.state.ready = False
    errors.install(app)

    @app.get("/healthz", response_model=Health, tags=["health"])
    def healthz() -> Health:
        return Health(status="ok" if app.state.ready else "starting", database=store.dialect)

    for version in VERSIONS:
        for router in (
            tuning_jobs.router,
            pipeline_jobs.router,
            models.router,
            endpoints.router,
            datasets.router,
            base_models.router,
            sdk_support.versioned,
        ):
            app.include_router(router, prefix=f"/{version}", include_in_schema=version == "v1")
    app.include_router(sdk_support.root)
    for router in (openai_files.router, openai_jobs.router, openai_models.router):  # OpenAI's paths: /v1/... only
        app.include_router(router)
    app.include_router(console.router)
    app.add_middleware(CheckJsonBodies, limit=settings.max_upload_bytes)
    app.add_middleware(JsonByDefault)  # outermost: a body that names no type is read (and checked) as JSON
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _lifespan(store: Store, settings: Settings, with_worker: bool) -> Any:
    """Start the in-process worker and resume deployments; on the way out stop the engine, the worker, the store."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        thread = None
        if with_worker and settings.workers > 0:
            worker = Worker(store, settings, slots=settings.workers)
            thread = threading.Thread(target=worker.run, args=(stop,), name="tuneforge-worker", daemon=True)
            thread.start()
        app.state.endpoints.resume()
        app.state.exports.recover()
        app.state.ready = True
        try:
            yield
        finally:
            app.state.engine.close()
            stop.set()
            if thread is not None:
                thread.join(timeout=30)
            store.dispose()

    return lifespan


_VERTEX = "/v1/projects/{project}/locations/{location}"
_IN_PLACE = {"project": "$request.path.project", "location": "$request.path.location"}
# OpenAPI links (what a client, and a stateful fuzzer, may call next with what an answer gave it), where the id is a
# whole value: a pipeline's ?pipelineJobId=, an OpenAI file's or job's id. (A Vertex tuning job's or endpoint's id is
# only the last part of its name, which a link cannot cut out.)
_LINKS: list[tuple[str, str, str, dict[str, str], dict[str, str] | None]] = [
    *(
        (
            f"{_VERTEX}/pipelineJobs",
            f"{_VERTEX}/pipelineJobs/{{job_id}}{verb}",
            method,
            {**_IN_PLACE, "job_id": "$request.query.pipelineJobId"},
            None,
        )
        for verb, method in (("", "get"), (":cancel", "post"), ("/events", "get"))
    ),
    (
        f"{_VERTEX}/tuneforge/datasets:upload",
        f"{_VERTEX}/tuneforge/datasets:inspect",
        "post",
        _IN_PLACE,
        {"uri": "$request.query.uri"},
    ),
    *(
        ("/v1/files", f"/v1/files/{{file_id}}{tail}", method, {"file_id": "$response.body#/id"}, None)
        for tail, method in (("", "get"), ("/content", "get"), ("", "delete"))
    ),
    (
        "/v1/files",
        "/v1/fine_tuning/jobs",
        "post",
        {},
        {"training_file": "$response.body#/id", "model": "gpt-4o-mini-2024-07-18"},
    ),
    *(
        (
            "/v1/fine_tuning/jobs",
            f"/v1/fine_tuning/jobs/{{job_id}}{tail}",
            method,
            {"job_id": "$response.body#/id"},
            None,
        )
        for tail, method in (
            ("", "get"),
            ("/cancel", "post"),
            ("/pause", "post"),
            ("/resume", "post"),
            ("/events", "get"),
            ("/checkpoints", "get"),
        )
    ),
]


def _add_links(paths: dict[str, Any]) -> None:
    """Each of _LINKS on its source's 200 answer (the source is always a POST, a create)."""
    for source, target, method, parameters, body in _LINKS:
        answer = paths[source]["post"]["responses"]["200"]
        link: dict[str, Any] = {"operationId": paths[target][method]["operationId"]}
        if parameters:
            link["parameters"] = parameters
        if body:
            link["requestBody"] = body
        name = paths[target][method]["operationId"].split("_v1_")[0]
        answer.setdefault("links", {})[f"{name}{len(answer.get('links', {}))}"] = link


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, without FastAPI's 422 answers: tuneforge answers a bad request with 400 and a
    google.rpc.Status (documented on every route)."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                operation.get("responses", {}).pop("422", None)
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
        _add_links(schema["paths"])
        app.openapi_schema = schema
    return app.openapi_schema
