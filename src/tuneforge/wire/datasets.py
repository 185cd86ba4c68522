"""Dataset files in the bucket root (a tuneforge extension): uploaded through the API or named by a job."""

from __future__ import annotations

from pydantic import Field

from tuneforge.wire.base import WireModel
from tuneforge.wire.preview import ReportProblem


class DatasetFile(WireModel):
    WIRE_NAME = "DatasetFile"
    uri: str = Field(description="gs://BUCKET/path (under the server's bucket root).")
    purpose: str = Field(description="What it is for: as uploaded, or as the newest job that names it uses it.")
    uploaded: bool = Field(default=False, description="Uploaded through the API (the console's upload).")
    used_by: list[str] = Field(default=[], description="The jobs that name it (their resource names).")
    size_bytes: int | None = None
    create_time: str | None = None
    exists: bool = True
    format: str | None = Field(default=None, description="The detected JSONL flavour.")
    lines: int | None = None
    examples: int | None = None
    errors: int | None = None
    warnings: int | None = None


class ListDatasetFilesResponse(WireModel):
    WIRE_NAME = "ListDatasetFilesResponse"
    datasets: list[DatasetFile] = []


class InspectDatasetRequest(WireModel):
    WIRE_NAME = "InspectDatasetRequest"
    uri: str = Field(description="gs://BUCKET/path of the file.")
    purpose: str = Field(
        default="supervised",
        description="supervised, preference, distillation (tuningJobs) or code-generation, code-chat (pipelines)",
    )
    base_model: str | None = Field(default=None, description="Check token limits for this catalog model.")
    tuning_mode: str | None = Field(default=None, description="FULL or PEFT_ADAPTER (the limits differ).")


class DatasetReport(WireModel):
    WIRE_NAME = "DatasetReport"
    file: DatasetFile
    problems: list[ReportProblem] = []
    checked_against: str | None = Field(default=None, description="The limits the file was checked against.")
