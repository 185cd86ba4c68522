"""Commands that work on this machine: `tune` (or submit with --server), `distill`, `validate`, `models`."""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Literal, Optional

import typer
from rich.markup import escape

from tuneforge import storage
from tuneforge.catalog import TuningMode, load_catalog
from tuneforge.cli.client import Client
from tuneforge.cli.common import (
    API_KEY,
    LOCATION,
    PROJECT,
    api_errors,
    client,
    console,
    fail,
    print_json,
    settings,
    table,
)
from tuneforge.cli.config_options import config_options
from tuneforge.cli.progress import RunView, ViewCallbacks, follow
from tuneforge.cli.remote import task_table
from tuneforge.cli.validate import print_report
from tuneforge.control.pipeline_templates import DISTILLATION_TEMPLATE
from tuneforge.errors import TuneforgeError
from tuneforge.quiet import quiet_libraries
from tuneforge.train.config import TuningConfig
from tuneforge.wire.tuning import ADAPTER_RANKS

ADAPTER_SIZES = {rank: size.value for size, rank in ADAPTER_RANKS.items() if rank}  # 4 -> ADAPTER_SIZE_FOUR


def rank0() -> bool:
    """Under torchrun every rank runs the command; rank 0 alone shows progress and reports."""
    return os.environ.get("RANK", "0") == "0"


def _mode_option(help_text: str) -> tuple[Any, Any]:
    return Literal["lora", "full", "peft_adapter"], typer.Option(
        "lora", "--mode", help=help_text, show_default=True, case_sensitive=False
    )


TUNE_NAMES = {
    "base_model": ("--model", "-m"),
    "train_dataset": ("--train",),
    "validation_dataset": ("--validation",),
    "output_uri": ("--output-uri", "-o"),
    "learning_rate": ("--learning-rate", "--lr"),
    "fast_path": ("--fast-path/--reference-step",),
    "compile": ("--compile/--no-compile",),
    "dev": ("--dev/--no-dev",),
}


def tune(
    server: Optional[str] = typer.Option(
        None, "--server", help="Submit to this tuneforge server (URL) instead of running here.", show_default=False
    ),
    project: Optional[str] = PROJECT,
    location: Optional[str] = LOCATION,
    api_key: Optional[str] = API_KEY,
    *,
    config: dict[str, Any],
) -> None:
    """Run a tuning run here (or on a server with --server), with a progress bar."""
    config = {k: v for k, v in config.items() if v is not None}
    if server:
        _refuse_what_a_server_job_cannot_take(config)
        _tune_on_server(client(server, project, location, api_key), config)
        return
    quiet_libraries()
    try:
        run_config = TuningConfig(**config)
    except ValueError as exc:  # pydantic's message names the field
        fail(str(exc))
    _tune_here(run_config)


tune = config_options(
    TuningConfig, TUNE_NAMES, skip={"rationale_weight"}, tuning_mode=_mode_option("lora (PEFT_ADAPTER) or full (FULL).")
)(tune)


def _refuse_what_a_server_job_cannot_take(config: dict[str, Any]) -> None:
    """A server's preference tuning job (preferenceOptimizationSpec) has no learning rate or batch size."""
    if config.get("method") != "preference":
        return
    given = [
        flag for flag, key in (("--learning-rate", "learning_rate"), ("--batch-size", "batch_size")) if key in config
    ]
    if given:
        fail(
            f"{' and '.join(given)}: a server's preference tuning job takes --epochs, --learning-rate-multiplier, "
            "--adapter-size and --beta; drop them, or run here (without --server)"
        )


