"""The model registry's writes: a finished run becomes a Model with the labels the SDK finds it by, and (when the
operator's auto-deploy is on) a new endpoint that serves it. Tuning jobs and pipeline upload/deploy tasks both
register through here."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneforge.catalog.model_folder import weights_at
from tuneforge.control.db import Store, get_scoped
from tuneforge.control.tables import DeployedModelRow, EndpointRow, ModelRow, new_id, utcnow
from tuneforge.errors import FailedPrecondition, InvalidArgument
from tuneforge.settings import Settings
from tuneforge.wire import names

BASE_MODEL_LABEL = "google-vertex-llm-tuning-base-model-id"  # contract §5.4: how the SDK lists tuned models
JOB_LABEL = "google-vertex-llm-tuning-job-id"
DEV_LABEL = "tuneforge-dev-stand-in"  # dev mode: the tiny model a job ran on instead of the one it named
AUTOMATIC = {"automaticResources": {"minReplicaCount": 1, "maxReplicaCount": 1}}


def base_model_label(model_id: str) -> str:
    """A model id as a label value (labels allow no '@' or '/')."""
    return model_id.replace("@", "-").replace("/", "-")


def model_name(model: ModelRow) -> str:
    return names.name("models", model.project, model.location, model.id)


def endpoint_name(endpoint: EndpointRow) -> str:
    return names.name("endpoints", endpoint.project, endpoint.location, endpoint.id)


def register_model(
    s: Session,
    *,
    project: str,
    location: str,
    display_name: str,
    description: str,
    artifact_uri: str,
    base_model: str,
    kind: str,
    labels: dict[str, str],
    source_job: str,
    tuning_job_id: str | None = None,
) -> ModelRow:
    """A registry Model for a run's final folder, labelled with its base model and the job that made it."""
    now = utcnow()
    model = ModelRow(
        id=new_id(),
        project=project,
        location=location,
        version=1,
        display_name=display_name,
        description=description,
        artifact_uri=artifact_uri,
        labels={**labels, BASE_MODEL_LABEL: base_model_label(base_model), JOB_LABEL: source_job},
        base_model=base_model,
        kind=kind,
        job_id=tuning_job_id,
        create_time=now,
        update_time=now,
    )
    s.add(model)
    s.flush()
    return model


def model_weights(model: ModelRow, settings: Settings) -> tuple[Path, Path | None]:
    """(model folder, base folder for a LoRA adapter or None) of a registered model."""
    return weights_at(model.artifact_uri, settings, f"model {model.id}")


def resource_weights(
    store: Store, project: str, settings: Settings, field: str
) -> Callable[[str], tuple[Path, Path | None]]:
    """A resolver: (folder, base) of a registered model, or of the model deployed on an endpoint, in ``project``
    (what a teacher named ``projects/…/models/ID`` or ``…/endpoints/ID`` runs on). ``field`` names the request
    field in errors."""

    def resolve(reference: str) -> tuple[Path, Path | None]:
        parsed = names.parse(reference, ("models", "endpoints"))
        if parsed is None:
            raise InvalidArgument(f"{field} {reference}: expected projects/P/locations/L/models/ID or …/endpoints/ID")
        if parsed.project != project:
            raise InvalidArgument(f"{field} {reference}: the teacher must be in project {project}")
        rid = parsed.id
        if parsed.collection == "endpoints":
            with store.session() as s:
                dep = s.scalars(
                    select(DeployedModelRow).where(
                        DeployedModelRow.endpoint_id == rid, DeployedModelRow.state == "DEPLOYED"
                    )
                ).first()
            if dep is None:
                raise FailedPrecondition(f"{field} {reference}: no model is deployed on that endpoint")
            rid = dep.model_id
        model = get_scoped(store, ModelRow, rid, parsed.project, parsed.location, "Model", "models")
        return model_weights(model, settings)

    return resolve


def new_endpoint(
    s: Session, project: str, location: str, display: str, description: str, labels: dict[str, str]
) -> EndpointRow:
    now = utcnow()
    row = EndpointRow(
        id=new_id(),
        project=project,
        location=location,
        display_name=display,
        description=description,
        labels=labels,
        deployed_models=[],
        traffic_split={},
        create_time=now,
        update_time=now,
    )
    s.add(row)
    s.flush()
    return row


def record_deployment(
    s: Session,
    dep_id: str,
    endpoint_id: str,
    model_id: str,
    project: str,
    location: str,
    display: str,
    resources: dict[str, Any],
    operation: str | None = None,
) -> None:
    """A deployed model's record: DEPLOYING while its ``operation`` loads it, else DEPLOYED (loaded on first use)."""
    s.add(
        DeployedModelRow(
            id=dep_id,
            endpoint_id=endpoint_id,
            model_id=model_id,
            project=project,
            location=location,
            display_name=display,
            resources=resources,
            state="DEPLOYING" if operation else "DEPLOYED",
            operation=operation,
            create_time=utcnow(),
        )
    )


def auto_deploy(s: Session, model: ModelRow, display: str) -> str:
    """Deploy a finished job's model on a new endpoint (as Vertex does for Gemini-style tuning); returns its name.
    Only the record is written here (the worker may be another process); the server loads the model on its first
    request."""
    endpoint = new_endpoint(s, model.project, model.location, display, f"Serves {model_name(model)}", {})
    dep_id = new_id()
    record_deployment(s, dep_id, endpoint.id, model.id, model.project, model.location, display, AUTOMATIC)
    endpoint.traffic_split = {dep_id: 100}
    return endpoint_name(endpoint)
