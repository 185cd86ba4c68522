"""pipelineJobs (code-model tuning, distillation): templates, parameter checks, the resource and its tasks.

A job is identified by its ``templateUri`` (never by the ``pipelineSpec`` the client sends), validated, stored with
its planned tasks, listed, read and cancelled with the spellings the SDK expects (contract §5). Workers run the
tasks (``worker/pipeline.py``) on the shared engine.
"""

from __future__ import annotations

import difflib
import re
import secrets
import time
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tuneforge import storage
from tuneforge.catalog import Catalog, load_catalog
from tuneforge.control import events
from tuneforge.control.access import BucketPolicy, default_output_bucket
from tuneforge.control.db import Store, fetch
from tuneforge.control.filters import PIPELINE_JOB_FILTERS, filter_conditions
from tuneforge.control.paging import list_page
from tuneforge.control.pipeline_templates import (
    CHAT_EVALUATION,
    DEFAULTS,
    PARAMETERS,
    REQUIRED,
    TEMPLATES,
    task_names,
)
from tuneforge.control.registry import DEV_LABEL
from tuneforge.control.tables import PipelineJobRow, new_id, utcnow
from tuneforge.control.tuning_jobs import PIPELINE_REGIONS, refuse_unlabelled_for_stand_in_teacher, server_fields
from tuneforge.data.distill import read_examples
from tuneforge.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, status
from tuneforge.settings import Settings
from tuneforge.train.config import TuningConfig
from tuneforge.train.pipeline_data import FORMATS
from tuneforge.wire import names
from tuneforge.wire.base import dump, messages, timestamp
from tuneforge.wire.events import ListJobEventsResponse
from tuneforge.wire.pipelines import ListPipelineJobsResponse, PipelineJob, PipelineParameters, RuntimeConfig

PENDING, RUNNING, SUCCEEDED, FAILED = (
    "PIPELINE_STATE_PENDING",
    "PIPELINE_STATE_RUNNING",
    "PIPELINE_STATE_SUCCEEDED",
    "PIPELINE_STATE_FAILED",
)
CANCELLING, CANCELLED = "PIPELINE_STATE_CANCELLING", "PIPELINE_STATE_CANCELLED"
FINAL = (SUCCEEDED, FAILED, CANCELLED)


def finish_cancelled(row: PipelineJobRow, now: datetime) -> None:
    """The final state of a cancelled pipeline: CANCELLED with error code 1; unfinished tasks are cancelled too."""
    row.state, row.end_time, row.update_time = CANCELLED, now, now
    row.error = status("CANCELLED", "CANCELED")
    stamp = timestamp(now)
    tasks = []
    for t in row.tasks:
        if t["state"] in ("PENDING", "RUNNING"):
            execution = {**(t.get("execution") or {}), "state": "CANCELLED"}
            t = {**t, "state": "CANCELLED", "endTime": stamp, "execution": execution}
        tasks.append(t)
    row.tasks = tasks


def finish_stopped(row: PipelineJobRow, now: datetime) -> str | None:
    """Settle a pipeline whose run stopped because it was asked to: CANCELLED when a cancel was asked (pipelines
    have no pause), else None."""
    if not row.cancel_requested:
        return None
    finish_cancelled(row, now)
    return "Cancelled"


def _is_resource_or_url(value: str) -> bool:
    return value.startswith(("http://", "https://")) or names.parse(value, ("models", "endpoints")) is not None


def _planned_tasks(template: str, params: dict[str, Any], now: str | None) -> list[dict[str, Any]]:
    tasks = [
        {
            "taskId": "1",
            "taskName": template,
            "state": "PENDING",
            "createTime": now,
            "execution": {"schemaTitle": "system.Run", "state": "NEW", "metadata": {}},
        }
    ]
    for i, name in enumerate(task_names(template, params), start=2):
        tasks.append(
            {
                "taskId": str(i),
                "parentTaskId": "1",
                "taskName": name,
                "state": "PENDING",
                "createTime": now,
                "execution": {"schemaTitle": "system.ContainerExecution", "state": "NEW", "metadata": {}},
            }
        )
    return tasks