def _resume_command() -> str:
    return "tuneforge " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def _tune_here(config: TuningConfig) -> None:
    from tuneforge.train import run_tuning  # lazy: torch loads only for a run here, not for --server or --help
    from tuneforge.train.artifacts import RunLayout  # lazy: as above
    from tuneforge.train.checkpoint import latest_checkpoint  # lazy: as above
    from tuneforge.train.distributed import leave_world  # lazy: as above

    run_settings = settings(dev=config.dev)
    try:
        with RunView(enabled=rank0()) as view:
            try:
                result = run_tuning(config, settings=run_settings, callbacks=ViewCallbacks(view))
            finally:
                leave_world()  # under torchrun: every rank leaves the process group before exiting
    except TuneforgeError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        last = latest_checkpoint(RunLayout(storage.output_dir(config.output_uri, run_settings)))
        where = f"the last checkpoint is {last}" if last else "no checkpoint was written yet"
        fail(f"interrupted; {where}. Run the same command to resume from it:\n  {_resume_command()}", code=130)
    if not rank0():
        return
    if result.cancelled:
        console.print(f"stopped at step {result.steps}; run the same command again to resume")
        raise typer.Exit(1)
    verb = "reused" if result.reused else "done"
    console.print(f"[green]{verb}[/green]: {result.steps} steps; final model in {escape(str(result.final_dir))}")
    console.print(
        f"metrics: {result.output_dir / 'metrics.jsonl'}; TensorBoard: tensorboard --logdir "
        f"{result.output_dir / 'tensorboard'}"
    )


def _tuning_job_body(config: dict[str, Any]) -> dict[str, Any]:
    """The TuningJob a `tune --server` submits (the fields the API takes; the rest are a local run's)."""
    adapter = config.get("adapter_size")
    preference = config.get("method") == "preference"
    hyper = {
        "epochCount": str(int(config["epochs"])) if config.get("epochs") else None,
        "learningRateMultiplier": config.get("learning_rate_multiplier"),
        "adapterSize": ADAPTER_SIZES.get(adapter, adapter) if adapter is not None else None,
        **(
            {"beta": config.get("beta")}
            if preference
            else {
                "learningRate": config.get("learning_rate"),
                "batchSize": str(config["batch_size"]) if config.get("batch_size") else None,
            }
        ),
    }
    mode = TuningMode.parse(config.get("tuning_mode", "lora"))
    spec = {
        "trainingDatasetUri": config["train_dataset"],
        "tuningMode": f"TUNING_MODE_{mode.value}",
        "hyperParameters": {k: v for k, v in hyper.items() if v is not None},
    }
    if config.get("validation_dataset"):
        spec["validationDatasetUri"] = config["validation_dataset"]
    spec_name = "preferenceOptimizationSpec" if preference else "supervisedTuningSpec"
    body = {"baseModel": config["base_model"], "outputUri": config["output_uri"], spec_name: spec}
    if config.get("custom_base_model"):
        body["customBaseModel"] = config["custom_base_model"]
    return body


def _tune_on_server(c: Client, config: dict[str, Any]) -> None:
    with api_errors(c):
        job = c.create_tuning_job(_tuning_job_body(config))
        console.print(f"submitted {job['name']}")
        try:
            final = follow(c, job["name"])
        except KeyboardInterrupt:
            job_id = job["name"].rsplit("/", 1)[-1]
            flags = f"--server {c.url} --project {c.project} --location {c.location}"
            fail(
                f"interrupted; the job keeps running on the server. Follow it with `tuneforge jobs follow {job_id} "
                f"{flags}`, cancel it with `tuneforge jobs cancel {job_id} {flags}`",
                code=130,
            )
    error = final.get("error", {}).get("message")
    console.print(
        final["state"] + (f": {error}" if error else f"; model {final.get('tunedModel', {}).get('model', '')}")
    )
    raise typer.Exit(0 if final["state"] == "JOB_STATE_SUCCEEDED" else 1)


# -- distill --------------------------------------------------------------------------------------------------------


