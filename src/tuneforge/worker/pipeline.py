"""Running a pipeline job: its tasks in order, each with its own state, times and outputs, as Vertex's pipeline view.

Tasks (a planned task list is stored when the job is created; ``pipelines._planned_tasks``):

- ``validate-data``: the dataset rules of SPEC §3.2 / §5.2 (formats, example and author-field counts, evaluation set
  size), the documented batch size and the epochs it implies (steps x batch size / examples, §3.6).
- ``teacher-labelling`` (distillation): the teacher explains (and, unlabelled, labels) every example; the outputs
  are a dataset artifact that a rerun reuses (``train/recipes/distill.py``).
- ``tune``: the shared engine (``train/recipes/sft.py``) with ``train_steps`` optimizer steps.
- ``evaluate`` (with ``evaluation_data_uri``): batch prediction over the evaluation set, exact match.
- ``upload-llm-model`` / ``upload-model``: the registry entry the SDK finds by its
  ``google-vertex-llm-tuning-base-model-id`` label (contract §5.4).
- ``deploy-llm-model`` / ``deploy-model``: an endpoint serving it (when the operator's auto-deploy is on).

State lives in the database: a task's outputs are in its ``execution.metadata``, so a job resumed on another worker
skips finished tasks and picks the next one up (training resumes from its checkpoint).
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from transformers import AutoTokenizer

from tuneforge import storage
from tuneforge.catalog import load_catalog
from tuneforge.catalog.model_folder import final_uri, has_tokenizer, weights_at
from tuneforge.control import events
from tuneforge.control import pipeline_jobs as p
from tuneforge.control.access import BucketPolicy
from tuneforge.control.db import Store, fetch
from tuneforge.control.pipeline_templates import deploy_task, upload_task
from tuneforge.control.registry import auto_deploy, model_name, register_model, resource_weights
from tuneforge.control.tables import ModelRow, PipelineJobRow, utcnow
from tuneforge.data.distill import read_examples
from tuneforge.errors import DatasetInvalid, InvalidArgument, TuneforgeError, status
from tuneforge.infer.offline import generate_offline
from tuneforge.infer.sampling import SamplingParams
from tuneforge.settings import Settings
from tuneforge.train import Callbacks, TuningConfig, run_sft
from tuneforge.train.pipeline_data import check_pipeline_data
from tuneforge.train.recipes.distill import (
    DEFAULT_RATIONALE_WEIGHT,
    answer_matches,
    prepare_student_data,
    student_files,
    teacher_from_reference,
)
from tuneforge.wire.base import timestamp
from tuneforge.worker.child import StopCheck, child_setup


class Stopped(Exception):
    """The job was cancelled (or its worker died) while a task ran."""


@dataclass
class Context:
    job_id: str  # the row's (internal) id
    pipeline_job_id: str  # the resource's id, as the client named it
    template: str
    params: dict
    project: str
    location: str  # the pipeline region (the URL's)
    labels: dict
    out_uri: str  # where this job's artifacts go
    settings: Settings
    store: Store
    should_stop: Callable[[], bool]

    @property
    def upload_location(self) -> str:
        return self.params.get("location") or self.location


# -- task bookkeeping ---------------------------------------------------------------------------------------------


class Tasks:
    """Reads and writes the job's task list; every change is committed at once (the API shows it live)."""

    def __init__(self, store: Store, job_id: str):
        self.store, self.job_id = store, job_id

    def update(self, name: str | None, change, event: str | None = None, severity: str = "INFO") -> None:
        """Apply ``change(task)`` to the named task (every task when ``name`` is None) and commit, with ``event``
        recorded in the same transaction."""
        with self.store.session() as s:
            if event:
                events.record(s, events.PIPELINE, self.job_id, event, severity)
            row = fetch(s, PipelineJobRow, self.job_id, lock=True)
            tasks = [dict(t) for t in row.tasks]
            for t in tasks:
                if name is None or t["taskName"] == name:
                    t["execution"] = dict(t.get("execution") or {})
                    change(t)
            row.tasks, row.update_time = tasks, utcnow()

    def get(self, name: str) -> dict | None:
        with self.store.session() as s:
            row = fetch(s, PipelineJobRow, self.job_id)
            return next((t for t in row.tasks if t["taskName"] == name), None)

    def outputs(self, name: str) -> dict:
        task = self.get(name) or {}
        meta = (task.get("execution") or {}).get("metadata") or {}
        return {k.removeprefix("output:"): v for k, v in meta.items() if k.startswith("output:")}

    def start(self, name: str) -> None:
        now = timestamp(utcnow())

        def change(t):
            t.update(state="RUNNING", startTime=t.get("startTime") or now)
            t["execution"]["state"] = "RUNNING"

        self.update(name, change, f"Task {name} started")

    def progress(self, name: str, values: dict) -> None:
        def change(t):
            t["execution"]["metadata"] = {**(t["execution"].get("metadata") or {}), **values}

        self.update(name, change)

    def finish(self, name: str, state: str, outputs: dict | None = None, message: str | None = None) -> None:
        now = timestamp(utcnow())
        execution_state = {"SUCCEEDED": "COMPLETE", "FAILED": "FAILED", "CANCELLED": "CANCELLED", "SKIPPED": "NEW"}[
            state
        ]  # a skipped task never ran

        def change(t):
            t.update(state=state, endTime=now)
            if state == "SKIPPED":
                t.pop("startTime", None)
            t["execution"]["state"] = execution_state
            meta = dict(t["execution"].get("metadata") or {})
            meta.update({f"output:{k}": v for k, v in (outputs or {}).items()})
            t["execution"]["metadata"] = meta
            if message:
                t["error"] = status("INVALID_ARGUMENT" if state == "FAILED" else "CANCELLED", message)

        said = f"Task {name} {state.lower()}" + (f": {message}" if message else "")
        self.update(name, change, said, "ERROR" if state == "FAILED" else "INFO")


