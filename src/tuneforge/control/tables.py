"""Job store tables (SQLAlchemy 2). The schema is created and upgraded by Alembic (jobs/migrations)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    """Numeric ids like Vertex's (int64), never starting with 0."""
    return str(secrets.randbelow(9 * 10**17) + 10**17)


class Base(DeclarativeBase):
    pass


def release(row: Any, state: str) -> None:
    """A job row (tuning or pipeline) leaves its worker for ``state`` without its run counting as an attempt: a pause,
    a resume that came while pausing, or a worker's own shutdown is no crash (``max_attempts`` counts crashes)."""
    row.state, row.worker_id, row.attempts = state, None, max(0, row.attempts - 1)


class TuningJobRow(Base):
    """A tuning run: the stored TuningJob resource plus what the worker needs to run and recover it."""

    __tablename__ = "tuning_jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project: Mapped[str] = mapped_column(String(128), index=True)
    location: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(40), index=True)
    resource: Mapped[dict[str, Any]] = mapped_column(JSON)  # the TuningJob as requested (camelCase echo)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)  # the TuningConfig the engine runs
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    display_name: Mapped[str] = mapped_column(String(256), default="")
    base_model: Mapped[str] = mapped_column(String(256), default="")
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    update_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    start_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    end_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    tuned_model: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    data_stats: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    pause_requested: Mapped[bool] = mapped_column(Boolean, default=False)  # stop at the next step, then PAUSED
    worker_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    heartbeat_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # step, total steps, last metrics

    __table_args__ = (Index("ix_tuning_jobs_project_state", "project", "state"),)