def distill(
    teacher: str = typer.Option(
        ...,
        "--teacher",
        help="Catalog id, model folder or gs:// URI, an OpenAI-compatible "
        "URL (e.g. a tuneforge endpoint's …/endpoints/ID), or with --server a model or "
        "endpoint name.",
    ),
    student: str = typer.Option(..., "--student", help="Catalog id of the student model."),
    train: str = typer.Option(
        ...,
        "--train",
        help="JSONL of input_text with optional output_text (unlabelled lines are labelled by the teacher).",
    ),
    evaluation: Optional[str] = typer.Option(None, "--eval", help="Labelled evaluation JSONL (10-250 lines)."),
    output_uri: Optional[str] = typer.Option(
        None, "--output-uri", "-o", help="Output folder or gs:// URI (local runs)."
    ),
    steps: int = typer.Option(300, "--steps", help="Optimizer steps (train_steps)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Examples per step (the pipeline's documented 8)."),
    learning_rate_multiplier: float = typer.Option(
        1.0, "--learning-rate-multiplier", help="Multiplies the catalog's recommended learning rate."
    ),
    rationale_weight: float = typer.Option(
        1.0, "--rationale-weight", help="lambda in loss = label loss + lambda x rationale loss."
    ),
    mode: str = typer.Option("lora", "--mode", help="lora (PEFT_ADAPTER) or full (FULL), local runs."),
    fewshot: Optional[Path] = typer.Option(
        None, "--fewshot", help="JSONL of input_text, rationale, output_text demonstrations for the teacher prompt."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N (local runs)."),
    dev: bool = typer.Option(False, "--dev", help="Run models without weights on their tiny stand-in."),
    server: Optional[str] = typer.Option(
        None, "--server", help="Submit a distillation pipeline job to this server instead.", show_default=False
    ),
    project: Optional[str] = PROJECT,
    location: Optional[str] = LOCATION,
    api_key: Optional[str] = API_KEY,
) -> None:
    """Distillation step by step: the teacher explains (and labels) the data, the student learns answers and
    rationales."""
    if server:
        _distill_on_server(
            client(server, project, location, api_key),
            teacher,
            student,
            train,
            evaluation,
            steps,
            learning_rate_multiplier,
        )
        return
    if output_uri is None:
        fail("--output-uri is required for a local run")
    quiet_libraries()
    demonstrations = _fewshot(fewshot)
    try:
        config = TuningConfig(
            base_model=student,
            train_dataset=train,
            validation_dataset=evaluation,
            tuning_mode=mode,
            output_uri=output_uri,
            max_steps=steps,
            batch_size=batch_size,
            learning_rate_multiplier=learning_rate_multiplier,
            device=device,
            dev=dev or None,
        )
    except ValueError as exc:
        fail(str(exc))
    _distill_here(config, teacher, api_key, demonstrations, rationale_weight)


def _fewshot(path: Path | None) -> tuple[dict[str, str], ...] | None:
    if path is None:
        return None
    demonstrations = tuple(json.loads(line) for line in path.read_text().splitlines() if line.strip())
    bad = [i for i, d in enumerate(demonstrations, 1) if not {"input_text", "rationale", "output_text"} <= set(d)]
    if bad:
        fail(f"{path}: lines {bad} need input_text, rationale and output_text")
    return demonstrations


def _distill_on_server(
    c: Client,
    teacher: str,
    student: str,
    train: str,
    evaluation: str | None,
    steps: int,
    learning_rate_multiplier: float,
) -> None:
    params = {
        "project": c.project,
        "location": c.location,
        "teacher_model_reference": teacher,
        "student_model_reference": student,
        "dataset_uri": train,
        "train_steps": steps,
        "learning_rate_multiplier": learning_rate_multiplier,
    }
    if evaluation:
        params["evaluation_data_uri"] = evaluation
    body = {"templateUri": DISTILLATION_TEMPLATE, "runtimeConfig": {"parameterValues": params}}
    with api_errors(c):
        job = c.create_pipeline_job(body, f"distillation-{time.strftime('%Y%m%d%H%M%S')}")
        console.print(f"submitted {job['name']}")
        while job["state"] not in ("PIPELINE_STATE_SUCCEEDED", "PIPELINE_STATE_FAILED", "PIPELINE_STATE_CANCELLED"):
            time.sleep(1)
            job = c.get(job["name"], collection="pipelineJobs")
    console.print(task_table(job))
    console.print(job["state"] + (f": {job['error']['message']}" if job.get("error") else ""))
    raise typer.Exit(0 if job["state"] == "PIPELINE_STATE_SUCCEEDED" else 1)


def _distill_here(config: TuningConfig, teacher: str, api_key: str | None, fewshot, rationale_weight: float) -> None:
    from tuneforge.train.recipes import distill as recipe  # lazy: torch loads only for a run here

    run_settings = settings(dev=config.dev)
    try:
        teacher_model = recipe.teacher_from_reference(teacher, run_settings, api_key=api_key)
        console.print(f"teacher {teacher_model.name}: explaining the training data …")
        with RunView(enabled=rank0()) as view:
            prepared, result = recipe.run_distill(
                config,
                teacher_model,
                settings=run_settings,
                fewshot=fewshot or recipe.FEWSHOT,
                rationale_weight=rationale_weight,
                callbacks=ViewCallbacks(view),
            )
    except TuneforgeError as exc:
        fail(str(exc))
    summary = prepared.summary
    console.print(
        f"teacher outputs: {summary['teacher_outputs_uri']} ({'reused' if summary['teacher_reused'] else 'new'}"
        f"; {summary['teacher_labelled']} labelled by the teacher, {summary['teacher_unusable']} unusable); "
        f"truncated inputs {summary['truncated_inputs']}, outputs {summary['truncated_outputs']}"
    )
    if not rank0():
        return
    if result.cancelled:
        console.print(f"stopped at step {result.steps}; run the same command again to resume")
        raise typer.Exit(1)
    console.print(
        f"[green]done[/green]: {result.steps} steps on {summary['multitask_examples']} predict/explain "
        f"examples; the student (answers label-only) is in {result.final_dir}"
    )


# -- validate, models -------------------------------------------------------------------------------------------------

FLOWS = {  # --for: what train/dataset_check.py calls the purpose
    "sft": "supervised",
    "preference": "preference",
    "code-generation": "code-generation",
    "code-chat": "code-chat",
    "distillation": "distillation",
}


def validate(
    file: str = typer.Argument(..., help="JSONL dataset (path or gs:// URI)."),
    flow: str = typer.Option(
        "sft",
        "--for",
        help="What the data is for: sft or preference (tuningJobs and `tune`), "
        "code-generation, code-chat or distillation (the pipelines).",
    ),
    model: Optional[str] = typer.Option(
        None,
        "--model",
        "-m",
        help="Catalog model id the data is for (sft and preference: needed for token limits).",
        show_default=False,
    ),
    mode: str = typer.Option("lora", "--mode", help="lora (PEFT_ADAPTER) or full (FULL)."),
    evaluation: Optional[str] = typer.Option(
        None, "--eval", help="The pipelines' evaluation JSONL, checked too.", show_default=False
    ),
    strict_length: bool = typer.Option(False, "--strict-length", help="Over-long examples are errors."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    dev: bool = typer.Option(False, "--dev", help="Use the tiny stand-in's tokenizer when weights are not configured."),
) -> None:
    """Check a dataset: every bad line with its line number, field, problem and fix."""
    if flow not in FLOWS:
        fail(f"--for must be one of {', '.join(FLOWS)} (got {flow!r})")
    if flow in ("sft", "preference") and model is None:
        fail(f"--model is required with --for {flow}: the token limits are the model's (see `tuneforge models`)")
    quiet_libraries()
    from tuneforge.train.dataset_check import dataset_report  # lazy: it loads torch (the `tuneforge` start)

    with api_errors():
        report, limits_line = dataset_report(
            file,
            FLOWS[flow],
            model,
            TuningMode.parse(mode),
            settings(dev=dev or None),
            evaluation=evaluation,
            strict_length=strict_length,
        )
    if as_json:
        print_json(report.to_json())
    else:
        print_report(report, limits_line)
    raise typer.Exit(0 if report.ok else 1)


def models(as_json: bool = typer.Option(False, "--json", help="Print the catalog as JSON.")) -> None:
    """List the catalog: model ids, families, modes and sequence limits, and whether weights are configured."""
    catalog = load_catalog(settings())
    rows = []
    for entry in catalog.models.values():
        modes = ", ".join(f"{m.value} ({s.max_seq_len})" for m, s in entry.modes.items())
        rows.append([entry.id, entry.family, modes, entry.weights or "not configured"])
    for alias in catalog.aliases.values():
        rows.append(
            [
                alias.id,
                f"closed -> {alias.family}",
                ", ".join(m.value for m in alias.modes),
                f"maps to {alias.maps_to}" if alias.maps_to else "not mapped",
            ]
        )
    for pattern in catalog.alias_patterns.values():
        modes = ", ".join(m.value for m in pattern.modes)
        rows.append([pattern.id, f"closed -> {pattern.family}", modes, "any such id; map one under aliases"])
    if as_json:
        print_json([dict(zip(("id", "family", "modes", "weights"), r)) for r in rows])
        return
    console.print(table(["id", "family", "modes (max tokens)", "weights"], rows))
