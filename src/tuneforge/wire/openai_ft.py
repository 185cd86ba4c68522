"""OpenAI's fine-tuning API shapes, as the ``openai`` Python client (3.x) sends and reads them: files (``/v1/files``),
fine-tuning jobs and their events (``/v1/fine_tuning/jobs``), and the error body those routes answer with.

Snake-case names and Unix-second times, as OpenAI has them; what the client does not read is left out.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema

from tuneforge.wire.base import problem

FILE_PURPOSES = ("fine-tune", "fine-tune-results", "batch", "batch_output", "assistants", "vision", "user_data")
FilePurpose = Literal["fine-tune", "fine-tune-results", "batch", "batch_output", "assistants", "vision", "user_data"]


class FileObject(BaseModel):
    id: str = Field(description="file-… (a tuneforge id, unique across projects).")
    object: Literal["file"] = "file"
    bytes: int
    created_at: int = Field(description="Unix seconds.")
    filename: str
    purpose: FilePurpose
    status: Literal["uploaded", "processed", "error"] = "processed"
    status_details: str | None = None
    expires_at: int | None = None


class CursorList(BaseModel):
    """A page of OpenAI's cursor lists: the items, the ids at either end (the next page is ``after=last_id``)."""

    object: Literal["list"] = "list"
    data: list[Any]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False

    @classmethod
    def page(cls, items: list[Any], has_more: bool) -> Self:
        ends = {"first_id": items[0].id, "last_id": items[-1].id} if items else {}
        return cls(data=items, has_more=has_more, **ends)


class FileList(CursorList):
    data: list[FileObject]


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True


class OpenAIError(BaseModel):
    message: str
    type: str = Field(description="invalid_request_error, authentication_error, permission_error, … server_error.")
    param: str | None = Field(default=None, description="The request field at fault, when one is.")
    code: str | None = None


class OpenAIErrorBody(BaseModel):
    error: OpenAIError


# -- fine-tuning jobs ----------------------------------------------------------------------------------------------
Auto = Literal["auto"]
JobStatus = Literal["validating_files", "queued", "running", "pausing", "paused", "succeeded", "failed", "cancelled"]


def _auto_or_number(integer: bool, low: float, high: float, low_open: bool = False) -> PlainValidator:
    """A hyper-parameter: "auto" or a number in [low, high] (``low_open``: over low), one clear message if not."""
    kind = "an integer" if integer else "a number"
    bounds = f"over {low:g} and at most {high:g}" if low_open else f"from {low:g} to {high:g}"

    def check(value: Any) -> Any:
        if value is None or value == "auto":
            return value
        number = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        if (
            number is None
            or (integer and not number.is_integer())
            or not low <= number <= high
            or (low_open and number == low)
        ):
            raise problem(f'{{field}} must be "auto" or {kind} {bounds}; got {value!r}')
        return int(number) if integer else number

    return PlainValidator(check, json_schema_input_type=int | float | str | None)


_INT = WithJsonSchema({"anyOf": [{"type": "integer"}, {"const": "auto"}]})
_NUMBER = WithJsonSchema({"anyOf": [{"type": "number"}, {"const": "auto"}]})


class Hyperparameters(BaseModel):
    """Each a number or "auto" (the catalog's value, shown resolved on the job once it is known)."""

    model_config = ConfigDict(extra="forbid")
    n_epochs: Annotated[int | Auto | None, _auto_or_number(True, 1, 50), _INT] = Field(
        default=None, description="Passes over the training file."
    )
    batch_size: Annotated[int | Auto | None, _auto_or_number(True, 1, 256), _INT] = Field(
        default=None, description="Examples per optimizer step."
    )
    learning_rate_multiplier: Annotated[float | Auto | None, _auto_or_number(False, 0, 10, True), _NUMBER] = Field(
        default=None, description="Multiplies the model's recommended learning rate."
    )
    beta: Annotated[float | Auto | None, _auto_or_number(False, 0, 2, True), _NUMBER] = Field(
        default=None, description="DPO only: how far the model may move (default 0.1)."
    )


class MethodConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hyperparameters: Hyperparameters | None = None


class Method(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str = Field(description="supervised or dpo (reinforcement is refused).")
    supervised: MethodConfig | None = None
    dpo: MethodConfig | None = None
    reinforcement: dict[str, Any] | None = None


class CreateFineTuningJob(BaseModel):
    """``client.fine_tuning.jobs.create(...)``."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(description="A catalog id, or an OpenAI id the operator maps to an open model.")
    training_file: str = Field(description="The id of a file uploaded with purpose fine-tune.")
    validation_file: str | None = None
    suffix: str | None = Field(default=None, max_length=64, description="Up to 64 characters, in the model's name.")
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    metadata: dict[str, str] | None = Field(default=None, description="Up to 16 pairs; keys 64, values 512 chars.")
    method: Method | None = None
    hyperparameters: Hyperparameters | None = Field(default=None, description="Legacy: the supervised method's.")
    integrations: list[dict[str, Any]] | None = None


class JobError(BaseModel):
    code: str
    message: str
    param: str | None = None


class FineTuningJob(BaseModel):
    id: str
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    created_at: int
    finished_at: int | None = None
    error: JobError | None = None
    fine_tuned_model: str | None = None
    hyperparameters: Hyperparameters
    model: str
    organization_id: str = Field(description="The project.")
    result_files: list[str] = []
    seed: int
    status: JobStatus
    trained_tokens: int | None = None
    training_file: str
    validation_file: str | None = None
    estimated_finish: int | None = None
    integrations: list[dict[str, Any]] = []
    metadata: dict[str, str] | None = None
    method: Method
    user_provided_suffix: str | None = None


class FineTuningJobList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuningJob]
    has_more: bool = False


class FineTuningJobEvent(BaseModel):
    id: str
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    created_at: int
    level: Literal["info", "warn", "error"]
    message: str
    type: Literal["message", "metrics"] = "message"
    data: dict[str, Any] | None = None


class FineTuningJobEventList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuningJobEvent]
    has_more: bool = False


class ModelDeleted(BaseModel):
    id: str
    object: Literal["model"] = "model"
    deleted: bool = True


class CheckpointMetrics(BaseModel):
    step: float | None = None
    train_loss: float | None = None
    train_mean_token_accuracy: float | None = None
    valid_loss: float | None = None
    valid_mean_token_accuracy: float | None = None
    full_valid_loss: float | None = None
    full_valid_mean_token_accuracy: float | None = None


class FineTuningJobCheckpoint(BaseModel):
    id: str
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"
    created_at: int
    fine_tuned_model_checkpoint: str = Field(description="ft:…:ckpt-step-N: a model id chat takes.")
    fine_tuning_job_id: str
    metrics: CheckpointMetrics
    step_number: int


class CheckpointList(CursorList):
    data: list[FineTuningJobCheckpoint]
