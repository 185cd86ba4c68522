"""The model registry's reads: models.get and models.list, with the endpoints each model is deployed on."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneforge.catalog import Catalog, load_catalog
from tuneforge.control.base_models import publisher_model_name
from tuneforge.control.db import Store, get_scoped
from tuneforge.control.exports import export_formats
from tuneforge.control.filters import MODEL_FILTERS, filter_conditions
from tuneforge.control.paging import list_page
from tuneforge.control.registry import model_name
from tuneforge.control.tables import DeployedModelRow, ModelRow
from tuneforge.settings import Settings
from tuneforge.wire import names
from tuneforge.wire.base import timestamp
from tuneforge.wire.models import BaseModelSource, DeployedModelRef, ListModelsResponse, Model, ModelGardenSource


def deployments_of(s: Session, model_ids: list[str]) -> dict[str, list[DeployedModelRef]]:
    """``Model.deployedModels`` for each model id: ``[{endpoint, deployedModelId}]``."""
    out: dict[str, list[DeployedModelRef]] = {m: [] for m in model_ids}
    rows = s.scalars(
        select(DeployedModelRow).where(DeployedModelRow.model_id.in_(model_ids), DeployedModelRow.state == "DEPLOYED")
    ).all()
    for d in rows:
        out[d.model_id].append(
            DeployedModelRef(
                endpoint=names.name("endpoints", d.project, d.location, d.endpoint_id), deployed_model_id=d.id
            )
        )
    return out


def model_resource(row: ModelRow, deployed: list[DeployedModelRef], catalog: Catalog) -> Model:
    source = None
    if row.base_model:
        source = BaseModelSource(
            model_garden_source=ModelGardenSource(public_model_name=publisher_model_name(row.base_model, catalog))
        )
    return Model(
        base_model_source=source,
        deployed_models=deployed,
        name=model_name(row),
        display_name=row.display_name,
        description=row.description,
        version_id=str(row.version),
        labels=row.labels or {},
        artifact_uri=row.artifact_uri,
        create_time=timestamp(row.create_time),
        update_time=timestamp(row.update_time),
        version_create_time=timestamp(row.create_time),
        version_update_time=timestamp(row.update_time),
        supported_export_formats=export_formats(row, catalog),
    )


class ModelService:
    def __init__(self, store: Store, settings: Settings):
        self.store, self.settings = store, settings

    def list(
        self,
        project: str,
        location: str,
        *,
        filter: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
    ) -> ListModelsResponse:
        catalog = load_catalog(self.settings)
        with self.store.session() as s:
            rows, token = list_page(
                s,
                ModelRow,
                project,
                location,
                page_size,
                page_token,
                *filter_conditions(filter, MODEL_FILTERS, ModelRow.labels),
            )
            deployed = deployments_of(s, [r.id for r in rows])
        return ListModelsResponse(
            models=[model_resource(r, deployed[r.id], catalog) for r in rows], next_page_token=token or None
        )

    def get(self, project: str, location: str, model_id: str) -> Model:
        model_id = model_id.split("@", 1)[0]  # models/123@1: version 1 is the only version
        row = get_scoped(self.store, ModelRow, model_id, project, location, "Model", "models")
        with self.store.session() as s:
            return model_resource(row, deployments_of(s, [row.id])[row.id], load_catalog(self.settings))