class PipelineJobService:
    def __init__(self, store: Store, settings: Settings):
        self.store = store
        self.settings = settings
        self.buckets = BucketPolicy(store, settings)

    def validate(
        self, project: str, location: str, job: PipelineJob, *, claim: bool = True
    ) -> tuple[str, dict[str, Any], str | None]:
        """(template, parameters with defaults, the tiny stand-in a dev-mode job runs on or None). Every URI must be
        in a bucket the project may use (``claim=False``: a preview records no new bucket owner)."""
        if location not in PIPELINE_REGIONS:
            raise InvalidArgument(f"location {location!r} is not supported; use one of {', '.join(PIPELINE_REGIONS)}")
        if job.template_uri not in TEMPLATES:
            raise InvalidArgument(
                f"templateUri {job.template_uri!r} is not a supported pipeline; supported: {', '.join(TEMPLATES)}"
            )
        template = TEMPLATES[job.template_uri]
        runtime = job.runtime_config or RuntimeConfig()
        params = _parameters(template, runtime.parameter_values)
        _check_rules(template, params, runtime.parameter_values)
        catalog = load_catalog(self.settings)  # read once for the whole create
        stand_in = self._resolve_models(template, params, catalog)
        uris = {f"parameterValues.{k}": params.get(k) for k in ("dataset_uri", "evaluation_data_uri")}
        uris["gcsOutputDirectory"] = runtime.gcs_output_directory
        access = self.buckets.for_project(project, claim=claim)
        for where, uri in uris.items():
            if uri is not None:
                write = where == "gcsOutputDirectory"
                storage.check_client_uri(uri, f"runtimeConfig.{where}", self.settings, access=access, write=write)
        teacher = params.get("teacher_model_reference")
        if teacher:
            self.buckets.check_teacher(teacher, f"{PARAMS}.teacher_model_reference")
        if teacher and params.get("dataset_uri") and not _is_resource_or_url(teacher):
            resolved = catalog.resolve(teacher, settings=self.settings)
            if resolved.stand_in:  # an unreadable dataset is left to the validate-data task
                examples, report = read_examples(params["dataset_uri"], self.settings)
                field = f"{PARAMS}.teacher_model_reference"
                if not report.errors:
                    refuse_unlabelled_for_stand_in_teacher(teacher, resolved.entry.id, examples, field)
        kms = job.encryption_spec.kms_key_name if job.encryption_spec else None
        if kms and params.get("encryption_spec_key_name") and kms != params["encryption_spec_key_name"]:
            raise InvalidArgument(
                "encryptionSpec.kmsKeyName and parameterValues.encryption_spec_key_name differ; give one key"
            )
        _defaults(template, params, location)
        # The tune task's run, built now so its rules (TuningConfig's) refuse a bad job before it is stored.
        pipeline_tuning_config(template, params, "gs://validation-only", catalog)
        return template, params, stand_in

    def _resolve_models(self, template: str, params: dict[str, Any], catalog: Catalog) -> str | None:
        """NOT_FOUND with suggestions for unknown ids, a clear error for weights not configured (outside dev mode);
        the stand-in of a dev-mode job."""
        stand_in = None
        for key, kind in PARAMETERS[template].items():
            if kind != "model" or key not in params:
                continue
            if key == "teacher_model_reference" and _is_resource_or_url(params[key]):
                continue  # a deployed endpoint, a registered model or an OpenAI-compatible URL (checked when run)
            resolved = catalog.resolve(params[key], settings=self.settings)
            if resolved.stand_in and key != "teacher_model_reference":
                stand_in = resolved.entry.id
        return stand_in

    def create(self, project: str, location: str, job: PipelineJob, job_id: str | None) -> PipelineJob:
        template, params, stand_in = self.validate(project, location, job)
        if params.get("project", project) != project:
            raise InvalidArgument(
                f"runtimeConfig.parameterValues.project is {params['project']!r} but the job is "
                f"created in project {project!r}; a pipeline uploads its model to its own project"
            )
        labels = dict(job.labels)
        if stand_in:
            labels[DEV_LABEL] = stand_in
        if job_id is not None and not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,127}", job_id):
            raise InvalidArgument("pipelineJobId must be 1-128 lowercase letters, digits or hyphens")
        job_id = job_id or f"{template}-{time.strftime('%Y%m%d%H%M%S')}-{secrets.token_hex(3)}"
        kept = job.model_copy(update={f: None for f in PipelineJob.model_fields if f not in KEPT})
        resource = dump(kept)
        resource.setdefault("displayName", job_id)
        resource["templateMetadata"] = {"version": str(job.template_uri).rsplit("/", 1)[-1]}
        now = utcnow()
        try:
            with self.store.session() as s:
                row = PipelineJobRow(
                    id=new_id(),
                    pipeline_job_id=job_id,
                    project=project,
                    location=location,
                    state=PENDING,
                    template=template,
                    resource=resource,
                    parameters=params,
                    tasks=_planned_tasks(template, params, timestamp(now)),
                    labels=labels,
                    create_time=now,
                    update_time=now,
                    cancel_requested=False,
                )
                s.add(row)
                events.record(s, events.PIPELINE, row.id, f"Created: the {template} pipeline")
                if stand_in:
                    message = f"dev mode: runs on the tiny stand-in {stand_in}"
                    events.record(s, events.PIPELINE, row.id, message, "WARNING")
        except IntegrityError:  # the project's pipelineJobId is taken (uq_pipeline_job_id), before or at this moment
            raise AlreadyExists(
                f"PipelineJob {names.name('pipelineJobs', project, location, job_id)} already exists; use another "
                "pipelineJobId (the SDK makes one per second)"
            ) from None
        return pipeline_job(row)

    def row(self, project: str, location: str, job_id: str) -> PipelineJobRow:
        """The project's pipeline job ``job_id`` (its pipelineJobId), or NOT_FOUND naming it."""
        with self.store.session() as s:
            row = self._find(s, project, location, job_id)
        if row is None:
            raise NotFound(f"PipelineJob {names.name('pipelineJobs', project, location, job_id)} not found.")
        return row

    @staticmethod
    def _find(s: Session, project: str, location: str, job_id: str) -> PipelineJobRow | None:
        return s.scalar(
            select(PipelineJobRow).where(
                PipelineJobRow.project == project,
                PipelineJobRow.location == location,
                PipelineJobRow.pipeline_job_id == job_id,
            )
        )

    def get(self, project: str, location: str, job_id: str) -> PipelineJob:
        return pipeline_job(self.row(project, location, job_id))

    def list(
        self,
        project: str,
        location: str,
        page_size: int | None,
        page_token: str | None,
        filter: str | None = None,
    ) -> ListPipelineJobsResponse:
        conditions = filter_conditions(filter, PIPELINE_JOB_FILTERS, PipelineJobRow.labels)
        with self.store.session() as s:
            rows, token = list_page(s, PipelineJobRow, project, location, page_size, page_token, *conditions)
        return ListPipelineJobsResponse(pipeline_jobs=[pipeline_job(r) for r in rows], next_page_token=token or None)

    def events(self, project: str, location: str, job_id: str) -> ListJobEventsResponse:
        return events.listed(self.store, events.PIPELINE, self.row(project, location, job_id).id)

    def cancel(self, project: str, location: str, job_id: str) -> None:
        key = self.row(project, location, job_id).id
        with self.store.session() as s:
            row = fetch(s, PipelineJobRow, key, lock=True)
            if row.state in FINAL:
                raise FailedPrecondition(f"PipelineJob {job_id} is in state {row.state} and cannot be cancelled")
            now = utcnow()
            row.cancel_requested, row.update_time = True, now
            if row.state == PENDING:
                finish_cancelled(row, now)
                events.record(s, events.PIPELINE, key, "Cancelled before it started")
            else:
                row.state = CANCELLING  # the worker stops the running task, then finishes the cancellation
                events.record(s, events.PIPELINE, key, "Cancel requested: the running task stops")


