"""Commands that talk to a tuneforge server: `jobs`, `pipelines`, `deploy`, `predict`, `chat`."""

from __future__ import annotations

import sys
from typing import Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from tuneforge.cli.client import Client
from tuneforge.cli.common import (
    JSON,
    OUTPUT,
    api_errors,
    console,
    err,
    output_mode,
    print_json,
    remote,
    show_list,
    table,
)
from tuneforge.cli.progress import follow

jobs_app = typer.Typer(help="Tuning jobs on a tuneforge server.", no_args_is_help=True, rich_markup_mode=None)
pipelines_app = typer.Typer(
    help="Pipeline jobs (code-model tuning, distillation) on a tuneforge server.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
TUNING_JOB = typer.Argument(..., help="Job id or projects/…/tuningJobs/ID.")
PIPELINE_JOB = typer.Argument(..., help="Job id or projects/…/pipelineJobs/ID.")
EMPTY_ANSWER = "(empty answer: the model ended its turn at once)"


def _id(name: str) -> str:
    return name.rsplit("/", 1)[-1]


@jobs_app.command("list")
@remote
def jobs_list(
    output: str = OUTPUT,
    as_json: bool = JSON,
    filter: Optional[str] = typer.Option(
        None, "--filter", help='e.g. state="JOB_STATE_RUNNING" or labels.team="a"', show_default=False
    ),
    *,
    c: Client,
) -> None:
    """List tuning jobs, newest first."""
    mode = output_mode(output, as_json)
    with api_errors(c):
        jobs = c.list(filter)
    rows = [
        [
            _id(j["name"]),
            j["state"].removeprefix("JOB_STATE_"),
            j.get("baseModel", ""),
            j.get("tunedModelDisplayName", ""),
            j.get("createTime", ""),
            j.get("tunedModel", {}).get("model", ""),
        ]
        for j in jobs
    ]
    show_list(
        "tuning jobs",
        rows,
        ["job", "state", "base model", "display name", "created", "tuned model"],
        c,
        mode,
        jobs,
        wide=(4, 5),
    )


@jobs_app.command("get")
@remote
def jobs_get(
    job: str = TUNING_JOB,
    *,
    c: Client,
) -> None:
    """Print a tuning job as JSON."""
    with api_errors(c):
        print_json(c.get(job))


@jobs_app.command("follow")
@remote
def jobs_follow(
    job: str = TUNING_JOB,
    *,
    c: Client,
) -> None:
    """Follow a tuning job's progress until it ends."""
    with api_errors(c):
        final = follow(c, job)
    console.print(final["state"] + (f": {final['error']['message']}" if final.get("error") else ""))
    raise typer.Exit(0 if final["state"] == "JOB_STATE_SUCCEEDED" else 1)


@jobs_app.command("cancel")
@remote
def jobs_cancel(
    job: str = TUNING_JOB,
    *,
    c: Client,
) -> None:
    """Cancel a tuning job."""
    with api_errors(c):
        c.cancel(job)
    console.print(f"cancelling {job}")


@pipelines_app.command("list")
@remote
def pipelines_list(
    output: str = OUTPUT,
    as_json: bool = JSON,
    *,
    c: Client,
) -> None:
    """List pipeline jobs, newest first, with the task each is on."""
    mode = output_mode(output, as_json)
    with api_errors(c):
        jobs = c.list(collection="pipelineJobs")
    rows = []
    for j in jobs:
        tasks = j.get("jobDetail", {}).get("taskDetails", [])[1:]
        current = next((t["taskName"] for t in tasks if t["state"] in ("RUNNING", "FAILED", "CANCELLED")), "")
        rows.append(
            [
                _id(j["name"]),
                j["state"].removeprefix("PIPELINE_STATE_"),
                current,
                j.get("displayName", ""),
                j.get("createTime", ""),
            ]
        )
    show_list("pipeline jobs", rows, ["job", "state", "task", "display name", "created"], c, mode, jobs, wide=(4,))


def task_table(job: dict, wide: bool = False) -> Table:
    """A pipeline's tasks: state, times and outputs (every output key and value whole)."""
    rows = []
    for t in job.get("jobDetail", {}).get("taskDetails", []):
        meta = (t.get("execution") or {}).get("metadata") or {}
        outputs = ", ".join(f"{k.removeprefix('output:')}={v}" for k, v in meta.items() if k.startswith("output:"))
        error = f" error: {t['error']['message']}" if t.get("error") else ""
        times = [t.get("startTime", ""), t.get("endTime", "")] if wide else []
        rows.append([t["taskName"], t["state"], *times, outputs + error])
    columns = ["task", "state", *(["started", "ended"] if wide else []), "outputs"]
    return table(columns, rows)


@pipelines_app.command("get")
@remote
def pipelines_get(
    job: str = PIPELINE_JOB,
    output: str = OUTPUT,
    as_json: bool = JSON,
    *,
    c: Client,
) -> None:
    """Show a pipeline job: its state and each task's state, times and outputs."""
    mode = output_mode(output, as_json)
    with api_errors(c):
        resource = c.get(job, collection="pipelineJobs")
    if mode == "json":
        print_json(resource)
        return
    error = f" ({resource['error']['message']})" if resource.get("error") else ""
    console.print(f"{escape(resource['name'])}: {resource['state']}{escape(error)}")
    console.print(task_table(resource, wide=mode == "wide"))


@pipelines_app.command("cancel")
@remote
def pipelines_cancel(
    job: str = PIPELINE_JOB,
    *,
    c: Client,
) -> None:
    """Cancel a pipeline job; its running task stops."""
    with api_errors(c):
        c.cancel(job, collection="pipelineJobs")
    console.print(f"cancelling {job}")


# -- deploying and serving -------------------------------------------------------------------------------------------


@remote
def deploy(
    model: str = typer.Argument(..., help="Registry model (id or projects/…/models/ID) or weights (gs://… folder)."),
    endpoint: Optional[str] = typer.Option(
        None, "--endpoint", help="Deploy onto this endpoint [default: a new one].", show_default=False
    ),
    machine_type: Optional[str] = typer.Option(
        None, "--machine-type", help="Recorded, e.g. g2-standard-12.", show_default=False
    ),
    accelerator_type: Optional[str] = typer.Option(
        None, "--accelerator-type", help="Recorded, e.g. NVIDIA_L4.", show_default=False
    ),
    accelerator_count: int = typer.Option(0, "--accelerator-count", help="Accelerators per replica (recorded)."),
    *,
    c: Client,
) -> None:
    """Deploy a model on an endpoint and print the endpoint's name."""
    resources: dict[str, Any] = {}
    if machine_type or accelerator_type:
        spec: dict[str, Any] = {
            k: v for k, v in (("machineType", machine_type), ("acceleratorType", accelerator_type)) if v
        }
        if accelerator_type:
            spec["acceleratorCount"] = accelerator_count or 1
        resources = {"dedicatedResources": {"machineSpec": spec, "minReplicaCount": 1, "maxReplicaCount": 1}}
    with api_errors(c):
        print(c.deploy(model, endpoint, resources))


ENDPOINT = typer.Argument(..., help="Endpoint id or projects/…/endpoints/ID.")
MAX_TOKENS = typer.Option(
    None, "--max-tokens", help="Tokens to generate [default: the server's, 256].", show_default=False
)
TEMPERATURE = typer.Option(
    None,
    "--temperature",
    help="Sampling temperature; 0 is greedy [default: the model's generation config].",
    show_default=False,
)


@remote
def predict(
    endpoint: str = ENDPOINT,
    prompt: str = typer.Argument(..., help="The prompt."),
    max_tokens: Optional[int] = MAX_TOKENS,
    temperature: Optional[float] = TEMPERATURE,
    top_p: Optional[float] = typer.Option(
        None,
        "--top-p",
        help="Nucleus sampling: keep the smallest set of tokens whose probability reaches this (0-1].",
        show_default=False,
    ),
    top_k: Optional[int] = typer.Option(
        None, "--top-k", help="Sample among the k most likely tokens.", show_default=False
    ),
    *,
    c: Client,
) -> None:
    """Send one prompt to an endpoint's predict and print the answer."""
    instance = {
        "prompt": prompt,
        "raw_response": True,
        "max_tokens": max_tokens,
        "temperature": temperature,
        "top_p": top_p,
        "top_k": top_k,
    }
    with api_errors(c):
        out = c.predict(endpoint, [{k: v for k, v in instance.items() if v is not None}])
    answer = out["predictions"][0]
    if answer == "":
        err.print(EMPTY_ANSWER, style="dim")
    else:
        print(answer)


@remote
def chat(
    endpoint: str = ENDPOINT,
    system: Optional[str] = typer.Option(None, "--system", help="System instruction.", show_default=False),
    max_tokens: Optional[int] = MAX_TOKENS,
    temperature: Optional[float] = TEMPERATURE,
    *,
    c: Client,
) -> None:
    """Chat with an endpoint: type a message, read the streamed answer; an empty line or Ctrl-D ends."""
    history = [{"role": "system", "content": system}] if system else []
    interactive = sys.stdin.isatty()
    while True:
        if interactive:
            console.print("[bold]you>[/bold] ", end="")
        line = sys.stdin.readline()
        if not line.strip():
            if interactive and not line:  # Ctrl-D: end the prompt's line so the shell's starts on its own
                console.print()
            return
        history.append({"role": "user", "content": line.rstrip("\n")})
        answer = []
        with api_errors(c):
            for piece in c.chat_stream(endpoint, history, max_tokens=max_tokens, temperature=temperature):
                answer.append(piece)
                sys.stdout.write(piece)
                sys.stdout.flush()
        if not answer:
            err.print(EMPTY_ANSWER, style="dim", end="")
        sys.stdout.write("\n")
        history.append({"role": "assistant", "content": "".join(answer)})
