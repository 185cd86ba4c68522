"""`tuneforge` command line: tune, distill, validate, demo, models, serve, worker, jobs, pipelines, deploy, predict, chat."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Self-hosted, Vertex AI-compatible model tuning.")
console = Console()
err = Console(stderr=True)


_ADAPTER_WORDS = {1: "ONE", 2: "TWO", 4: "FOUR", 8: "EIGHT", 16: "SIXTEEN", 32: "THIRTY_TWO"}

jobs_app = typer.Typer(help="Tuning jobs on a tuneforge server.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")


def _client(server: str, project: str, location: str, api_key: str | None):
    from tuneforge.client import Client

    return Client(server, project=project, location=location, api_key=api_key)


_SERVER = typer.Option("http://127.0.0.1:8080", "--server", envvar="TUNEFORGE_SERVER", help="Server URL.")
_PROJECT = typer.Option("tuneforge", "--project", help="Project.")
_LOCATION = typer.Option("us-central1", "--location", help="Region.")
_KEY = typer.Option(None, "--api-key", envvar="TUNEFORGE_API_KEY", help="API key.")


@jobs_app.command("list")
def jobs_list(server: str = _SERVER, project: str = _PROJECT, location: str = _LOCATION,
              api_key: Optional[str] = _KEY, filter: Optional[str] = typer.Option(None, help='e.g. state=JOB_STATE_RUNNING')):
    """List tuning jobs, newest first."""
    from tuneforge.client import ApiError

    try:
        jobs = _client(server, project, location, api_key).list(filter)
    except ApiError as exc:
        _fail(exc)
    table = Table("job", "state", "base model", "display name", "created")
    for j in jobs:
        table.add_row(j["name"].rsplit("/", 1)[-1], j["state"].removeprefix("JOB_STATE_"), j.get("baseModel", ""),
                      j.get("tunedModelDisplayName", ""), j.get("createTime", ""))
    console.print(table)


@jobs_app.command("get")
def jobs_get(job: str, server: str = _SERVER, project: str = _PROJECT, location: str = _LOCATION,
             api_key: Optional[str] = _KEY):
    """Print a tuning job as JSON."""
    from tuneforge.client import ApiError

    try:
        print(json.dumps(_client(server, project, location, api_key).get(job), indent=2))
    except ApiError as exc:
        _fail(exc)


@jobs_app.command("cancel")
def jobs_cancel(job: str, server: str = _SERVER, project: str = _PROJECT, location: str = _LOCATION,
                api_key: Optional[str] = _KEY):
    """Cancel a tuning job."""
    from tuneforge.client import ApiError

    try:
        _client(server, project, location, api_key).cancel(job)
    except ApiError as exc:
        _fail(exc)
    console.print(f"cancelling {job}")


pipelines_app = typer.Typer(help="Pipeline jobs (code-model tuning, distillation) on a tuneforge server.",
                            no_args_is_help=True)
app.add_typer(pipelines_app, name="pipelines")


@pipelines_app.command("list")
def pipelines_list(server: str = _SERVER, project: str = _PROJECT, location: str = _LOCATION,
                   api_key: Optional[str] = _KEY):
    """List pipeline jobs, newest first, with the task each is on."""
    from tuneforge.client import ApiError

    try:
        jobs = _client(server, project, location, api_key).list(collection="pipelineJobs")
    except ApiError as exc:
        _fail(exc)
    table = Table("job", "state", "task", "display name", "created")
    for j in jobs:
        tasks = j.get("jobDetail", {}).get("taskDetails", [])[1:]
        current = next((t["taskName"] for t in tasks if t["state"] in ("RUNNING", "FAILED", "CANCELLED")), "")
        table.add_row(j["name"].rsplit("/", 1)[-1], j["state"].removeprefix("PIPELINE_STATE_"), current,
                      j.get("displayName", ""), j.get("createTime", ""))
    console.print(table)


def _task_table(job: dict) -> Table:
    table = Table("task", "state", "started", "ended", "outputs")
    for t in job.get("jobDetail", {}).get("taskDetails", []):
        meta = (t.get("execution") or {}).get("metadata") or {}
        outputs = ", ".join(f"{k.removeprefix('output:')}={v}" for k, v in meta.items() if k.startswith("output:"))
        table.add_row(t["taskName"], t["state"], t.get("startTime", ""), t.get("endTime", ""),
                      outputs + (f" error: {t['error']['message']}" if t.get("error") else ""))
    return table


@pipelines_app.command("get")
def pipelines_get(job: str, server: str = _SERVER, project: str = _PROJECT, location: str = _LOCATION,
                  api_key: Optional[str] = _KEY, as_json: bool = typer.Option(False, "--json", help="Print the resource as JSON.")):
    """Show a pipeline job: its state and each task's state, times and outputs."""
    from tuneforge.client import ApiError

    try:
        resource = _client(server, project, location, api_key).get(job, collection="pipelineJobs")
    except ApiError as exc:
        _fail(exc)
    if as_json:
        print(json.dumps(resource, indent=2))
        return
    console.print(f"{resource['name']}: {resource['state']}" + (f" ({resource['error']['message']})" if resource.get("error") else ""))
    console.print(_task_table(resource))