class MetricRow(Base):
    """One metric value of a job at a step (documented names: train_total_loss, eval_…)."""

    __tablename__ = "job_metrics"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(32), ForeignKey("tuning_jobs.id", ondelete="CASCADE"), index=True)
    step: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(96))
    value: Mapped[float] = mapped_column(Float)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ModelRow(Base):
    """A registry model (the output of a successful run)."""

    __tablename__ = "models"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project: Mapped[str] = mapped_column(String(128), index=True)
    location: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer, default=1)
    display_name: Mapped[str] = mapped_column(String(256), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    artifact_uri: Mapped[str] = mapped_column(Text)
    base_model: Mapped[str] = mapped_column(String(256), default="")
    kind: Mapped[str] = mapped_column(String(16), default="full")  # full | lora
    job_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    update_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PipelineJobRow(Base):
    """A pipelineJobs resource (code-model tuning, distillation): the echo of the request plus state and tasks."""

    __tablename__ = "pipeline_jobs"
    __table_args__ = (UniqueConstraint("project", "location", "pipeline_job_id", name="uq_pipeline_job_id"),)

    id: Mapped[str] = mapped_column(String(128), primary_key=True)  # internal (workers, events); never shown
    pipeline_job_id: Mapped[str] = mapped_column(String(128))  # the resource's id: pipelineJobId, per project
    project: Mapped[str] = mapped_column(String(128), index=True)
    location: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(40), index=True)
    template: Mapped[str] = mapped_column(String(64))  # tune-large-model | tune-large-chat-model | distillation
    resource: Mapped[dict[str, Any]] = mapped_column(JSON)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)  # coerced parameterValues
    tasks: Mapped[list[Any]] = mapped_column(JSON)  # PipelineTaskDetail list
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    update_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    start_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    end_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    worker_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    heartbeat_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class EndpointRow(Base):
    __tablename__ = "endpoints"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project: Mapped[str] = mapped_column(String(128), index=True)
    location: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str] = mapped_column(String(256), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    deployed_models: Mapped[list[Any]] = mapped_column(JSON, default=list)
    traffic_split: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    update_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DeployedModelRow(Base):
    """A model deployed on an endpoint. ``state``: DEPLOYING (its operation is loading it), DEPLOYED."""

    __tablename__ = "deployed_models"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(String(32), index=True)
    model_id: Mapped[str] = mapped_column(String(32), index=True)
    project: Mapped[str] = mapped_column(String(128))
    location: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str] = mapped_column(String(256), default="")
    resources: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # {"dedicatedResources": …} as requested
    state: Mapped[str] = mapped_column(String(16), default="DEPLOYED")
    operation: Mapped[str | None] = mapped_column(String(512), nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class OperationRow(Base):
    """A long-running operation; ``name`` is the full resource name (…/endpoints/E/operations/O)."""

    __tablename__ = "operations"

    name: Mapped[str] = mapped_column(String(512), primary_key=True)
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    metadata_json: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    response: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    update_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DatasetRow(Base):
    """A dataset file uploaded through the API into the bucket root (the console's upload); files a job names are
    listed from the jobs themselves."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project: Mapped[str] = mapped_column(String(128), index=True)
    location: Mapped[str] = mapped_column(String(64))
    uri: Mapped[str] = mapped_column(String(1024))
    purpose: Mapped[str] = mapped_column(String(32), default="supervised")  # what it was uploaded for
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class JobEventRow(Base):
    """What happened to a job, in order: created, started (attempt n), recovered, messages from its run, cancel
    requested, ended. ``kind``: tuning or pipeline (the job's table)."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    job_id: Mapped[str] = mapped_column(String(128), index=True)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    severity: Mapped[str] = mapped_column(String(16), default="INFO")  # INFO | WARNING | ERROR
    message: Mapped[str] = mapped_column(Text)


class FileRow(Base):
    """A file uploaded through the OpenAI-compatible files API (``/v1/files``), stored at ``uri`` under the bucket
    root; its id (``file-…``) is what fine-tuning jobs name."""

    __tablename__ = "openai_files"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project: Mapped[str] = mapped_column(String(128), index=True)
    filename: Mapped[str] = mapped_column(String(512))
    purpose: Mapped[str] = mapped_column(String(32))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    uri: Mapped[str] = mapped_column(String(1024))
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class FineTuningJobRow(Base):
    """What an OpenAI ``fine_tuning.jobs.create`` asked for, beside the tuning job that runs it (``ftjob-<id>``
    is the tuning job's id): the same run, seen through OpenAI's API."""

    __tablename__ = "openai_jobs"

    id: Mapped[str] = mapped_column(String(32), ForeignKey("tuning_jobs.id", ondelete="CASCADE"), primary_key=True)
    project: Mapped[str] = mapped_column(String(128), index=True)
    model: Mapped[str] = mapped_column(String(256))  # as the request named it
    training_file: Mapped[str] = mapped_column(String(64))
    validation_file: Mapped[str | None] = mapped_column(String(64), nullable=True)
    suffix: Mapped[str | None] = mapped_column(String(64), nullable=True)
    seed: Mapped[int] = mapped_column(BigInteger)
    job_metadata: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    method: Mapped[dict[str, Any]] = mapped_column(JSON)  # type and hyper-parameters as asked ("auto" kept)
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    model_deleted: Mapped[bool] = mapped_column(Boolean, default=False)  # models.delete of its fine-tuned model
    result_file: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the metrics CSV, once it succeeded


class BucketOwnerRow(Base):
    """A bucket that became a project's when it first wrote to it (control/access.py; with API keys only)."""

    __tablename__ = "bucket_owners"

    bucket: Mapped[str] = mapped_column(String(255), primary_key=True)
    project: Mapped[str] = mapped_column(String(128))
    create_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ProjectLockRow(Base):
    """One row per project, written at the start of every admission (a create, a resume, a claim) so that concurrent
    admissions of one project take turns and its quota holds exactly (control/db.lock_project)."""

    __tablename__ = "project_locks"

    project: Mapped[str] = mapped_column(String(128), primary_key=True)
    admissions: Mapped[int] = mapped_column(BigInteger, default=0)