# -- validate-data --------------------------------------------------------------------------------------------------


def _problems(report, limit: int = 20) -> str:
    shown = [str(p) for p in report.errors[:limit]]
    more = f"; and {len(report.errors) - limit} more" if len(report.errors) > limit else ""
    return "; ".join(shown) + more


def validate_data(ctx: Context) -> dict:
    params = ctx.params
    train_uri = params.get("dataset_uri")
    if train_uri is None:
        raise InvalidArgument(
            "dataset_name (a Vertex managed dataset) is not available on a self-hosted server; give "
            "dataset_uri, a JSONL file in a bucket"
        )
    report, out = check_pipeline_data(ctx.template, train_uri, params.get("evaluation_data_uri"), ctx.settings)
    n = out["train_examples"]
    if report.errors:
        raise DatasetInvalid(
            f"{len(report.errors)} problem(s) in the data; nothing was tuned: {_problems(report)}", report
        )
    batch, context, region = p.documented_batch_size(ctx.params, load_catalog(ctx.settings))
    steps = int(params["train_steps"])
    out.update(
        batch_size=batch,
        context_class=context,
        compute_region=region,
        train_steps=steps,
        examples_seen=steps * batch,
        epochs=round(steps * batch / max(n, 1), 4),
    )
    return out


# -- teacher-labelling ----------------------------------------------------------------------------------------------


def teacher_labelling(ctx: Context, tasks: Tasks) -> dict:
    reference = ctx.params["teacher_model_reference"]
    # checked at create too; the operator may have changed the list since
    BucketPolicy(ctx.store, ctx.settings).check_teacher(reference, "teacher_model_reference")
    teacher = teacher_from_reference(
        reference,
        ctx.settings,
        resource_weights(ctx.store, ctx.project, ctx.settings, "teacher_model_reference"),
    )
    prepared = prepare_student_data(tuning_config(ctx), teacher, settings=ctx.settings, should_stop=ctx.should_stop)
    return {"teacher": teacher.name, **prepared.summary}


# -- tune -----------------------------------------------------------------------------------------------------------


def tuning_config(ctx: Context, **overrides: Any) -> TuningConfig:
    return p.pipeline_tuning_config(ctx.template, ctx.params, ctx.out_uri, load_catalog(ctx.settings), **overrides)