@pipelines_app.command("cancel")
def pipelines_cancel(job: str, server: str = _SERVER, project: str = _PROJECT, location: str = _LOCATION,
                     api_key: Optional[str] = _KEY):
    """Cancel a pipeline job; its running task stops."""
    from tuneforge.client import ApiError

    try:
        _client(server, project, location, api_key).cancel(job, collection="pipelineJobs")
    except ApiError as exc:
        _fail(exc)
    console.print(f"cancelling {job}")


@app.command()
def deploy(
    model: str = typer.Argument(..., help="Registry model (id or projects/…/models/ID) or weights (gs://… folder)."),
    endpoint: Optional[str] = typer.Option(None, "--endpoint", help="Deploy onto this endpoint (default: a new one)."),
    machine_type: Optional[str] = typer.Option(None, "--machine-type", help="Recorded, e.g. g2-standard-12."),
    accelerator_type: Optional[str] = typer.Option(None, "--accelerator-type", help="Recorded, e.g. NVIDIA_L4."),
    accelerator_count: int = typer.Option(0, "--accelerator-count"),
    server: str = _SERVER, project: str = _PROJECT, location: str = _LOCATION, api_key: Optional[str] = _KEY,
):
    """Deploy a model on an endpoint and print the endpoint's name."""
    from tuneforge.errors import TuneforgeError

    resources = {}
    if machine_type or accelerator_type:
        spec = {k: v for k, v in (("machineType", machine_type), ("acceleratorType", accelerator_type)) if v}
        if accelerator_type:
            spec["acceleratorCount"] = accelerator_count or 1
        resources = {"dedicatedResources": {"machineSpec": spec, "minReplicaCount": 1, "maxReplicaCount": 1}}
    try:
        name = _client(server, project, location, api_key).deploy(model, endpoint, resources)
    except TuneforgeError as exc:
        _fail(exc)
    print(name)


@app.command()
def predict(
    endpoint: str = typer.Argument(..., help="Endpoint id or projects/…/endpoints/ID."),
    prompt: str = typer.Argument(..., help="The prompt."),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens"),
    temperature: Optional[float] = typer.Option(None, "--temperature"),
    top_p: Optional[float] = typer.Option(None, "--top-p"),
    top_k: Optional[int] = typer.Option(None, "--top-k"),
    server: str = _SERVER, project: str = _PROJECT, location: str = _LOCATION, api_key: Optional[str] = _KEY,
):
    """Send one prompt to an endpoint's predict and print the answer."""
    from tuneforge.errors import TuneforgeError

    instance = {"prompt": prompt, "raw_response": True, "max_tokens": max_tokens, "temperature": temperature,
                "top_p": top_p, "top_k": top_k}
    try:
        out = _client(server, project, location, api_key).predict(endpoint, [{k: v for k, v in instance.items()
                                                                              if v is not None}])
    except TuneforgeError as exc:
        _fail(exc)
    print(out["predictions"][0])


@app.command()
def chat(
    endpoint: str = typer.Argument(..., help="Endpoint id or projects/…/endpoints/ID."),
    system: Optional[str] = typer.Option(None, "--system", help="System instruction."),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens"),
    temperature: Optional[float] = typer.Option(None, "--temperature"),
    server: str = _SERVER, project: str = _PROJECT, location: str = _LOCATION, api_key: Optional[str] = _KEY,
):
    """Chat with an endpoint: type a message, read the streamed answer; an empty line or Ctrl-D ends."""
    from tuneforge.errors import TuneforgeError

    client = _client(server, project, location, api_key)
    history = [{"role": "system", "content": system}] if system else []
    interactive = sys.stdin.isatty()
    while True:
        if interactive:
            console.print("[bold]you>[/bold] ", end="")
        line = sys.stdin.readline()
        if not line.strip():
            return
        history.append({"role": "user", "content": line.rstrip("\n")})
        answer = []
        try:
            for piece in client.chat_stream(endpoint, history, max_tokens=max_tokens, temperature=temperature):
                answer.append(piece)
                sys.stdout.write(piece)
                sys.stdout.flush()
        except TuneforgeError as exc:
            _fail(exc)
        sys.stdout.write("\n")
        history.append({"role": "assistant", "content": "".join(answer)})


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import warnings

    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)


