"""A tuning job's child process: run its method's recipe (SFT, DPO or distillation) to a final state, streaming
metrics into the job store, then register (and auto-deploy) the tuned model."""

from __future__ import annotations

import math
import os
import traceback
from typing import Any

from sqlalchemy import delete

from tuneforge import storage
from tuneforge.catalog import TuningMode
from tuneforge.catalog.model_folder import final_uri
from tuneforge.control import events, states
from tuneforge.control.access import BucketPolicy
from tuneforge.control.db import Store, fetch
from tuneforge.control.fine_tuning import write_results
from tuneforge.control.registry import auto_deploy, model_name, register_model, resource_weights
from tuneforge.control.tables import MetricRow, TuningJobRow, release, utcnow
from tuneforge.control.tuning_jobs import finish_stopped
from tuneforge.data.stats import distillation_data_stats
from tuneforge.errors import TuneforgeError, status
from tuneforge.settings import Settings
from tuneforge.train import Callbacks, RunResult, TuningConfig, run_tuning
from tuneforge.train.config import ResolvedRun
from tuneforge.train.launch import run_sft_processes
from tuneforge.train.recipes.distill import DEFAULT_RATIONALE_WEIGHT, run_distill, teacher_from_reference
from tuneforge.worker.child import StopCheck, child_setup, terminating


class DbCallbacks(Callbacks):
    """Progress and metrics of a run, committed as they come (the API and the CLI follow them live)."""

    def __init__(self, store: Store, job_id: str):
        self.store, self.job_id = store, job_id
        self.sums = (0.0, 0.0)  # tokens trained, seconds in optimizer steps: what the measured throughput uses

    def on_start(self, total_steps: int, start_step: int, plan: ResolvedRun) -> None:
        with self.store.session() as s:
            s.execute(delete(MetricRow).where(MetricRow.job_id == self.job_id, MetricRow.step > start_step))
            job = fetch(s, TuningJobRow, self.job_id)
            old = job.progress or {}
            # A resumed run keeps counting what it trained before.
            self.sums = (old.get("trainTokens", 0.0), old.get("trainSeconds", 0.0)) if start_step else (0.0, 0.0)
            job.progress = {"step": start_step, "totalSteps": total_steps, "resolved": plan.model_dump(mode="json")}
            where = f"from step {start_step}" if start_step else "from the start"
            events.record(s, events.TUNING, self.job_id, f"Training {total_steps} steps {where} on {plan.device}")

    def on_message(self, message: str) -> None:
        warning = message.startswith("warning: ")
        severity = "WARNING" if warning or message.startswith("dev mode") else "INFO"
        events.record_now(self.store, events.TUNING, self.job_id, message.removeprefix("warning: "), severity)

    def _metrics(self, step: int, metrics: dict, **progress: float) -> None:
        now = utcnow()
        with self.store.session() as s:
            for name, value in metrics.items():
                s.add(MetricRow(job_id=self.job_id, step=step, name=name, value=float(value), time=now))
            job = fetch(s, TuningJobRow, self.job_id)
            job.progress = {
                **(job.progress or {}),
                "step": step,
                **{k: float(v) for k, v in metrics.items()},
                **progress,
            }
            job.update_time = now

    def on_step(self, step: int, total_steps: int, metrics: dict) -> None:
        tokens, tps = float(metrics.get("step_tokens", 0.0)), float(metrics.get("tokens_per_second", 0.0))
        self.sums = (self.sums[0] + tokens, self.sums[1] + (tokens / tps if tps > 0 else 0.0))
        self._metrics(
            step,
            {k: v for k, v in metrics.items() if k.startswith("train_")},
            tokensPerSecond=tps,
            trainTokens=self.sums[0],
            trainSeconds=self.sums[1],
        )

    def on_eval(self, step: int, metrics: dict) -> None:
        self._metrics(step, metrics)


def run_job(job_id: str, db_url: str, settings_json: dict[str, Any], parent_pid: int, worker_id: str) -> None:
    """Run one tuning job to a final state (or stop when cancelled, paused or its worker stops). Runs in a fresh
    interpreter."""
    settings, store = child_setup(db_url, settings_json, parent_pid)
    with store.session() as s:
        row = fetch(s, TuningJobRow, job_id)
        config, project = TuningConfig(**row.config), row.project
    should_stop = StopCheck(store, TuningJobRow, job_id, parent_pid, worker_id)
    callbacks = DbCallbacks(store, job_id)
    try:
        result = _train(config, settings, store, project, callbacks, should_stop)
    except TuneforgeError as exc:
        _fail(store, job_id, exc.code, storage.client_text(str(exc), settings))
        return
    except Exception as exc:  # a bug or an environment problem: the job says so instead of hanging
        traceback.print_exc()
        _fail(store, job_id, "INTERNAL", storage.client_text(f"training failed: {type(exc).__name__}: {exc}", settings))
        return
    if result.cancelled:
        _stopped(store, job_id, result, parent_pid)
        return
    _succeed(store, job_id, result, config, settings)


