"""PipelineJob (Vertex ``pipelineJobs``): code-model tuning and distillation, with their task details."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from tuneforge.wire.base import FIELD, Labels, PositiveNumber, String, WireModel, integer, problem
from tuneforge.wire.status import Status
from tuneforge.wire.tuning import EncryptionSpec


class RuntimeConfig(WireModel):
    WIRE_NAME = "PipelineJob.RuntimeConfig"
    parameter_values: dict[str, Any] = Field(
        default={},
        description="The pipeline's parameters (a Struct: names "
        "as the pipeline spells them, e.g. large_model_reference).",
    )
    gcs_output_directory: String | None = None
    parameters: dict[str, Any] | None = Field(default=None, description="Deprecated; use parameterValues.")
    failure_policy: str | None = None
    input_artifacts: dict[str, Any] | None = None


class Execution(WireModel):
    WIRE_NAME = "Execution"
    schema_title: str
    state: str
    metadata: dict[str, Any] = Field(default={}, description="The task's outputs as output:NAME, and its progress.")


class PipelineTaskDetail(WireModel):
    WIRE_NAME = "PipelineTaskDetail"
    task_id: str
    parent_task_id: str | None = None
    task_name: str
    state: str = Field(description="PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED, SKIPPED or NOT_TRIGGERED.")
    create_time: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    execution: Execution | None = None
    error: Status | None = None


class Context(WireModel):
    WIRE_NAME = "Context"
    name: str


class PipelineJobDetail(WireModel):
    WIRE_NAME = "PipelineJobDetail"
    pipeline_context: Context
    pipeline_run_context: Context
    task_details: list[PipelineTaskDetail] = []


class TemplateMetadata(WireModel):
    WIRE_NAME = "PipelineTemplateMetadata"
    version: str


class PipelineJob(WireModel):
    """A pipeline run. tuneforge identifies the pipeline by ``templateUri``; the ``pipelineSpec`` the SDK sends is
    accepted and not used."""

    WIRE_NAME = "PipelineJob"
    display_name: String | None = None
    template_uri: String | None = Field(default=None, description="https://us-kfp.pkg.dev/ml-pipeline/… (required).")
    runtime_config: RuntimeConfig | None = None
    labels: Labels = {}
    encryption_spec: EncryptionSpec | None = None
    service_account: String | None = None
    network: String | None = None
    pipeline_spec: dict[str, Any] | None = None
    reserved_ip_ranges: list[str] | None = None
    psc_interface_config: dict[str, Any] | None = None
    schedule_name: str | None = None
    preflight_validations: bool | None = None
    template_metadata: TemplateMetadata | None = None
    # Output only.
    name: str | None = None
    state: str | None = None
    create_time: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    update_time: str | None = None
    error: Status | None = None
    job_detail: PipelineJobDetail | None = None


class ListPipelineJobsResponse(WireModel):
    WIRE_NAME = "ListPipelineJobsResponse"
    pipeline_jobs: list[PipelineJob] = []
    next_page_token: str | None = None


# -- the pipelines' parameters (runtimeConfig.parameterValues, a Struct: names as the pipelines spell them) ----------


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise problem(f"{FIELD} must be a non-empty string (got {value!r})")
    return value


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise problem(f"{FIELD} must be true or false (got {value!r})")


def _tri(value: Any) -> str:
    text = str(value).lower() if isinstance(value, (str, bool)) else None
    if text not in ("true", "false", "default"):
        raise problem(f'{FIELD} must be "true", "false" or "default" (got {value!r})')
    return text


def _one_of(*choices: str) -> Any:
    def check(value: Any) -> str:
        if value not in choices:
            raise problem(f"{FIELD} must be " + " or ".join(f'"{c}"' for c in choices) + f" (got {value!r})")
        return str(value)

    return check


Text = Annotated[str, BeforeValidator(_text)]
Boolean = Annotated[
    bool, BeforeValidator(_boolean), WithJsonSchema({"anyOf": [{"type": "boolean"}, {"enum": ["true", "false"]}]})
]
Steps = Annotated[
    int,
    BeforeValidator(lambda v: integer(v, 1)),
    WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 1}, {"type": "string"}]}),
]


class PipelineParameters(BaseModel):
    """Every parameter of the pipelines tuneforge runs (SPEC §3.5, §5.4; contract §5.3), quoted numbers and booleans
    read as such (SPEC §8 P1). Which ones a pipeline takes, and which it needs, is the service's to check."""

    model_config = ConfigDict(extra="allow")

    project: Text | None = None
    location: Text | None = None
    dataset_uri: Text | None = None
    dataset_name: Text | None = None
    model_display_name: Text | None = None
    train_steps: Steps | None = None
    learning_rate: PositiveNumber | None = None
    learning_rate_multiplier: PositiveNumber | None = None
    evaluation_data_uri: Text | None = None
    evaluation_interval: Steps | None = None
    enable_early_stopping: Boolean | None = None
    enable_checkpoint_selection: Annotated[Literal["true", "false", "default"], BeforeValidator(_tri)] | None = None
    tensorboard_resource_id: Text | None = None
    accelerator_type: Annotated[Literal["GPU", "TPU"], BeforeValidator(_one_of("GPU", "TPU"))] | None = None
    max_context_length: Annotated[Literal["8k", "32k"], BeforeValidator(_one_of("8k", "32k"))] | None = None
    encryption_spec_key_name: Text | None = None
    large_model_reference: Text | None = None
    default_context: Text | None = None
    teacher_model_reference: Text | None = None
    student_model_reference: Text | None = None
