"""pipelineJobs (code-model tuning, distillation): templates, parameter checks, the resource and its tasks.

A job is identified by its ``templateUri`` (never by the ``pipelineSpec`` the client sends), validated, stored with
its planned tasks, listed, read and cancelled with the spellings the SDK expects (contract §5). Workers run the
tasks (``jobs/pipeline_run.py``) on the shared engine.
"""

from __future__ import annotations

import difflib
import re
import time
from typing import Any

from sqlalchemy import select

from tuneforge import storage
from tuneforge.catalog import load_catalog
from tuneforge.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
)
from tuneforge.control.db import Store, get_scoped
from tuneforge.control.paging import page
from tuneforge.control.pipeline_templates import (
    CHAT_EVALUATION,
    DEFAULTS,
    PARAMETERS,
    REQUIRED,
    TEMPLATES,
    deploy_task,
    task_names,
    upload_task,
)
from tuneforge.control.registry import DEV_LABEL
from tuneforge.control.tables import PipelineJobRow, utcnow
from tuneforge.control.tuning_jobs import PIPELINE_REGIONS, _float, _int, job_resource_json
from tuneforge.settings import Settings
from tuneforge.wire import names
from tuneforge.wire.base import timestamp

PENDING, RUNNING, SUCCEEDED, FAILED = ("PIPELINE_STATE_PENDING", "PIPELINE_STATE_RUNNING",
                                       "PIPELINE_STATE_SUCCEEDED", "PIPELINE_STATE_FAILED")
CANCELLING, CANCELLED = "PIPELINE_STATE_CANCELLING", "PIPELINE_STATE_CANCELLED"
FINAL = (SUCCEEDED, FAILED, CANCELLED)


def _coerce(name: str, kind: str, value: Any) -> Any:
    """SPEC §8 P1: quoted numbers and booleans are fine; anything else is rejected naming the parameter."""
    where = f"runtimeConfig.parameterValues.{name}"
    if kind == "int":
        return _int(value, where, minimum=1)
    if kind == "float":
        return _float(value, where)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise InvalidArgument(f"{where} must be true or false (got {value!r})")
    if kind == "tri":
        text = str(value).lower() if isinstance(value, (str, bool)) else None
        if text not in ("true", "false", "default"):
            raise InvalidArgument(f'{where} must be "true", "false" or "default" (got {value!r})')
        return text
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"{where} must be a non-empty string (got {value!r})")
    if kind == "region" and value not in PIPELINE_REGIONS:
        raise InvalidArgument(f"{where}: {value!r} is not a supported region; use one of {', '.join(PIPELINE_REGIONS)}")
    if kind == "accel" and value not in ("GPU", "TPU"):
        raise InvalidArgument(f'{where} must be "GPU" or "TPU" (got {value!r})')
    if kind == "ctx" and value not in ("8k", "32k"):
        raise InvalidArgument(f'{where} must be "8k" or "32k" (got {value!r})')
    return value


def finish_cancelled(row: PipelineJobRow, now) -> None:
    """The final state of a cancelled pipeline: CANCELLED with error code 1; unfinished tasks are cancelled too."""
    row.state, row.end_time, row.update_time = CANCELLED, now, now
    row.error = {"code": 1, "message": "CANCELED"}
    stamp = timestamp(now)
    tasks = []
    for t in row.tasks:
        if t["state"] in ("PENDING", "RUNNING"):
            execution = {**(t.get("execution") or {}), "state": "CANCELLED"}
            t = {**t, "state": "CANCELLED", "endTime": stamp, "execution": execution}
        tasks.append(t)
    row.tasks = tasks


def _is_resource_or_url(value: str) -> bool:
    return value.startswith(("http://", "https://")) or names.parse(value, ("models", "endpoints")) is not None


def _planned_tasks(template: str, params: dict[str, Any], now: str | None) -> list[dict[str, Any]]:
    tasks = [{"taskId": "1", "taskName": template, "state": "PENDING", "createTime": now,
              "execution": {"schemaTitle": "system.Run", "state": "NEW", "metadata": {}}}]
    for i, name in enumerate(task_names(template, params), start=2):
        tasks.append({"taskId": str(i), "parentTaskId": "1", "taskName": name, "state": "PENDING", "createTime": now,
                      "execution": {"schemaTitle": "system.ContainerExecution", "state": "NEW", "metadata": {}}})
    return tasks