def tune(ctx: Context, tasks: Tasks) -> dict:
    overrides = {}
    if ctx.template == "distillation":
        train, val = student_files(storage.output_dir(f"{ctx.out_uri}/tune", ctx.settings))
        overrides = dict(
            train_dataset=str(train),
            validation_dataset=str(val) if val else None,
            dataset_format="text_pair",
            rationale_weight=DEFAULT_RATIONALE_WEIGHT,
        )
    config = tuning_config(ctx, **overrides)

    class Progress(Callbacks):
        def on_start(self, total_steps, start_step, plan):
            tasks.progress("tune", {"totalSteps": total_steps, "step": start_step})

        def on_step(self, step, total_steps, metrics):
            if step == total_steps or step % max(1, total_steps // 20) == 0:
                tasks.progress(
                    "tune",
                    {"step": step, **{k: round(float(v), 6) for k, v in metrics.items() if k.startswith("train_")}},
                )

        def on_eval(self, step, metrics):
            tasks.progress("tune", {k: round(float(v), 6) for k, v in metrics.items()})

    result = run_sft(config, settings=ctx.settings, callbacks=Progress(), should_stop=ctx.should_stop)
    if result.cancelled:
        raise Stopped()
    return {
        "model_dir": final_uri(config.output_uri),
        "steps": result.steps,
        "resumed_from_step": result.resumed_from,
        "final_step": result.final_step,
        "stopped_early": result.stopped_early,
        "checkpoint_selection": config.checkpoint_selection,
        "batch_size": config.batch_size,
        "epochs": result.resolved.epochs_effective,
        "tensorboard_dir": f"{config.output_uri}/tensorboard",
        **{k: round(float(v), 6) for k, v in {**result.last_train, **result.best_eval}.items()},
    }


# -- evaluate -------------------------------------------------------------------------------------------------------


def evaluate(ctx: Context, tasks: Tasks) -> dict:
    """Batch prediction on the evaluation set with the tuned model, scored by exact match."""
    examples, _ = read_examples(ctx.params["evaluation_data_uri"], ctx.settings, require_labels=True)
    folder, base = weights_at(tasks.outputs("tune")["model_dir"], ctx.settings, "the tuned model")
    tokenizer = AutoTokenizer.from_pretrained(str(folder if has_tokenizer(folder) else base))
    limit = max(len(tokenizer(e.output_text or "")["input_ids"]) for e in examples) + 16
    try:
        texts = generate_offline(
            folder,
            base,
            [e.input_text for e in examples],
            SamplingParams(max_tokens=limit, temperature=0.0),
            should_stop=ctx.should_stop,
        )
    except InterruptedError:
        raise Stopped() from None
    rows = [
        {
            "input_text": e.input_text,
            "output_text": e.output_text,
            "prediction": t,
            "exact_match": answer_matches(t, e.output_text or ""),
        }
        for e, t in zip(examples, texts)
    ]
    out_dir = storage.output_dir(f"{ctx.out_uri}/evaluation", ctx.settings)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "predictions.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    exact = sum(bool(r["exact_match"]) for r in rows) / max(len(rows), 1)
    (out_dir / "metrics.json").write_text(json.dumps({"exact_match": exact, "examples": len(rows)}, indent=2))
    storage.publish(out_dir, f"{ctx.out_uri}/evaluation", ctx.settings)
    return {
        "exact_match": round(exact, 6),
        "examples": len(rows),
        "predictions_uri": f"{ctx.out_uri}/evaluation/predictions.jsonl",
    }


# -- upload, deploy -------------------------------------------------------------------------------------------------


def upload(ctx: Context, tasks: Tasks) -> dict:
    existing = tasks.outputs(upload_task(ctx.template)).get("model_resource_name")
    if existing:
        return {"model_resource_name": existing}
    base = ctx.params.get("large_model_reference") or ctx.params["student_model_reference"]
    what = (
        f"distilled from {ctx.params['teacher_model_reference']}"
        if ctx.template == "distillation"
        else f"tuned for {ctx.params['train_steps']} steps"
    )
    with ctx.store.session() as s:
        model = register_model(
            s,
            project=ctx.project,
            location=ctx.upload_location,
            display_name=ctx.params["model_display_name"],
            description=f"{base} {what} by pipelineJobs/{ctx.pipeline_job_id}",
            artifact_uri=tasks.outputs("tune")["model_dir"],
            base_model=base,
            kind="lora",
            labels=ctx.labels,
            source_job=ctx.pipeline_job_id,
        )
        return {"model_resource_name": model_name(model)}


def deploy(ctx: Context, tasks: Tasks) -> dict | None:
    if not ctx.settings.auto_deploy:
        return None
    name = tasks.outputs(upload_task(ctx.template))["model_resource_name"]
    with ctx.store.session() as s:
        model = fetch(s, ModelRow, name.rsplit("/", 1)[-1])
        return {"endpoint_resource_name": auto_deploy(s, model, ctx.params["model_display_name"])}


# -- the child process ----------------------------------------------------------------------------------------------


def _steps(template: str):
    return [
        ("validate-data", lambda ctx, tasks: validate_data(ctx)),
        ("teacher-labelling", teacher_labelling),
        ("tune", tune),
        ("evaluate", evaluate),
        (upload_task(template), upload),
        (deploy_task(template), deploy),
    ]


def run_pipeline(ctx: Context) -> None:
    """Run the job's remaining tasks; write the final state unless it was stopped (the worker then finishes it)."""
    tasks = Tasks(ctx.store, ctx.job_id)
    tasks.start(ctx.template)  # the root task
    for name, step in _steps(ctx.template):
        task = tasks.get(name)
        if task is None or task["state"] in ("SUCCEEDED", "SKIPPED"):
            continue
        if ctx.should_stop():
            return
        tasks.start(name)
        try:
            outputs = step(ctx, tasks)
        except (Stopped, InterruptedError):
            return
        except TuneforgeError as exc:
            _fail(ctx, tasks, name, exc.code, f"{name}: {exc}")
            return
        except Exception as exc:  # a bug or an environment problem: the job says so instead of hanging
            traceback.print_exc()
            _fail(ctx, tasks, name, "INTERNAL", f"{name} failed: {type(exc).__name__}: {exc}")
            return
        if outputs is None:
            tasks.finish(name, "SKIPPED", message=None)
        else:
            tasks.finish(name, "SUCCEEDED", outputs)
    tasks.finish(ctx.template, "SUCCEEDED")
    with ctx.store.session() as s:
        row = fetch(s, PipelineJobRow, ctx.job_id, lock=True)
        if row.state == p.RUNNING:
            now = utcnow()
            row.state, row.end_time, row.update_time = p.SUCCEEDED, now, now


def _fail(ctx: Context, tasks: Tasks, name: str, code: str, message: str) -> None:
    message = storage.client_text(message, ctx.settings)
    tasks.finish(name, "FAILED", message=message)
    tasks.finish(ctx.template, "FAILED")

    def not_triggered(t):
        if t["state"] == "PENDING":
            t["state"] = "NOT_TRIGGERED"

    tasks.update(None, not_triggered)
    with ctx.store.session() as s:
        row = fetch(s, PipelineJobRow, ctx.job_id, lock=True)
        now = utcnow()
        row.state, row.end_time, row.update_time = p.FAILED, now, now
        row.error = status(code, message)


def run_job(job_id: str, db_url: str, settings_json: dict[str, Any], parent_pid: int, worker_id: str) -> None:
    """The worker's child process for one pipeline job (a fresh interpreter)."""
    settings, store = child_setup(db_url, settings_json, parent_pid)
    with store.session() as s:
        row = fetch(s, PipelineJobRow, job_id)
        ctx = Context(
            job_id,
            row.pipeline_job_id,
            row.template,
            dict(row.parameters),
            row.project,
            row.location,
            dict(row.labels or {}),
            p.output_root(row),
            settings,
            store,
            StopCheck(store, PipelineJobRow, job_id, parent_pid, worker_id),
        )
    run_pipeline(ctx)