def _settings(dev: bool | None = None):
    from tuneforge.settings import Settings

    overrides = {"dev": dev} if dev is not None else {}
    return Settings(**overrides)


class RichCallbacks:
    """Progress bar with steps, loss, tokens/s and ETA."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.task = None

    def on_start(self, total_steps, start_step, info):
        self.task = self.progress.add_task("training", total=total_steps, completed=start_step, loss="-", tps="-")

    def on_step(self, step, total_steps, metrics):
        self.progress.update(self.task, completed=step, loss=f"{metrics['train_total_loss']:.4f}",
                             tps=f"{metrics['tokens_per_second']:,.0f}")

    def on_eval(self, step, metrics):
        self.progress.console.print(
            f"  step {step}: eval_total_loss {metrics['eval_total_loss']:.4f}, "
            f"eval token accuracy {metrics['eval_fraction_of_correct_next_step_preds']:.3f}"
        )

    def on_message(self, message):
        self.progress.console.print(f"  {message}")


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[tps]} tok/s"),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console,
        disable=not _rank0(),
    )


def _rank0() -> bool:
    """Under torchrun every rank runs this command; rank 0 alone shows progress and reports."""
    return os.environ.get("RANK", "0") == "0"


def _fail(exc: Exception) -> None:
    err.print(f"[red]error:[/red] {exc}")
    raise typer.Exit(1)


@app.command()
def tune(
    model: str = typer.Option(..., "--model", "-m", help="Catalog model id (see `tuneforge models`)."),
    train: str = typer.Option(..., "--train", help="Training JSONL (path or gs:// URI)."),
    validation: Optional[str] = typer.Option(None, "--validation", help="Validation JSONL."),
    mode: str = typer.Option("lora", "--mode", help="lora (PEFT_ADAPTER) or full (FULL)."),
    output_uri: str = typer.Option(..., "--output-uri", "-o", help="Output folder or gs:// URI."),
    epochs: Optional[float] = typer.Option(None, help="Epochs (catalog default)."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Optimizer steps instead of epochs."),
    learning_rate: Optional[float] = typer.Option(None, "--learning-rate", "--lr"),
    learning_rate_multiplier: Optional[float] = typer.Option(None, "--learning-rate-multiplier"),
    adapter_size: Optional[int] = typer.Option(None, "--adapter-size", help="LoRA rank: 1, 2, 4, 8, 16, 32."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size"),
    micro_batch_size: Optional[int] = typer.Option(None, "--micro-batch-size"),
    eval_steps: Optional[int] = typer.Option(None, "--eval-steps"),
    save_steps: Optional[int] = typer.Option(None, "--save-steps"),
    early_stopping: bool = typer.Option(False, "--early-stopping"),
    best_checkpoint: bool = typer.Option(False, "--best-checkpoint", help="Export the best-evaluated checkpoint."),
    packing: str = typer.Option("auto", help="auto, on or off."),
    custom_base_model: Optional[str] = typer.Option(None, "--custom-base-model", help="Custom weights or an earlier run's output."),
    export_merged: bool = typer.Option(False, "--export-merged", help="LoRA: also write a merged model."),
    strict_length: bool = typer.Option(False, "--strict-length", help="Reject over-long examples."),
    seed: int = typer.Option(42),
    device: str = typer.Option("auto"),
    fast_path: bool = typer.Option(True, "--fast-path/--reference-step", help="The fast training step (packed by "
                                   "token budget, chunked loss on target tokens) or the reference step."),
    micro_batch_tokens: Optional[int] = typer.Option(None, "--micro-batch-tokens", help="Fast path: tokens per micro-batch."),
    attention: str = typer.Option("auto", "--attention", help="auto, sdpa, flex_attention, flash_attention_2 or eager."),
    activation_checkpointing: bool = typer.Option(False, "--activation-checkpointing", help="Recompute activations in "
                                                  "the backward pass (less memory)."),
    kernels: str = typer.Option("none", "--kernels", help="none, or liger (Liger's Triton kernels; CUDA)."),
    compile_layers: bool = typer.Option(False, "--compile", help="torch.compile each decoder layer."),
    dev: bool = typer.Option(False, "--dev", help="Run models without weights on their tiny stand-in."),
    server: Optional[str] = typer.Option(None, "--server", help="Submit to this tuneforge server (URL) instead of running here."),
    project: str = typer.Option("tuneforge", "--project", help="With --server: the project."),
    location: str = typer.Option("us-central1", "--location", help="With --server: the region."),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="TUNEFORGE_API_KEY", help="With --server: the API key."),
):
    """Run a tuning run here (or on a server with --server), with a progress bar."""
    if server:
        from tuneforge.client import ApiError, Client

        hyper = {k: v for k, v in {"epochCount": str(int(epochs)) if epochs else None, "learningRate": learning_rate,
                                   "learningRateMultiplier": learning_rate_multiplier, "adapterSize": adapter_size and f"ADAPTER_SIZE_{_ADAPTER_WORDS[adapter_size]}",
                                   "batchSize": str(batch_size) if batch_size else None}.items() if v is not None}
        spec = {"trainingDatasetUri": train, "tuningMode": "TUNING_MODE_FULL" if mode.lower() in ("full", "1") else "TUNING_MODE_PEFT_ADAPTER",
                "hyperParameters": hyper}
        if validation:
            spec["validationDatasetUri"] = validation
        body = {"baseModel": model, "outputUri": output_uri, "supervisedTuningSpec": spec}
        if custom_base_model:
            body["customBaseModel"] = custom_base_model
        client = Client(server, project=project, location=location, api_key=api_key)
        try:
            job = client.create_tuning_job(body)
            console.print(f"submitted {job['name']}")
            final = _follow(client, job["name"])
        except ApiError as exc:
            _fail(exc)
        console.print(f"{final['state']}" + (f": {final['error']['message']}" if final.get("error") else
                                              f"; model {final.get('tunedModel', {}).get('model', '')}"))
        raise typer.Exit(0 if final["state"] == "JOB_STATE_SUCCEEDED" else 1)
    _quiet_libraries()
    from tuneforge.errors import TuneforgeError
    from tuneforge.train import TuningConfig, run_sft

    try:
        config = TuningConfig(
            base_model=model, train_dataset=train, validation_dataset=validation, tuning_mode=mode,
            output_uri=output_uri, epochs=epochs, max_steps=max_steps, learning_rate=learning_rate,
            learning_rate_multiplier=learning_rate_multiplier, adapter_size=adapter_size, batch_size=batch_size,
            micro_batch_size=micro_batch_size, eval_steps=eval_steps, save_steps=save_steps,
            early_stopping=early_stopping, checkpoint_selection="best" if best_checkpoint else "last",
            packing=packing, custom_base_model=custom_base_model, export_merged=export_merged,
            strict_length=strict_length, seed=seed, device=device, dev=dev or None, fast_path=fast_path,
            micro_batch_tokens=micro_batch_tokens, attention=attention,
            activation_checkpointing=activation_checkpointing, kernels=kernels, compile=compile_layers,
        )
    except Exception as exc:  # pydantic's message names the field
        _fail(exc)
    try:
        with _progress() as progress:
            result = run_sft(config, settings=_settings(dev or None), callbacks=RichCallbacks(progress))
    except TuneforgeError as exc:
        _fail(exc)
    if not _rank0():
        return
    if result.cancelled:
        console.print(f"stopped at step {result.steps}; run the same command again to resume")
        raise typer.Exit(1)
    console.print(f"[green]done[/green]: {result.steps} steps; final model in {result.final_dir}")
    console.print(f"metrics: {result.output_dir / 'metrics.jsonl'}; TensorBoard: tensorboard --logdir {result.output_dir / 'tensorboard'}")


@app.command()
def distill(
    teacher: str = typer.Option(..., "--teacher", help="Catalog id, model folder or gs:// URI, an OpenAI-compatible URL "
                                "(e.g. a tuneforge endpoint's …/endpoints/ID), or with --server a model/endpoint name."),
    student: str = typer.Option(..., "--student", help="Catalog id of the student model."),
    train: str = typer.Option(..., "--train", help="JSONL of input_text with optional output_text (unlabelled lines are labelled by the teacher)."),
    evaluation: Optional[str] = typer.Option(None, "--eval", help="Labelled evaluation JSONL (10-250 lines)."),
    output_uri: Optional[str] = typer.Option(None, "--output-uri", "-o", help="Output folder or gs:// URI (local runs)."),
    steps: int = typer.Option(300, "--steps", help="Optimizer steps (train_steps)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Examples per step (the pipeline's documented 8)."),
    learning_rate_multiplier: float = typer.Option(1.0, "--learning-rate-multiplier"),
    rationale_weight: float = typer.Option(1.0, "--rationale-weight", help="lambda in loss = label loss + lambda x rationale loss."),
    mode: str = typer.Option("lora", "--mode", help="lora (PEFT_ADAPTER) or full (FULL), local runs."),
    fewshot: Optional[Path] = typer.Option(None, "--fewshot", help="JSONL of input_text, rationale, output_text demonstrations for the teacher prompt."),
    device: str = typer.Option("auto"),
    dev: bool = typer.Option(False, "--dev", help="Run models without weights on their tiny stand-in."),
    server: Optional[str] = typer.Option(None, "--server", help="Submit a distillation pipeline job to this server instead."),
    project: str = typer.Option("tuneforge", "--project"),
    location: str = typer.Option("us-central1", "--location"),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="TUNEFORGE_API_KEY"),
):
    """Distillation step by step: the teacher explains (and labels) the data, the student learns answers and rationales."""
    if server:
        from tuneforge.client import ApiError, Client
        from tuneforge.jobs.pipelines import _KFP

        params = {"project": project, "location": location, "teacher_model_reference": teacher,
                  "student_model_reference": student, "dataset_uri": train, "train_steps": steps,
                  "learning_rate_multiplier": learning_rate_multiplier}
        if evaluation:
            params["evaluation_data_uri"] = evaluation
        body = {"templateUri": _KFP + "distillation/distillation/v1.0.0", "runtimeConfig": {"parameterValues": params}}
        client = Client(server, project=project, location=location, api_key=api_key)
        try:
            job = client.create_pipeline_job(body, f"distillation-{time.strftime('%Y%m%d%H%M%S')}")
            console.print(f"submitted {job['name']}")
            while job["state"] not in ("PIPELINE_STATE_SUCCEEDED", "PIPELINE_STATE_FAILED", "PIPELINE_STATE_CANCELLED"):
                time.sleep(1)
                job = client.get(job["name"], collection="pipelineJobs")
        except ApiError as exc:
            _fail(exc)
        console.print(_task_table(job))
        console.print(job["state"] + (f": {job['error']['message']}" if job.get("error") else ""))
        raise typer.Exit(0 if job["state"] == "PIPELINE_STATE_SUCCEEDED" else 1)
    if output_uri is None:
        _fail(ValueError("--output-uri is required for a local run"))
    _quiet_libraries()
    from tuneforge.errors import TuneforgeError
    from tuneforge.train import TuningConfig
    from tuneforge.train.recipes.distill import (
        FEWSHOT,
        run_distill,
        teacher_from_reference,
    )

    settings = _settings(dev or None)
    demonstrations = FEWSHOT
    if fewshot is not None:
        demonstrations = tuple(json.loads(line) for line in fewshot.read_text().splitlines() if line.strip())
        bad = [i for i, d in enumerate(demonstrations, 1) if not {"input_text", "rationale", "output_text"} <= set(d)]
        if bad:
            _fail(ValueError(f"{fewshot}: lines {bad} need input_text, rationale and output_text"))
    try:
        config = TuningConfig(base_model=student, train_dataset=train, validation_dataset=evaluation, tuning_mode=mode,
                              output_uri=output_uri, max_steps=steps, batch_size=batch_size,
                              learning_rate_multiplier=learning_rate_multiplier, device=device, dev=dev or None)
    except Exception as exc:
        _fail(exc)
    try:
        teacher_model = teacher_from_reference(teacher, settings, api_key=api_key)
        console.print(f"teacher {teacher_model.name}: explaining the training data …")
        with _progress() as progress:
            prepared, result = run_distill(config, teacher_model, settings=settings, fewshot=demonstrations,
                                           rationale_weight=rationale_weight, callbacks=RichCallbacks(progress))
    except TuneforgeError as exc:
        _fail(exc)
    summary = prepared.summary
    console.print(f"teacher outputs: {summary['teacher_outputs_uri']} ({'reused' if summary['teacher_reused'] else 'new'}; "
                  f"{summary['teacher_labelled']} labelled by the teacher, {summary['teacher_unusable']} unusable); "
                  f"truncated inputs {summary['truncated_inputs']}, outputs {summary['truncated_outputs']}")
    if not _rank0():
        return
    if result.cancelled:
        console.print(f"stopped at step {result.steps}; run the same command again to resume")
        raise typer.Exit(1)
    console.print(f"[green]done[/green]: {result.steps} steps on {summary['multitask_examples']} predict/explain "
                  f"examples; the student (answers label-only) is in {result.final_dir}")


@app.command()
def validate(
    file: str = typer.Argument(..., help="JSONL dataset (path or gs:// URI)."),
    model: str = typer.Option(..., "--model", "-m", help="Catalog model id the data is for."),
    mode: str = typer.Option("lora", "--mode", help="lora (PEFT_ADAPTER) or full (FULL)."),
    strict_length: bool = typer.Option(False, "--strict-length", help="Over-long examples are errors."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    dev: bool = typer.Option(False, "--dev", help="Use the tiny stand-in's tokenizer when weights are not configured."),
):
    """Check a dataset for a model: every bad line with its line number, field, problem and fix."""
    _quiet_libraries()
    from tuneforge.catalog import TuningMode, load_catalog
    from tuneforge.data import Limits, Report, prepare_dataset
    from tuneforge.errors import TuneforgeError, WeightsNotConfigured
    from tuneforge.train.loading import chat_encoder, limits_for, resolve_source

    settings = _settings(dev or None)
    report = Report(source=file)
    try:
        catalog = load_catalog(settings)
        tuning_mode = TuningMode.parse(mode)
        encoder = None
        try:
            source = resolve_source(catalog, model, None, dev=settings.dev, settings=settings)
            entry = source.resolved.entry
            encoder = chat_encoder(source)
        except WeightsNotConfigured as exc:
            # Structure is still checked; token counts need the model's tokenizer.
            entry = catalog.models.get(model)  # None for a closed id that is not mapped yet
            report.warning(f"token limits not checked: {exc.message.splitlines()[0]} (or pass --dev to count "
                           "with the tiny stand-in's tokenizer)")
        if entry is not None:
            limits = limits_for(entry, model, tuning_mode, strict_length)
        else:
            limits = Limits(model_id=model, mode=tuning_mode.value, max_seq_len=0, strict=strict_length)
        prepared = prepare_dataset(file, limits, encoder, settings=settings, report=report)
    except TuneforgeError as exc:
        _fail(exc)
    report = prepared.report
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        for p in report.errors:
            console.print(f"[red]error[/red]   {_esc(str(p))}")
        for p in report.warnings:
            console.print(f"[yellow]warning[/yellow] {_esc(str(p))}")
        info = report.info
        summary = f"{info.get('examples', 0)} examples in {info.get('lines', 0)} lines"
        if "format" in info:
            summary += f", format {info['format']}"
        if "tokens" in info:
            summary += (f"; {info['tokens']:,} tokens (longest {info['max_tokens']:,}, {info['target_tokens']:,} "
                        f"trained), {info['truncated']} over the limit")
        console.print(summary)
        if limits.max_seq_len:
            console.print(f"limits: {model} in {tuning_mode.value} mode: at most {limits.max_seq_len} tokens per "
                          "example" + "".join(f"; {v} in {m}" for m, v in limits.other_modes.items()))
        verdict = "[green]OK[/green]" if report.ok else f"[red]{len(report.errors)} error(s)[/red]"
        console.print(f"{verdict}, {len(report.warnings)} warning(s)")
    raise typer.Exit(0 if report.ok else 1)


def _esc(text: str) -> str:
    from rich.markup import escape

    return escape(text)


@app.command()
def models():
    """List the catalog: model ids, families, modes and sequence limits, and whether weights are configured."""
    from tuneforge.catalog import load_catalog

    catalog = load_catalog(_settings())
    table = Table("id", "family", "modes (max tokens)", "weights")
    for entry in catalog.models.values():
        modes = ", ".join(f"{m.value} ({s.max_seq_len})" for m, s in entry.modes.items())
        table.add_row(entry.id, entry.family, modes, entry.weights or "[dim]not configured[/dim]")
    for alias in catalog.aliases.values():
        table.add_row(alias.id, f"closed -> {alias.family}", ", ".join(m.value for m in alias.modes),
                      f"maps to {alias.maps_to}" if alias.maps_to else "[dim]not mapped[/dim]")
    console.print(table)


@app.command()
def demo(
    steps: Optional[int] = typer.Option(None, "--steps", help="Optimizer steps (default: 4 epochs)."),
    local: bool = typer.Option(False, "--local", help="Train in this process instead of through the API server."),
):
    """Tune a tiny model to reverse strings through the REST API, and show held-out answers before and after."""
    _quiet_libraries()
    import torch

    from tuneforge import storage
    from tuneforge.catalog import load_catalog
    from tuneforge.catalog.weights import materialize
    from tuneforge.demo import (
        ReversalTask,
        exact_match,
        greedy_answers,
        make_task,
        write_jsonl,
    )

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    settings = _settings()
    run = time.strftime("run-%Y%m%d-%H%M%S")
    task = make_task()
    data_uri = f"gs://tuneforge-demo/{run}"
    train_file = write_jsonl(storage.local_path(f"{data_uri}/train.jsonl", settings), task.train)
    write_jsonl(storage.local_path(f"{data_uri}/validation.jsonl", settings), task.validation)
    console.print(f"[bold]tuneforge demo[/bold]: teach tiny-llama (random init, {_params('tiny-llama', settings)}) "
                  f"to reverse strings. {len(task.train)} training examples, {len(task.held_out)} held-out strings "
                  "it never sees.")
    base_dir = materialize(load_catalog(settings).resolve("tiny-llama").weights, settings)
    prompts = [ReversalTask.prompt(s) for s in task.held_out]
    expected = [ReversalTask.answer(s) for s in task.held_out]
    before = greedy_answers(base_dir, prompts)
    output_uri = f"{data_uri}/output"
    if local:
        from tuneforge.train import TuningConfig, run_sft

        config = TuningConfig(base_model="tiny-llama", tuning_mode="FULL", train_dataset=str(train_file),
                              validation_dataset=f"{data_uri}/validation.jsonl", output_uri=output_uri, epochs=4,
                              batch_size=32, max_steps=steps, eval_steps=100)
        with _progress() as progress:
            run_sft(config, settings=settings, callbacks=RichCallbacks(progress))
    else:
        hyper = {"epochCount": "4", "batchSize": "32"}
        body = {"baseModel": "tiny-llama", "tunedModelDisplayName": "demo-reverse", "outputUri": output_uri,
                "supervisedTuningSpec": {"trainingDatasetUri": f"{data_uri}/train.jsonl",
                                         "validationDatasetUri": f"{data_uri}/validation.jsonl",
                                         "tuningMode": "TUNING_MODE_FULL", "hyperParameters": hyper}}
        _demo_through_server(settings, body)
    final_dir = storage.local_path(output_uri, settings) / "postprocess" / "node-0" / "checkpoints" / "final"
    after = greedy_answers(final_dir, prompts)
    table = Table("held-out string", "expected", "before tuning", "after tuning")
    for p, e, b, a in list(zip(prompts, expected, before, after))[:10]:
        table.add_row(p, e, repr(b)[:20], f"[green]{a}[/green]" if a == e else f"[red]{a}[/red]")
    console.print(table)
    acc_before, acc_after = exact_match(before, expected), exact_match(after, expected)
    console.print(f"held-out exact match: before [bold]{acc_before:.0%}[/bold], after [bold]{acc_after:.0%}[/bold] "
                  f"({len(expected)} strings never seen in training)")
    out = storage.local_path(output_uri, settings)
    console.print(f"artifacts: {final_dir}")
    console.print(f"metrics:   {out / 'metrics.jsonl'}")
    console.print(f"TensorBoard logs: {out / 'tensorboard'}  (tensorboard --logdir {out / 'tensorboard'})")
    if acc_after < 0.9:
        err.print("[red]the demo did not reach 90% held-out exact match[/red]")
        raise typer.Exit(1)


def _demo_through_server(settings, body: dict) -> None:
    """Start `tuneforge serve` on a free port, submit the run over REST, follow it, stop the server."""
    import socket
    import subprocess

    from tuneforge.client import Client

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "TUNEFORGE_HOME": str(settings.home), "TUNEFORGE_PORT": str(port)}
    log_path = settings.home / "demo" / "server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen([sys.executable, "-m", "tuneforge", "serve"], env=env, stdout=log_path.open("w"),
                              stderr=subprocess.STDOUT)
    client = Client(f"http://127.0.0.1:{port}", project="tuneforge-demo")
    job = None
    try:
        _wait_ready(client, server, log_path)
        console.print(f"server: http://127.0.0.1:{port} (log {log_path})")
        job = client.create_tuning_job(body)
        console.print(f"submitted {job['name']} over REST")
        final = _follow(client, job["name"])
        if final["state"] != "JOB_STATE_SUCCEEDED":
            _fail(Exception(f"the demo job ended {final['state']}: {final.get('error', {}).get('message', '')}"))
        console.print(f"registered model: {final['tunedModel']['model']}")
    except KeyboardInterrupt:
        if job is not None:  # an interrupted demo must not be resumed by the next server start
            client.cancel(job["name"])
        raise
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        client.close()


def _wait_ready(client, server, log_path: Path, timeout: float = 90) -> None:
    import httpx

    deadline = time.time() + timeout
    while time.time() < deadline:
        if server.poll() is not None:
            _fail(Exception(f"the server exited; see {log_path}:\n{log_path.read_text()[-2000:]}"))
        try:
            if client.http.get("/healthz", timeout=2).json().get("status") == "ok":
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    _fail(Exception(f"the server did not start within {timeout:.0f} s; see {log_path}"))


def _follow(client, name: str) -> dict:
    """Follow a job with a progress bar fed by its streamed metrics."""
    with _progress() as progress:
        task = progress.add_task("queued", total=None, loss="-", tps="-")

        def update(job, page):
            total = page["progress"]["totalSteps"]
            losses = [m for m in page["metrics"] if m["name"] == "train_total_loss"]
            fields = {"loss": f"{losses[-1]['value']:.4f}"} if losses else {}
            for m in page["metrics"]:
                if m["name"] == "eval_total_loss":
                    progress.console.print(f"  step {m['step']}: eval_total_loss {m['value']:.4f}")
            progress.update(task, description=job["state"].removeprefix("JOB_STATE_").lower(), total=total,
                            completed=page["progress"]["step"], **fields)

        return client.follow(name, on_progress=update)


def _params(name: str, settings) -> str:
    from tuneforge.catalog.tiny import TINY_SPECS

    c = TINY_SPECS[name].config
    return f"{c['num_hidden_layers']} layers, hidden {c['hidden_size']}"


def _service_settings(**flags):
    from tuneforge.settings import Settings

    return Settings(**{k: v for k, v in flags.items() if v is not None})


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command()
def serve(
    host: Optional[str] = typer.Option(None, help="Listen address (TUNEFORGE_HOST, default 127.0.0.1)."),
    port: Optional[int] = typer.Option(None, help="Port (TUNEFORGE_PORT, default 8080)."),
    database_url: Optional[str] = typer.Option(None, "--database-url", help="sqlite:///… or postgresql://… (TUNEFORGE_DATABASE_URL)."),
    home: Optional[Path] = typer.Option(None, help="TUNEFORGE_HOME."),
    bucket_root: Optional[Path] = typer.Option(None, "--bucket-root", help="TUNEFORGE_BUCKET_ROOT."),
    api_keys: Optional[str] = typer.Option(None, "--api-keys", help="KEY or KEY=proj1|proj2, comma-separated (TUNEFORGE_API_KEYS)."),
    workers: Optional[int] = typer.Option(None, help="In-process worker slots (0: run `tuneforge worker` separately)."),
    dev: Optional[bool] = typer.Option(None, "--dev/--no-dev", help="Dev mode: models without weights run on tiny stand-ins."),
    insecure: bool = typer.Option(False, "--insecure", help="Allow a non-loopback address without API keys."),
):
    """Start the Vertex-compatible API (and an in-process worker)."""
    _quiet_libraries()
    import logging

    import uvicorn

    from tuneforge.api import create_app

    settings = _service_settings(host=host, port=port, database_url=database_url, home=home, bucket_root=bucket_root,
                                 api_keys=api_keys, workers=workers, dev=dev, insecure=insecure or None)
    if not settings.api_keys and not _is_loopback(settings.host) and not settings.insecure:
        _fail(Exception(f"refusing to listen on {settings.host} without API keys; set --api-keys (TUNEFORGE_API_KEYS) "
                        "or pass --insecure"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    console.print(f"tuneforge API on http://{settings.host}:{settings.port} (database {settings.resolved_database_url.split('://')[0]}, "
                  f"dev mode {'on' if settings.dev else 'off'})")
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="warning")


@app.command()
def worker(
    database_url: Optional[str] = typer.Option(None, "--database-url", help="The server's database (TUNEFORGE_DATABASE_URL)."),
    home: Optional[Path] = typer.Option(None, help="TUNEFORGE_HOME."),
    bucket_root: Optional[Path] = typer.Option(None, "--bucket-root", help="TUNEFORGE_BUCKET_ROOT."),
    slots: int = typer.Option(1, help="Jobs this worker runs at once."),
    dev: Optional[bool] = typer.Option(None, "--dev/--no-dev"),
):
    """Run jobs from the shared database (any number of workers, on any machine that sees the database and storage)."""
    _quiet_libraries()
    import logging
    import signal
    import threading

    from tuneforge.jobs.db import Store
    from tuneforge.jobs.worker import Worker

    settings = _service_settings(database_url=database_url, home=home, bucket_root=bucket_root, dev=dev)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    w = Worker(Store(settings.resolved_database_url), settings, slots=slots)
    console.print(f"worker {w.worker_id} on {settings.resolved_database_url.split('://')[0]}, {slots} slot(s)")
    w.run(stop)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