class PipelineJobService:
    def __init__(self, store: Store, settings: Settings):
        self.store = store
        self.settings = settings

    def validate(self, location: str, body: dict) -> tuple[str, dict, str | None]:
        """(template, coerced parameters with defaults, the tiny stand-in a dev-mode job runs on or None)."""
        if location not in PIPELINE_REGIONS:
            raise InvalidArgument(f"location {location!r} is not supported; use one of {', '.join(PIPELINE_REGIONS)}")
        uri = body.get("templateUri")
        if uri not in TEMPLATES:
            raise InvalidArgument(f"templateUri {uri!r} is not a supported pipeline; supported: {', '.join(TEMPLATES)}")
        template = TEMPLATES[uri]
        runtime = body.get("runtimeConfig") or {}
        raw = runtime.get("parameterValues") or runtime.get("parameter_values") or {}
        if not isinstance(raw, dict):
            raise InvalidArgument("runtimeConfig.parameterValues must be an object")
        allowed = PARAMETERS[template]
        for key in raw:
            if key not in allowed:
                close = difflib.get_close_matches(key.strip(" :"), list(allowed), n=1, cutoff=0.6)
                hint = f'; did you mean "{close[0]}"?' if close else f"; parameters of {template}: {', '.join(sorted(allowed))}"
                raise InvalidArgument(f'runtimeConfig.parameterValues: unknown parameter "{key}"{hint}')
        if template == "tune-large-chat-model":
            given = [k for k in CHAT_EVALUATION if k in raw]
            if given:
                raise InvalidArgument(f"{', '.join(given)}: evaluation is not supported for code chat; remove "
                                      "evaluation_data_uri, evaluation_interval, enable_early_stopping and "
                                      "enable_checkpoint_selection")
        params = {k: _coerce(k, allowed[k], v) for k, v in raw.items() if v is not None}
        if "learning_rate" in params and "learning_rate_multiplier" in params:
            raise InvalidArgument("runtimeConfig.parameterValues: give learning_rate_multiplier or the deprecated "
                                  "learning_rate, not both")
        if "dataset_name" in params and "dataset_uri" not in params:
            raise InvalidArgument("runtimeConfig.parameterValues.dataset_name: Vertex managed datasets do not exist on a "
                                  "self-hosted server; give dataset_uri, a JSONL file in a bucket")
        for key in REQUIRED[template]:
            if key not in params:
                raise InvalidArgument(f"runtimeConfig.parameterValues.{key} is required for {template}")
        if "dataset_uri" not in params and "dataset_name" not in params:
            raise InvalidArgument("runtimeConfig.parameterValues.dataset_uri is required (a gs:// JSONL file)")
        for needs_eval in ("evaluation_interval", "enable_early_stopping"):
            if needs_eval in raw and "evaluation_data_uri" not in params:
                raise InvalidArgument(f"runtimeConfig.parameterValues.{needs_eval} needs evaluation_data_uri")
        catalog = load_catalog(self.settings)
        stand_in = None
        for key, kind in allowed.items():
            if kind != "model" or key not in params:
                continue
            if key == "teacher_model_reference" and _is_resource_or_url(params[key]):
                continue  # a deployed endpoint, a registered model or an OpenAI-compatible URL (checked when run)
            # NOT_FOUND with suggestions for unknown ids; a clear error for weights not configured (outside dev mode)
            resolved = catalog.resolve(params[key], settings=self.settings)
            if resolved.stand_in and key != "teacher_model_reference":
                stand_in = resolved.entry.id
        uris = {f"parameterValues.{k}": params.get(k) for k in ("dataset_uri", "evaluation_data_uri")}
        uris["gcsOutputDirectory"] = runtime.get("gcsOutputDirectory")
        for where, uri in uris.items():
            if uri is not None:
                try:
                    storage.check_client_uri(uri, f"runtimeConfig.{where}", self.settings)
                except storage.StorageError as exc:
                    raise InvalidArgument(str(exc)) from None
        kms = (body.get("encryptionSpec") or {}).get("kmsKeyName")
        if kms and params.get("encryption_spec_key_name") and kms != params["encryption_spec_key_name"]:
            raise InvalidArgument("encryptionSpec.kmsKeyName and parameterValues.encryption_spec_key_name differ; give one key")
        for key, value in DEFAULTS.items():
            if key in allowed and not (template == "tune-large-chat-model" and key in CHAT_EVALUATION):
                params.setdefault(key, value)
        params.setdefault("location", location)
        if "model_display_name" not in params:  # as the SDK names it (contract §5.3)
            params["model_display_name"] = (
                f"{params['student_model_reference']} distilled from {params['teacher_model_reference']}"
                if template == "distillation" else
                f"{params['large_model_reference']} tuned for {params['train_steps']} steps with "
                f"learning_rate_multiplier={params.get('learning_rate_multiplier', 1.0)} on {params.get('dataset_uri')}"
            )[:128]
        return template, params, stand_in

    def check_project(self, project: str, params: dict) -> None:
        if params.get("project", project) != project:
            raise InvalidArgument(f"runtimeConfig.parameterValues.project is {params['project']!r} but the job is created "
                                  f"in project {project!r}; a pipeline uploads its model to its own project")

    def create(self, project: str, location: str, body: dict, job_id: str | None) -> PipelineJobRow:
        template, params, stand_in = self.validate(location, body)
        self.check_project(project, params)
        labels = dict(body.get("labels") or {})
        if stand_in:
            labels[DEV_LABEL] = stand_in
        if job_id is not None and not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,127}", job_id):
            raise InvalidArgument("pipelineJobId must be 1-128 lowercase letters, digits or hyphens")
        job_id = job_id or f"{template}-{time.strftime('%Y%m%d%H%M%S')}"
        now = utcnow()
        resource = {k: v for k, v in body.items() if k in ("displayName", "runtimeConfig", "templateUri", "labels",
                                                          "encryptionSpec", "serviceAccount", "network")}
        resource.setdefault("displayName", job_id)
        resource["templateMetadata"] = {"version": body["templateUri"].rsplit("/", 1)[-1]}
        with self.store.session() as s:
            if s.get(PipelineJobRow, job_id) is not None:
                raise AlreadyExists(f"PipelineJob {names.name('pipelineJobs', project, location, job_id)} already exists; "
                                    "use another pipelineJobId (the SDK makes one per second)")
            row = PipelineJobRow(id=job_id, project=project, location=location, state=PENDING, template=template,
                                 resource=resource, parameters=params, tasks=_planned_tasks(template, params, timestamp(now)),
                                 labels=labels, create_time=now, update_time=now, cancel_requested=False)
            s.add(row)
        return row

    def get(self, project: str, location: str, job_id: str) -> PipelineJobRow:
        return get_scoped(self.store, PipelineJobRow, job_id, project, location, "PipelineJob", "pipelineJobs")

    def list(self, project: str, location: str, page_size: int | None, page_token: str | None):
        q = (select(PipelineJobRow).where(PipelineJobRow.project == project, PipelineJobRow.location == location)
             .order_by(PipelineJobRow.create_time.desc(), PipelineJobRow.id.desc()))
        with self.store.session() as s:
            return page(s, q, page_size, page_token)

    def cancel(self, project: str, location: str, job_id: str) -> None:
        self.get(project, location, job_id)
        with self.store.session() as s:
            row = s.get(PipelineJobRow, job_id, with_for_update=True)
            if row.state in FINAL:
                raise FailedPrecondition(f"PipelineJob {job_id} is in state {row.state} and cannot be cancelled")
            now = utcnow()
            row.cancel_requested, row.update_time = True, now
            if row.state == PENDING:
                finish_cancelled(row, now)
            else:
                row.state = CANCELLING  # the worker stops the running task, then finishes the cancellation


def pipeline_job_json(row: PipelineJobRow) -> dict:
    out = job_resource_json(row, names.name("pipelineJobs", row.project, row.location, row.id))
    out["jobDetail"] = {"pipelineContext": {"name": f"{out['name']}/contexts/pipeline"},
                        "pipelineRunContext": {"name": f"{out['name']}/contexts/run"}, "taskDetails": row.tasks}
    return out