# -- parameters ------------------------------------------------------------------------------------------------------

KEPT = ("display_name", "runtime_config", "template_uri", "labels", "encryption_spec", "service_account", "network")
PARAMS = "runtimeConfig.parameterValues"


def _parameters(template: str, raw: dict[str, Any]) -> dict[str, Any]:
    """The parameters a pipeline takes, read as their types (quoted numbers and booleans are fine, SPEC §8 P1)."""
    allowed = PARAMETERS[template]
    for key in raw:
        if key not in allowed:
            close = difflib.get_close_matches(key.strip(" :"), list(allowed), n=1, cutoff=0.6)
            hint = (
                f'; did you mean "{close[0]}"?'
                if close
                else f"; parameters of {template}: {', '.join(sorted(allowed))}"
            )
            raise InvalidArgument(f'{PARAMS}: unknown parameter "{key}"{hint}')
    if template == "tune-large-chat-model":
        given = [k for k in CHAT_EVALUATION if k in raw]
        if given:
            raise InvalidArgument(
                f"{', '.join(given)}: evaluation is not supported for code chat; remove "
                "evaluation_data_uri, evaluation_interval, enable_early_stopping and "
                "enable_checkpoint_selection"
            )
    try:
        typed = PipelineParameters.model_validate(raw)
    except ValidationError as exc:
        raise InvalidArgument("; ".join(text for _, text in messages(exc, PARAMS, prefix=PARAMS))) from None
    params = typed.model_dump(exclude_none=True)
    if params.get("location") is not None and params["location"] not in PIPELINE_REGIONS:
        raise InvalidArgument(
            f"{PARAMS}.location: {params['location']!r} is not a supported region; use one of "
            f"{', '.join(PIPELINE_REGIONS)}"
        )
    return params


