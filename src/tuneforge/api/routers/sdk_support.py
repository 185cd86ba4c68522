"""What the official SDK asks for besides tuneforge's own resources (contract §1, §5.1), and operator views.

- Publisher models: every legacy call (``from_pretrained``, ``tune_model``, ``list_tuned_model_names``,
  ``get_tuned_model``) GETs ``publishers/google/models/{id}`` first.
- Pipeline templates: stand-in specs for air-gapped clients (``tuneforge.vertex_offline``).
- The bucket probe: ``GET /storage/v1/b/{bucket}`` (and bucket creation) when a client sets
  ``STORAGE_EMULATOR_HOST`` to tuneforge; always a 4xx, as the SDK needs.
- Locations: google.cloud.location's ListLocations (the regions jobs are accepted in).
- ``/tuneforge/serving``: what the serving engine holds (operators).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict

from tuneforge.api.deps import authorize
from tuneforge.api.errors import ERRORS, status_body
from tuneforge.catalog import load_catalog
from tuneforge.control.pipeline_templates import template_yaml
from tuneforge.control.tuning_jobs import locations
from tuneforge.errors import NotFound
from tuneforge.wire.locations import ListLocationsResponse
from tuneforge.wire.status import ErrorBody

versioned = APIRouter(tags=["SDK support"], responses=ERRORS)  # under /v1, /v1beta1, /ui
root = APIRouter(tags=["SDK support"])
_SCHEMA = "gs://google-cloud-aiplatform/schema/predict/instance/{}_1.0.0.yaml"
# The instance schema each legacy model class checks in from_pretrained (contract §5.1), by the id's stem.
_SCHEMAS = {
    "code-bison": "code_generation",
    "codechat-bison": "codechat_generation",
    "text-bison": "text_generation",
    "text-unicorn": "text_generation",
    "chat-bison": "chat_generation",
}


class PublisherModel(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    versionId: str
    openSourceCategory: str
    launchStage: str
    publisherModelTemplate: str
    predictSchemata: dict[str, str]


def _schema_for(model_id: str) -> str | None:
    stem = model_id.split("@", 1)[0].removesuffix("-32k")
    return _SCHEMAS.get(stem)


@versioned.get("/projects/{project}/locations", response_model=ListLocationsResponse, response_model_exclude_none=True)
def list_locations(request: Request, project: str) -> ListLocationsResponse:
    """google.cloud.location's ListLocations: the regions this server accepts jobs in."""
    authorize(request, project)
    return locations(project)


@versioned.get("/publishers/google/models/{model_id}", response_model=PublisherModel)
def publisher_model(request: Request, model_id: str) -> PublisherModel:
    catalog = load_catalog(request.app.state.settings)
    schema = _schema_for(model_id)
    if model_id not in catalog.aliases or schema is None:
        legacy = ", ".join(a for a in catalog.aliases if _schema_for(a))
        raise NotFound(f"publisher model google/{model_id} is not served here; tunable legacy models: {legacy}")
    name, _, version_id = model_id.partition("@")
    return PublisherModel(
        name=f"publishers/google/models/{name}",
        versionId=version_id or "001",
        openSourceCategory="PROPRIETARY",
        launchStage="GA",
        publisherModelTemplate=f"projects/{{user-project}}/locations/{{location}}/publishers/google/models/{model_id}",
        predictSchemata={"instanceSchemaUri": _SCHEMA.format(schema)},
    )


@root.get(
    "/tuneforge/pipeline-templates/{path:path}",
    response_class=PlainTextResponse,
    responses={
        200: {"content": {"application/x-yaml": {}}},
        404: {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}},
    },
)
def pipeline_template(path: str) -> PlainTextResponse:
    """The stand-in template of a pipeline tuneforge runs (what an air-gapped SDK downloads)."""
    uri = "https://us-kfp.pkg.dev/" + path
    body = template_yaml(uri)
    if body is None:
        raise NotFound(f"{uri} is not a pipeline tuneforge runs")
    return PlainTextResponse(body, media_type="application/x-yaml")


@root.get("/storage/v1/b/{bucket}", status_code=404, responses={404: {"model": ErrorBody}})
def bucket_probe(bucket: str) -> JSONResponse:
    """The SDK's bucket probe: always 404 (gs:// URIs map to the server's bucket root)."""
    return JSONResponse(
        status_body(
            "NOT_FOUND",
            f"bucket {bucket}: tuneforge maps gs:// URIs to its own bucket root; there is no storage API here",
        ),
        status_code=404,
    )


@root.post("/storage/v1/b", status_code=403, responses={403: {"model": ErrorBody}})
def bucket_create() -> JSONResponse:
    return JSONResponse(
        status_body(
            "PERMISSION_DENIED",
            "tuneforge does not create buckets; gs://BUCKET/path maps to <bucket_root>/BUCKET/path on the server",
        ),
        status_code=403,
    )


@root.get("/tuneforge/serving", responses=ERRORS)
def serving_stats(request: Request) -> dict[str, Any]:
    """What the serving engine holds: loaded weights, adapters, bytes (tuneforge extension, for operators)."""
    authorize(request, None)
    stats: dict[str, Any] = request.app.state.engine.stats()
    return stats