def _train(
    config: TuningConfig, settings: Settings, store: Store, project: str, callbacks: Callbacks, should_stop
) -> RunResult:
    """The run of ``config.method``: SFT (in several processes when the operator asks), DPO, or distillation (the
    teacher labels and explains the prompts, then the student learns both)."""
    if config.method == "distillation":
        assert config.teacher is not None  # the service checked it
        resolve = resource_weights(store, project, settings, "distillationSpec.tunedTeacherModelSource")
        prepared, result = run_distill(
            config,
            teacher_from_reference(config.teacher, settings, resolve),
            settings=settings,
            rationale_weight=config.rationale_weight or DEFAULT_RATIONALE_WEIGHT,
            callbacks=callbacks,
            should_stop=should_stop,
        )
        result.stats_key = "distillationDataStats"
        result.data_stats = distillation_data_stats(
            result.data_stats, prepared.summary["examples"], prepared.teacher.unusable
        )
        return result
    # The images the lines name are checked again as they are read (the create checked them; a bucket can change).
    access = BucketPolicy(store, settings).for_project(project, claim=False)
    if settings.processes_per_job > 1 and config.tuning_mode == TuningMode.FULL and config.method == "supervised":
        return run_sft_processes(
            config,
            settings.processes_per_job,
            settings=settings,
            callbacks=callbacks,
            should_stop=should_stop,
            access=access,
        )
    return run_tuning(config, settings=settings, callbacks=callbacks, should_stop=should_stop, access=access)


def _stopped(store: Store, job_id: str, result: RunResult, parent_pid: int) -> None:
    """The run stopped at a step, its checkpoint saved: cancelled or paused, as asked. When neither is asked any more
    (a resume came while it was stopping) and its worker lives, it goes back in the queue to continue from that
    checkpoint. (A child whose worker died leaves the job to recovery, which may already have restarted it.)"""
    with store.session() as s:
        row = fetch(s, TuningJobRow, job_id, lock=True)
        now = utcnow()
        what = finish_stopped(row, now)
        at = f"at step {result.steps} of {result.total_steps}"
        if what == "Paused":
            events.record(s, events.TUNING, job_id, f"Paused {at}; resume continues from this step")
        elif what is not None:
            events.record(s, events.TUNING, job_id, f"{what} {at}")
        elif row.state == states.RUNNING and os.getppid() == parent_pid:
            release(row, states.PENDING)
            why = "The worker stopped" if terminating() else "Resumed while pausing"
            events.record(s, events.TUNING, job_id, f"{why} {at}: back in the queue, continues from this step")


def _fail(store: Store, job_id: str, code: str, message: str) -> None:
    with store.session() as s:
        row = fetch(s, TuningJobRow, job_id)
        now = utcnow()
        row.state, row.end_time, row.update_time = states.FAILED, now, now
        row.error = status(code, message)
        events.record(s, events.TUNING, job_id, f"Failed: {message}", "ERROR")


def _weights_note(result: RunResult) -> str:
    """Where the base's weights came from, when tuneforge converted them (a GGUF file, de-quantized)."""
    source = (result.record.get("model") or {}).get("weights_source")
    return f"; base weights {source['note']} ({source['weights']})" if source else ""


def _succeed(store: Store, job_id: str, result: RunResult, config: TuningConfig, settings: Settings) -> None:
    deploy = settings.auto_deploy
    now = utcnow()
    with store.session() as s:
        row = fetch(s, TuningJobRow, job_id)
        display = row.display_name
        model = register_model(
            s,
            project=row.project,
            location=row.location,
            display_name=display,
            description=f"Tuned by tuningJobs/{job_id} from {config.base_model}{_weights_note(result)}",
            artifact_uri=final_uri(config.output_uri),
            base_model=config.base_model,
            kind="lora" if config.tuning_mode == TuningMode.PEFT_ADAPTER else "full",
            labels=dict(row.labels or {}),
            source_job=job_id,
            tuning_job_id=job_id,
        )
        # The exported model is the run's one checkpoint: the last step's, or the best-evaluated one's.
        step = result.final_step or result.steps
        checkpoint: dict[str, Any] = {
            "checkpointId": "1",
            "epoch": str(max(1, math.ceil(step / max(1, result.resolved.steps_per_epoch)))),
            "step": str(step),
        }
        tuned: dict[str, Any] = {"model": model_name(model) + "@1", "checkpoints": [checkpoint]}
        if deploy:
            tuned["endpoint"] = checkpoint["endpoint"] = auto_deploy(s, model, display)
        row.tuned_model = tuned
        row.data_stats = {result.stats_key: result.data_stats}
        row.state, row.end_time, row.update_time = states.SUCCEEDED, now, now
        write_results(s, settings, job_id)  # a job made through the OpenAI API: its metrics CSV
        deployed = f", deployed to {tuned['endpoint']}" if tuned.get("endpoint") else ""
        events.record(s, events.TUNING, job_id, f"Succeeded after {result.steps} steps: {tuned['model']}{deployed}")
