"""Endpoint, DeployedModel and the requests that deploy to and undeploy from an endpoint, and Model Garden's deploy.

tuneforge serves every deployed model on its own hardware; the resources a client asks for are validated and
recorded as given.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, WithJsonSchema

from tuneforge.wire.base import (
    FIELD,
    Labels,
    String,
    WireModel,
    enum_parser,
    enum_schema,
    problem,
    whole_number,
)


class AcceleratorType(str, Enum):
    ACCELERATOR_TYPE_UNSPECIFIED = "ACCELERATOR_TYPE_UNSPECIFIED"
    NVIDIA_TESLA_K80 = "NVIDIA_TESLA_K80"
    NVIDIA_TESLA_P100 = "NVIDIA_TESLA_P100"
    NVIDIA_TESLA_V100 = "NVIDIA_TESLA_V100"
    NVIDIA_TESLA_P4 = "NVIDIA_TESLA_P4"
    NVIDIA_TESLA_T4 = "NVIDIA_TESLA_T4"
    TPU_V2 = "TPU_V2"
    TPU_V3 = "TPU_V3"
    NVIDIA_TESLA_A100 = "NVIDIA_TESLA_A100"
    NVIDIA_A100_80GB = "NVIDIA_A100_80GB"
    TPU_V4_POD = "TPU_V4_POD"
    NVIDIA_L4 = "NVIDIA_L4"
    TPU_V5_LITEPOD = "TPU_V5_LITEPOD"
    NVIDIA_H100_80GB = "NVIDIA_H100_80GB"
    NVIDIA_H100_MEGA_80GB = "NVIDIA_H100_MEGA_80GB"
    NVIDIA_H200_141GB = "NVIDIA_H200_141GB"
    NVIDIA_B200 = "NVIDIA_B200"
    NVIDIA_GB200 = "NVIDIA_GB200"
    NVIDIA_RTX_PRO_6000 = "NVIDIA_RTX_PRO_6000"


_ACCELERATOR_NUMBERS = dict(enumerate(AcceleratorType))
_NVIDIA = ", ".join(a.value for a in list(AcceleratorType)[1:])
AcceleratorTypeField = Annotated[
    AcceleratorType,
    BeforeValidator(
        enum_parser(
            AcceleratorType,
            _ACCELERATOR_NUMBERS,
            f"{FIELD} {{value}} is not an accelerator type; use one of {_NVIDIA} (or its number)",
        )
    ),
    WithJsonSchema(enum_schema(AcceleratorType, _ACCELERATOR_NUMBERS)),
]


def _whole(low: int, high: int) -> Any:
    def parse(value: Any) -> int:
        number = whole_number(value)
        if number is None or not low <= number <= high:
            raise problem(f"{FIELD} must be a whole number from {low} to {high}, got {value!r}")
        return number

    return parse


AcceleratorCount = Annotated[
    int, BeforeValidator(_whole(0, 16)), WithJsonSchema({"type": "integer", "minimum": 0, "maximum": 16})
]
ReplicaCount = Annotated[
    int, BeforeValidator(_whole(1, 1000)), WithJsonSchema({"type": "integer", "minimum": 1, "maximum": 1000})
]
Percent = Annotated[
    int, BeforeValidator(_whole(0, 100)), WithJsonSchema({"type": "integer", "minimum": 0, "maximum": 100})
]


class MachineSpec(WireModel):
    WIRE_NAME = "MachineSpec"
    machine_type: String | None = Field(default=None, description="Recorded, e.g. g2-standard-12.")
    accelerator_type: AcceleratorTypeField | None = None
    accelerator_count: AcceleratorCount | None = None
    gpu_partition_size: str | None = None
    tpu_topology: str | None = None
    reservation_affinity: dict[str, Any] | None = None


class DedicatedResources(WireModel):
    WIRE_NAME = "DedicatedResources"
    machine_spec: MachineSpec | None = None
    min_replica_count: ReplicaCount | None = None
    max_replica_count: ReplicaCount | None = None
    required_replica_count: int | None = None
    autoscaling_metric_specs: list[dict[str, Any]] | None = None
    spot: bool | None = None


class AutomaticResources(WireModel):
    WIRE_NAME = "AutomaticResources"
    min_replica_count: ReplicaCount | None = None
    max_replica_count: ReplicaCount | None = None


class DeployedModel(WireModel):
    WIRE_NAME = "DeployedModel"
    id: str | None = None
    model: str | None = Field(default=None, description="projects/…/models/ID (required to deploy).")
    model_version_id: str | None = None
    display_name: String | None = None
    create_time: str | None = None
    dedicated_resources: DedicatedResources | None = None
    automatic_resources: AutomaticResources | None = None
    shared_resources: str | None = None
    service_account: str | None = None
    disable_container_logging: bool | None = None
    enable_access_logging: bool | None = None
    disable_explanations: bool | None = None
    explanation_spec: dict[str, Any] | None = None
    private_endpoints: dict[str, Any] | None = None
    faster_deployment_config: dict[str, Any] | None = None
    system_labels: dict[str, str] | None = None
    checkpoint_id: str | None = None


class Endpoint(WireModel):
    WIRE_NAME = "Endpoint"
    name: str | None = None
    display_name: String | None = Field(default=None, description="Required to create an endpoint.")
    description: String | None = None
    labels: Labels = {}
    deployed_models: list[DeployedModel] = []
    traffic_split: dict[str, int] = {}
    create_time: str | None = None
    update_time: str | None = None
    etag: str | None = None
    encryption_spec: dict[str, Any] | None = None
    network: str | None = None
    enable_private_service_connect: bool | None = None
    private_service_connect_config: dict[str, Any] | None = None
    dedicated_endpoint_enabled: bool | None = None
    predict_request_response_logging_config: dict[str, Any] | None = None
    client_connection_config: dict[str, Any] | None = None


class ListEndpointsResponse(WireModel):
    WIRE_NAME = "ListEndpointsResponse"
    endpoints: list[Endpoint] = []
    next_page_token: str | None = None


class DeployModelRequest(WireModel):
    WIRE_NAME = "DeployModelRequest"
    deployed_model: DeployedModel | None = None
    traffic_split: dict[str, Percent] | None = Field(
        default=None, description='Deployed model id -> percent ("0" is the model being deployed); must add up to 100.'
    )


class UndeployModelRequest(WireModel):
    WIRE_NAME = "UndeployModelRequest"
    deployed_model_id: String | None = None
    traffic_split: dict[str, Percent] | None = None


class CustomModel(WireModel):
    WIRE_NAME = "DeployRequest.CustomModel"
    gcs_uri: String | None = None


class ModelConfig(WireModel):
    WIRE_NAME = "DeployRequest.ModelConfig"
    model_display_name: String | None = None
    accept_eula: bool | None = None
    hugging_face_access_token: str | None = None
    hugging_face_cache_enabled: bool | None = None
    container_spec: dict[str, Any] | None = None
    model_user_id: str | None = None


class EndpointConfig(WireModel):
    WIRE_NAME = "DeployRequest.EndpointConfig"
    endpoint_display_name: String | None = None
    dedicated_endpoint_enabled: bool | None = None
    dedicated_endpoint_disabled: bool | None = None
    private_service_connect_config: dict[str, Any] | None = None
    endpoint_user_id: str | None = None


class DeployConfig(WireModel):
    WIRE_NAME = "DeployRequest.DeployConfig"
    dedicated_resources: DedicatedResources | None = None
    fast_tryout_enabled: bool | None = None
    system_labels: dict[str, str] | None = None


class DeployRequest(WireModel):
    """Model Garden ``:deploy`` (v1beta1): custom weights at a gs:// URI become a model on a new endpoint."""

    WIRE_NAME = "DeployRequest"
    custom_model: CustomModel | None = None
    publisher_model_name: str | None = None
    hugging_face_model_id: str | None = None
    destination: str | None = None
    model_config_: ModelConfig | None = Field(default=None, alias="modelConfig")
    endpoint_config: EndpointConfig | None = None
    deploy_config: DeployConfig | None = None