def _check_rules(template: str, params: dict[str, Any], raw: dict[str, Any]) -> None:
    if "dataset_name" in params and "dataset_uri" not in params:
        raise InvalidArgument(
            f"{PARAMS}.dataset_name: Vertex managed datasets do not exist on a self-hosted server; "
            "give dataset_uri, a JSONL file in a bucket"
        )
    for key in REQUIRED[template]:
        if key not in params:
            raise InvalidArgument(f"{PARAMS}.{key} is required for {template}")
    if "dataset_uri" not in params and "dataset_name" not in params:
        raise InvalidArgument(f"{PARAMS}.dataset_uri is required (a gs:// JSONL file)")
    for needs_eval in ("evaluation_interval", "enable_early_stopping"):
        if needs_eval in raw and "evaluation_data_uri" not in params:
            raise InvalidArgument(f"{PARAMS}.{needs_eval} needs evaluation_data_uri")


def _defaults(template: str, params: dict[str, Any], location: str) -> None:
    for key, value in DEFAULTS.items():
        if key == "learning_rate_multiplier" and "learning_rate" in params:
            continue  # the deprecated absolute rate stands alone
        if key in PARAMETERS[template] and not (template == "tune-large-chat-model" and key in CHAT_EVALUATION):
            params.setdefault(key, value)
    params.setdefault("location", location)
    if "model_display_name" not in params:  # as the SDK names it (contract §5.3)
        params["model_display_name"] = (
            f"{params['student_model_reference']} distilled from {params['teacher_model_reference']}"
            if template == "distillation"
            else f"{params['large_model_reference']} tuned for {params['train_steps']} steps with "
            f"learning_rate_multiplier={params.get('learning_rate_multiplier', 1.0)} on {params.get('dataset_uri')}"
        )[:128]


