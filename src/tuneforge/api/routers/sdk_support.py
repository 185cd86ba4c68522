"""What the official SDK asks for besides tuneforge's own resources (contract §1, §5.1).

- Publisher models: every legacy call (``from_pretrained``, ``tune_model``, ``list_tuned_model_names``,
  ``get_tuned_model``) GETs ``publishers/google/models/{id}`` first.
- Pipeline templates: stand-in specs for air-gapped clients (``tuneforge.vertex_offline``).
- The bucket probe: ``GET /storage/v1/b/{bucket}`` (and bucket creation) when a client sets
  ``STORAGE_EMULATOR_HOST`` to tuneforge; always a 4xx, as the SDK needs.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from tuneforge.api.errors import status_body
from tuneforge.catalog import load_catalog
from tuneforge.errors import NotFound
from tuneforge.control.pipeline_templates import template_yaml

router = APIRouter()
_SCHEMA = "gs://google-cloud-aiplatform/schema/predict/instance/{}_1.0.0.yaml"
# The instance schema each legacy model class checks in from_pretrained (contract §5.1), by the id's stem.
_SCHEMAS = {"code-bison": "code_generation", "codechat-bison": "codechat_generation", "text-bison": "text_generation",
            "text-unicorn": "text_generation", "chat-bison": "chat_generation"}


def _schema_for(model_id: str) -> str | None:
    stem = model_id.split("@", 1)[0].removesuffix("-32k")
    return _SCHEMAS.get(stem)


@router.get("/{version}/publishers/google/models/{model_id}")
def publisher_model(request: Request, version: str, model_id: str):
    catalog = load_catalog(request.app.state.settings)
    schema = _schema_for(model_id)
    if model_id not in catalog.aliases or schema is None:
        legacy = ", ".join(a for a in catalog.aliases if _schema_for(a))
        raise NotFound(f"publisher model google/{model_id} is not served here; tunable legacy models: {legacy}")
    name, _, version_id = model_id.partition("@")
    return {
        "name": f"publishers/google/models/{name}",
        "versionId": version_id or "001",
        "openSourceCategory": "PROPRIETARY",
        "launchStage": "GA",
        "publisherModelTemplate": f"projects/{{user-project}}/locations/{{location}}/publishers/google/models/{model_id}",
        "predictSchemata": {"instanceSchemaUri": _SCHEMA.format(schema)},
    }


@router.get("/tuneforge/pipeline-templates/{path:path}")
def pipeline_template(path: str):
    uri = "https://us-kfp.pkg.dev/" + path
    body = template_yaml(uri)
    if body is None:
        raise NotFound(f"{uri} is not a pipeline tuneforge runs")
    return PlainTextResponse(body, media_type="application/x-yaml")


@router.get("/storage/v1/b/{bucket}")
def bucket_probe(bucket: str):
    return JSONResponse(status_body("NOT_FOUND", f"bucket {bucket}: tuneforge maps gs:// URIs to its own bucket root; "
                                    "there is no storage API here"), status_code=404)


@router.post("/storage/v1/b")
def bucket_create():
    return JSONResponse(status_body("PERMISSION_DENIED", "tuneforge does not create buckets; gs://BUCKET/path maps to "
                                    "<bucket_root>/BUCKET/path on the server"), status_code=403)
