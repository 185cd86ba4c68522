"""What a job would do, before it is created (a tuneforge extension: ``tuningJobs:preview``, ``pipelineJobs:preview``).

The console's create forms show it: the datasets' line-numbered report, the run's resolved plan, the data statistics
the job will report, the tokens it trains on and an estimated duration on this server (from measured throughput).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from tuneforge.wire.base import WireModel
from tuneforge.wire.tuning import TuningDataStats


class ReportProblem(WireModel):
    WIRE_NAME = "ReportProblem"
    severity: str = Field(description="error or warning")
    message: str = Field(description="What is wrong and how to fix it.")
    line: int | None = Field(default=None, description="1-based line of the file.")
    path: str | None = Field(default=None, description="JSON path inside the line, e.g. messages[1].role.")
    source: str | None = Field(default=None, description="The file (or parameter) the problem belongs to.")


class DatasetSummary(WireModel):
    WIRE_NAME = "DatasetSummary"
    uri: str
    role: str = Field(description="training, validation or evaluation")
    format: str | None = Field(default=None, description="The detected JSONL flavour (messages, contents, …).")
    lines: int | None = None
    examples: int | None = None


class Estimate(WireModel):
    WIRE_NAME = "Estimate"
    seconds: float = Field(description="Start-up and export plus the trained tokens at the measured rate.")
    tokens_per_second: float
    overhead_seconds: float = Field(description="Median time a measured job spent outside optimizer steps.")
    jobs: int = Field(description="How many finished jobs on this server the figures come from.")
    basis: str = Field(description="Which jobs were measured, in words.")


class JobPreview(WireModel):
    WIRE_NAME = "JobPreview"
    ready: bool = Field(description="True when the job can be created as it is (the datasets have no errors).")
    problems: list[ReportProblem] = Field(default=[], description="Every error and warning of the datasets.")
    datasets: list[DatasetSummary] = []
    runs_on: str | None = Field(default=None, description="The catalog model the job runs on.")
    stand_in: bool = Field(default=False, description="Dev mode: a tiny stand-in runs instead of real weights.")
    note: str | None = None
    plan: dict[str, Any] | None = Field(
        default=None, description="The run's resolved plan: steps, epochs, batch size, learning rate, adapter size…"
    )
    tuning_data_stats: TuningDataStats | None = None
    examples: int | None = None
    trained_tokens: int | None = Field(default=None, description="Tokens the run trains on (examples x epochs).")
    estimate: Estimate | None = None
    estimate_note: str | None = Field(default=None, description="Why there is no estimate, when there is none.")
