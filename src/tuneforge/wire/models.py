"""Model (the registry) and what it says about its deployments."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from tuneforge.wire.base import WireModel


class DeployedModelRef(WireModel):
    WIRE_NAME = "DeployedModelRef"
    endpoint: str
    deployed_model_id: str


class ModelGardenSource(WireModel):
    WIRE_NAME = "ModelGardenSource"
    public_model_name: str = Field(
        description="publishers/PUBLISHER/models/MODEL: the catalog model it was tuned from."
    )


class BaseModelSource(WireModel):
    WIRE_NAME = "BaseModelSource"
    model_garden_source: ModelGardenSource


class ExportFormat(WireModel):
    WIRE_NAME = "ModelExportFormat"
    id: str
    exportable_contents: list[str] = ["ARTIFACT"]


class GcsDestination(WireModel):
    WIRE_NAME = "GcsDestination"
    output_uri_prefix: str


class ExportOutputConfig(WireModel):
    WIRE_NAME = "ExportModelOutputConfig"
    export_format_id: str = ""
    artifact_destination: GcsDestination | None = None
    image_destination: dict[str, Any] | None = None


class ExportModelRequest(WireModel):
    WIRE_NAME = "ExportModelRequest"
    output_config: ExportOutputConfig | None = None


class Model(WireModel):
    WIRE_NAME = "Model"
    name: str
    display_name: str = ""
    description: str = ""
    version_id: str = "1"
    version_aliases: list[str] = ["default"]
    labels: dict[str, str] = {}
    artifact_uri: str | None = Field(default=None, description="The model folder (Hugging Face format).")
    create_time: str | None = None
    update_time: str | None = None
    version_create_time: str | None = None
    version_update_time: str | None = None
    supported_deployment_resources_types: list[str] = ["DEDICATED_RESOURCES"]
    deployed_models: list[DeployedModelRef] = []
    base_model_source: BaseModelSource | None = Field(
        default=None, description="The catalog model it was tuned from (serve it at publicModelName:generateContent)."
    )
    supported_export_formats: list[ExportFormat] = Field(
        default=[], description="What models.export writes: GGUF (gguf-f16, gguf-q8_0) for Llama-family bases."
    )


class ListModelsResponse(WireModel):
    WIRE_NAME = "ListModelsResponse"
    models: list[Model] = []
    next_page_token: str | None = None
