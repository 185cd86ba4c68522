"""The model registry's reads: models.get and models.list, with the endpoints each model is deployed on."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneforge.control.db import Store, get_scoped
from tuneforge.control.filters import MODEL_FILTERS, filter_conditions
from tuneforge.control.paging import page
from tuneforge.control.registry import model_name
from tuneforge.control.tables import DeployedModelRow, ModelRow
from tuneforge.wire import names
from tuneforge.wire.base import timestamp


def deployments_of(s: Session, model_ids: list[str]) -> dict[str, list[dict]]:
    """``Model.deployedModels`` for each model id: ``[{endpoint, deployedModelId}]``."""
    out: dict[str, list[dict]] = {m: [] for m in model_ids}
    rows = s.scalars(select(DeployedModelRow).where(DeployedModelRow.model_id.in_(model_ids),
                                                    DeployedModelRow.state == "DEPLOYED")).all()
    for d in rows:
        out[d.model_id].append({"endpoint": names.name("endpoints", d.project, d.location, d.endpoint_id),
                                "deployedModelId": d.id})
    return out


def model_json(row: ModelRow, deployed: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "deployedModels": deployed or [],
        "name": model_name(row), "displayName": row.display_name, "description": row.description,
        "versionId": str(row.version), "versionAliases": ["default"], "labels": row.labels or {},
        "artifactUri": row.artifact_uri, "createTime": timestamp(row.create_time),
        "updateTime": timestamp(row.update_time), "versionCreateTime": timestamp(row.create_time),
        "versionUpdateTime": timestamp(row.update_time), "supportedDeploymentResourcesTypes": ["DEDICATED_RESOURCES"],
    }


class ModelService:
    def __init__(self, store: Store):
        self.store = store

    def list(self, project: str, location: str, *, filter: str | None = None, page_size: int | None = None,
             page_token: str | None = None) -> tuple[list[dict[str, Any]], str]:
        q = select(ModelRow).where(ModelRow.project == project, ModelRow.location == location,
                                   *filter_conditions(filter, MODEL_FILTERS, ModelRow.labels))
        with self.store.session() as s:
            rows, token = page(s, q.order_by(ModelRow.create_time.desc(), ModelRow.id.desc()), page_size, page_token)
            deployed = deployments_of(s, [r.id for r in rows])
        return [model_json(r, deployed[r.id]) for r in rows], token

    def get(self, project: str, location: str, model_id: str) -> dict[str, Any]:
        model_id = model_id.split("@", 1)[0]  # models/123@1: version 1 is the only version
        row = get_scoped(self.store, ModelRow, model_id, project, location, "Model", "models")
        with self.store.session() as s:
            return model_json(row, deployments_of(s, [row.id])[row.id])
