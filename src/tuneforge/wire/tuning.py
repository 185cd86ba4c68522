"""TuningJob (Vertex ``tuningJobs``): the request a client creates and the resource it reads back."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, WithJsonSchema

from tuneforge.wire.base import (
    FIELD,
    Count,
    Int64,
    Labels,
    PositiveNumber,
    String,
    WireModel,
    enum_parser,
    enum_schema,
)
from tuneforge.wire.content import Content
from tuneforge.wire.status import Status


class TuningMode(str, Enum):
    TUNING_MODE_UNSPECIFIED = "TUNING_MODE_UNSPECIFIED"
    TUNING_MODE_FULL = "TUNING_MODE_FULL"
    TUNING_MODE_PEFT_ADAPTER = "TUNING_MODE_PEFT_ADAPTER"


class AdapterSize(str, Enum):
    ADAPTER_SIZE_UNSPECIFIED = "ADAPTER_SIZE_UNSPECIFIED"
    ADAPTER_SIZE_ONE = "ADAPTER_SIZE_ONE"
    ADAPTER_SIZE_TWO = "ADAPTER_SIZE_TWO"
    ADAPTER_SIZE_FOUR = "ADAPTER_SIZE_FOUR"
    ADAPTER_SIZE_EIGHT = "ADAPTER_SIZE_EIGHT"
    ADAPTER_SIZE_SIXTEEN = "ADAPTER_SIZE_SIXTEEN"
    ADAPTER_SIZE_THIRTY_TWO = "ADAPTER_SIZE_THIRTY_TWO"

    @property
    def rank(self) -> int | None:
        """The LoRA rank (None: the model's default)."""
        return ADAPTER_RANKS[self]


ADAPTER_RANKS = {
    AdapterSize.ADAPTER_SIZE_UNSPECIFIED: None,
    AdapterSize.ADAPTER_SIZE_ONE: 1,
    AdapterSize.ADAPTER_SIZE_TWO: 2,
    AdapterSize.ADAPTER_SIZE_FOUR: 4,
    AdapterSize.ADAPTER_SIZE_EIGHT: 8,
    AdapterSize.ADAPTER_SIZE_SIXTEEN: 16,
    AdapterSize.ADAPTER_SIZE_THIRTY_TWO: 32,
}
_ADAPTER_NUMBERS = {
    0: AdapterSize.ADAPTER_SIZE_UNSPECIFIED,
    1: AdapterSize.ADAPTER_SIZE_ONE,
    2: AdapterSize.ADAPTER_SIZE_FOUR,
    3: AdapterSize.ADAPTER_SIZE_EIGHT,
    4: AdapterSize.ADAPTER_SIZE_SIXTEEN,
    5: AdapterSize.ADAPTER_SIZE_THIRTY_TWO,
    6: AdapterSize.ADAPTER_SIZE_TWO,
}
_MODE_NUMBERS = {
    0: TuningMode.TUNING_MODE_UNSPECIFIED,
    1: TuningMode.TUNING_MODE_FULL,
    2: TuningMode.TUNING_MODE_PEFT_ADAPTER,
}
_MODE_WORDS = {
    "full": TuningMode.TUNING_MODE_FULL,
    "peft_adapter": TuningMode.TUNING_MODE_PEFT_ADAPTER,
    "lora": TuningMode.TUNING_MODE_PEFT_ADAPTER,
    "tuning_mode_full": TuningMode.TUNING_MODE_FULL,
    "tuning_mode_peft_adapter": TuningMode.TUNING_MODE_PEFT_ADAPTER,
}

AdapterSizeField = Annotated[
    AdapterSize,
    BeforeValidator(
        enum_parser(
            AdapterSize,
            _ADAPTER_NUMBERS,
            # The numbers are the proto's, as the official SDK sends them (enum-encoding=int); they are not ranks.
            f"{FIELD} must be one of ADAPTER_SIZE_ONE, _TWO, _FOUR, _EIGHT, _SIXTEEN, _THIRTY_TWO, or the proto's enum "
            "numbers (1 ONE, 6 TWO, 2 FOUR, 3 EIGHT, 4 SIXTEEN, 5 THIRTY_TWO; not ranks); got {value}",
        )
    ),
    WithJsonSchema(enum_schema(AdapterSize, _ADAPTER_NUMBERS)),
]
TuningModeField = Annotated[
    TuningMode,
    BeforeValidator(
        enum_parser(
            TuningMode,
            _MODE_NUMBERS,
            f"{FIELD} must be TUNING_MODE_FULL (1) or TUNING_MODE_PEFT_ADAPTER (2); got {{value}}",
            aliases=lambda v: _MODE_WORDS.get(v.strip().lower()),
        )
    ),
    WithJsonSchema(enum_schema(TuningMode, _MODE_NUMBERS)),
]


class SupervisedHyperParameters(WireModel):
    WIRE_NAME = "SupervisedHyperParameters"
    epoch_count: Count | None = Field(default=None, description="Passes over the training data.")
    learning_rate: PositiveNumber | None = Field(default=None, description="Absolute learning rate.")
    learning_rate_multiplier: PositiveNumber | None = Field(
        default=None, description="Multiplies the model's recommended learning rate."
    )
    adapter_size: AdapterSizeField | None = Field(default=None, description="LoRA rank (PEFT_ADAPTER only).")
    batch_size: Count | None = Field(default=None, description="Examples per optimizer step.")
    tune_vision_tower: bool | None = Field(
        default=None,
        description="A tuneforge extension for image-text open models: adapt the vision tower and projector too "
        "(frozen by default).",
    )
    tune_experts: bool | None = Field(
        default=None,
        description="A tuneforge extension for mixture-of-experts open models (Llama 4): adapt the routed experts "
        "too (default: yes).",
    )


EVALUATION_CONFIG = Field(
    default=None,
    description="Gen AI evaluation during tuning: not supported (a 400 says so); validation metrics come from "
    "validationDatasetUri.",
)
EXPORT_LAST = Field(default=None, description="Recorded; the final model is the one checkpoint exported.")


class SupervisedTuningSpec(WireModel):
    WIRE_NAME = "SupervisedTuningSpec"
    training_dataset_uri: String | None = Field(default=None, description="gs:// JSONL file (required).")
    validation_dataset_uri: String | None = None
    hyper_parameters: SupervisedHyperParameters | None = None
    tuning_mode: TuningModeField | None = None
    export_last_checkpoint_only: bool | None = EXPORT_LAST
    evaluation_config: dict[str, Any] | None = EVALUATION_CONFIG


class PreferenceOptimizationHyperParameters(WireModel):
    WIRE_NAME = "PreferenceOptimizationHyperParameters"
    epoch_count: Count | None = Field(default=None, description="Passes over the training data.")
    learning_rate_multiplier: PositiveNumber | None = Field(
        default=None, description="Multiplies the model's recommended preference-tuning learning rate."
    )
    adapter_size: AdapterSizeField | None = Field(default=None, description="LoRA rank (PEFT_ADAPTER only).")
    beta: PositiveNumber | None = Field(default=None, description="DPO's beta (default 0.1).")


class PreferenceOptimizationSpec(WireModel):
    """Preference tuning (DPO): lines with contents ending with a user turn and two scored completions."""

    WIRE_NAME = "PreferenceOptimizationSpec"
    training_dataset_uri: String | None = Field(default=None, description="gs:// JSONL file (required).")
    validation_dataset_uri: String | None = None
    hyper_parameters: PreferenceOptimizationHyperParameters | None = None
    tuning_mode: TuningModeField | None = Field(
        default=None, description="A tuneforge extension for open models: FULL or PEFT_ADAPTER (default: adapters)."
    )
    export_last_checkpoint_only: bool | None = EXPORT_LAST
    evaluation_config: dict[str, Any] | None = EVALUATION_CONFIG


class DistillationHyperParameters(WireModel):
    WIRE_NAME = "DistillationHyperParameters"
    epoch_count: Count | None = None
    learning_rate_multiplier: PositiveNumber | None = None
    adapter_size: AdapterSizeField | None = None
    batch_size: Count | None = None
    learning_rate: PositiveNumber | None = None
    sft_loss_weight_multiplier: PositiveNumber | None = Field(
        default=None,
        description="Weight of the student's loss on the teacher's rationales against its loss on the labels "
        "(distillation step by step's lambda; default 1).",
    )


class DistillationSpec(WireModel):
    """Distillation: a teacher labels (and explains) the prompts; the student learns from them."""

    WIRE_NAME = "DistillationSpec"
    base_teacher_model: String | None = Field(default=None, description="Catalog id of the teacher.")
    tuned_teacher_model_source: String | None = Field(
        default=None, description="A tuned model as teacher: projects/…/models/ID."
    )
    training_dataset_uri: String | None = Field(default=None, description="Labelled examples (gs:// JSONL).")
    prompt_dataset_uri: String | None = Field(default=None, description="Unlabelled prompts the teacher labels.")
    validation_dataset_uri: String | None = None
    hyper_parameters: DistillationHyperParameters | None = None
    student_model: String | None = Field(default=None, description="The student (default: baseModel).")
    pipeline_root_directory: String | None = None
    tuning_mode: TuningModeField | None = None
    export_last_checkpoint_only: bool | None = EXPORT_LAST
    evaluation_config: dict[str, Any] | None = EVALUATION_CONFIG


class EncryptionSpec(WireModel):
    WIRE_NAME = "EncryptionSpec"
    kms_key_name: String | None = None


class PreTunedModel(WireModel):
    WIRE_NAME = "PreTunedModel"
    tuned_model_name: String | None = None
    checkpoint_id: String | None = None
    base_model: String | None = None


class TunedModelCheckpoint(WireModel):
    WIRE_NAME = "TunedModelCheckpoint"
    checkpoint_id: str
    epoch: Int64
    step: Int64
    endpoint: str | None = None


class TunedModel(WireModel):
    WIRE_NAME = "TunedModel"
    model: str = Field(description="The registry model: projects/…/models/ID@1.")
    endpoint: str | None = Field(default=None, description="The endpoint serving it (auto-deploy).")
    checkpoints: list[TunedModelCheckpoint] = []


class DatasetBucket(WireModel):
    WIRE_NAME = "SupervisedTuningDatasetDistribution.DatasetBucket"
    count: float
    left: float
    right: float


class Distribution(WireModel):
    """DatasetDistribution: a per-example figure's sum and spread."""

    WIRE_NAME = "DatasetDistribution"
    sum: float
    min: float
    max: float
    mean: float
    median: float
    p5: float
    p95: float
    buckets: list[DatasetBucket] = []


class DatasetDistribution(Distribution):
    """SupervisedTuningDatasetDistribution: the same, with int64 sums and the billable sum."""

    WIRE_NAME = "SupervisedTuningDatasetDistribution"
    sum: Int64
    billable_sum: Int64


class SupervisedTuningDataStats(WireModel):
    WIRE_NAME = "SupervisedTuningDataStats"
    tuning_dataset_example_count: Int64
    total_tuning_character_count: Int64
    total_billable_character_count: Int64
    total_billable_token_count: Int64
    tuning_step_count: Int64
    user_input_token_distribution: DatasetDistribution
    user_output_token_distribution: DatasetDistribution
    user_message_per_example_distribution: DatasetDistribution
    user_dataset_examples: list[Content] = Field(default=[], description="Messages of the first examples.")
    total_truncated_example_count: Int64
    truncated_example_indices: list[Int64] = []
    dropped_example_reasons: list[str] = []
    user_image_per_example_distribution: DatasetDistribution | None = Field(
        default=None,
        description="Images per example, for datasets with images (a tuneforge extension: Vertex's proto has no "
        "such field; the official SDKs ignore it).",
    )


class PreferenceCompletion(WireModel):
    WIRE_NAME = "GeminiPreferenceExample.Completion"
    completion: Content
    score: float


class PreferenceExample(WireModel):
    WIRE_NAME = "GeminiPreferenceExample"
    contents: list[Content] = []
    completions: list[PreferenceCompletion] = []


class PreferenceOptimizationDataStats(WireModel):
    WIRE_NAME = "PreferenceOptimizationDataStats"
    tuning_dataset_example_count: Int64
    total_billable_token_count: Int64
    tuning_step_count: Int64
    user_input_token_distribution: Distribution
    user_output_token_distribution: Distribution
    scores_distribution: Distribution
    score_variance_per_example_distribution: Distribution
    user_dataset_examples: list[PreferenceExample] = []
    dropped_example_indices: list[Int64] = []
    dropped_example_reasons: list[str] = []


class DatasetStats(WireModel):
    """A distillation job's prompt dataset as the student trains on it (the teacher's labels and rationales)."""

    WIRE_NAME = "DatasetStats"
    tuning_dataset_example_count: Int64 = Field(description="Prompts in the dataset.")
    total_tuning_character_count: Int64
    total_billable_character_count: Int64
    tuning_step_count: Int64
    user_input_token_distribution: Distribution
    user_output_token_distribution: Distribution
    user_message_per_example_distribution: Distribution
    user_dataset_examples: list[Content] = []
    dropped_example_indices: list[Int64] = Field(
        default=[], description="Prompts the teacher gave no readable answer for (0-based)."
    )
    dropped_example_reasons: list[str] = []


class DistillationDataStats(WireModel):
    WIRE_NAME = "DistillationDataStats"
    training_dataset_stats: DatasetStats


class TuningDataStats(WireModel):
    WIRE_NAME = "TuningDataStats"
    supervised_tuning_data_stats: SupervisedTuningDataStats | None = None
    preference_optimization_data_stats: PreferenceOptimizationDataStats | None = None
    distillation_data_stats: DistillationDataStats | None = None


class TuningJob(WireModel):
    """A tuning job. Clients set the request fields; the server sets name, state, times, error, tunedModel and
    tuningDataStats (output only: accepted on create and ignored)."""

    WIRE_NAME = "TuningJob"
    base_model: String | None = Field(
        default=None, description="Catalog id (meta/llama3_1@llama-3.1-8b, gemini-2.0-flash-001, …)."
    )
    pre_tuned_model: PreTunedModel | None = Field(
        default=None, description="Continue tuning a tuned model (projects/…/models/ID) from one of its checkpoints."
    )
    supervised_tuning_spec: SupervisedTuningSpec | None = None
    preference_optimization_spec: PreferenceOptimizationSpec | None = None
    distillation_spec: DistillationSpec | None = None
    reinforcement_tuning_spec: dict[str, Any] | None = Field(
        default=None,
        description="Only hyperParameters.evaluateInterval and .checkpointInterval (google-genai sends them here for "
        "every method) are taken; reinforcement tuning itself is not supported (a 400 says so).",
    )
    tuned_model_display_name: String | None = None
    description: String | None = None
    custom_base_model: String | None = Field(
        default=None, description="gs:// folder with weights of the same architecture, or an earlier run's output."
    )
    labels: Labels = {}
    output_uri: String | None = Field(default=None, description="Where the run writes its artifacts.")
    service_account: String | None = None
    encryption_spec: EncryptionSpec | None = None
    pipeline_job: String | None = None
    # Output only.
    name: String | None = None
    state: String | None = None
    experiment: String | None = Field(default=None, description="Never set (the SDK breaks on it).")
    create_time: str | None = None
    update_time: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    error: Status | None = None
    tuned_model: TunedModel | None = None
    tuning_data_stats: TuningDataStats | None = None


OUTPUT_ONLY = (
    "name",
    "state",
    "experiment",
    "create_time",
    "update_time",
    "start_time",
    "end_time",
    "error",
    "tuned_model",
    "tuning_data_stats",
)


class ListTuningJobsResponse(WireModel):
    WIRE_NAME = "ListTuningJobsResponse"
    tuning_jobs: list[TuningJob] = []
    next_page_token: str | None = None


class CancelResponse(WireModel):
    """What a :cancel answers: google.protobuf.Empty."""

    WIRE_NAME = "Empty"


class Metric(WireModel):
    WIRE_NAME = "Metric"
    step: int
    name: str = Field(description="train_total_loss, train_fraction_of_correct_next_step_preds, eval_total_loss, …")
    value: float


class Progress(WireModel):
    WIRE_NAME = "Progress"
    step: int = 0
    total_steps: int | None = None
    tokens_per_second: float | None = None
    train_tokens: float | None = Field(default=None, description="Tokens trained so far.")
    train_seconds: float | None = Field(default=None, description="Seconds spent in optimizer steps so far.")
    plan: dict[str, Any] | None = Field(
        default=None, description="The run's resolved plan: steps, epochs, batch size, learning rate, adapter size…"
    )


class JobMetrics(WireModel):
    """A tuning job's metrics after a step, and its progress (a tuneforge extension: the CLI follows jobs by it)."""

    WIRE_NAME = "JobMetrics"
    metrics: list[Metric] = []
    progress: Progress