# SPEC §3.6: examples per step by context class and compute region (GPU runs in us-central1, TPU in europe-west4).
BATCH_SIZES = {
    ("8k", "us-central1"): 8,
    ("8k", "europe-west4"): 24,
    ("32k", "us-central1"): 8,
    ("32k", "europe-west4"): 8,
}
# What the pipelines call the run configuration's fields (errors of TuningConfig's rules name them so).
CONFIG_NAMES = {
    "learning_rate": f"{PARAMS}.learning_rate",
    "learning_rate_multiplier": f"{PARAMS}.learning_rate_multiplier",
    "max_steps": f"{PARAMS}.train_steps",
    "eval_steps": f"{PARAMS}.evaluation_interval",
    "tensorboard": f"{PARAMS}.tensorboard_resource_id",
    "train_dataset": f"{PARAMS}.dataset_uri",
    "validation_dataset": f"{PARAMS}.evaluation_data_uri",
}


def documented_batch_size(params: dict[str, Any], catalog: Catalog) -> tuple[int, str, str]:
    """(batch size, context class, compute region) as SPEC §3.6 documents them."""
    model = params.get("large_model_reference") or params.get("student_model_reference")
    alias = catalog.alias(model or "")
    context = params.get("max_context_length") or (alias.batch_class if alias and alias.batch_class else "8k")
    region = "europe-west4" if params.get("accelerator_type") == "TPU" else "us-central1"
    return BATCH_SIZES[(context, region)], context, region


def pipeline_tuning_config(
    template: str, params: dict[str, Any], out_uri: str, catalog: Catalog, **overrides: Any
) -> TuningConfig:
    """The tune task's run: train_steps optimizer steps of the documented batch size; evaluation, early stopping and
    checkpoint selection as the parameters say (SPEC §8 P2)."""
    batch, _, _ = documented_batch_size(params, catalog)
    has_eval = bool(params.get("evaluation_data_uri"))
    selection = params.get("enable_checkpoint_selection", "default")
    fields: dict[str, Any] = dict(
        base_model=params.get("large_model_reference") or params["student_model_reference"],
        train_dataset=params["dataset_uri"],
        validation_dataset=params.get("evaluation_data_uri"),
        output_uri=f"{out_uri}/tune",
        max_steps=int(params["train_steps"]),
        batch_size=batch,
        learning_rate=params.get("learning_rate"),
        learning_rate_multiplier=params.get("learning_rate_multiplier"),
        eval_steps=int(params.get("evaluation_interval", 20)) if has_eval else None,
        early_stopping=bool(params.get("enable_early_stopping", True)) and has_eval,
        checkpoint_selection="best" if selection == "true" or (selection == "default" and has_eval) else "last",
        tensorboard=params.get("tensorboard_resource_id"),
        dataset_format=FORMATS[template] if template != "distillation" else None,
        default_context=params.get("default_context"),
    )
    return TuningConfig.build(CONFIG_NAMES, **{**fields, **overrides})


def output_root(row: PipelineJobRow) -> str:
    """``runtimeConfig.gcsOutputDirectory``/JOB_ID when given (the SDK always sends one), else the project's bucket."""
    root = ((row.resource.get("runtimeConfig") or {}).get("gcsOutputDirectory") or "").rstrip("/")
    job_id = row.pipeline_job_id
    return f"{root}/{job_id}" if root else f"gs://{default_output_bucket(row.project)}/pipelineJobs/{job_id}"


def pipeline_job(row: PipelineJobRow) -> PipelineJob:
    name = names.name("pipelineJobs", row.project, row.location, row.pipeline_job_id)
    detail = {
        "pipelineContext": {"name": f"{name}/contexts/pipeline"},
        "pipelineRunContext": {"name": f"{name}/contexts/run"},
        "taskDetails": row.tasks,
    }
    return PipelineJob.model_validate({**row.resource, **server_fields(row, name), "jobDetail": detail})
