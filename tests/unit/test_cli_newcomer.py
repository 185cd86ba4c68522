"""The CLI as a newcomer meets it: help at 80 columns, output to a file or a log, interruptions, clear failures."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tuneforge.cli import app

TF = str(Path(sys.executable).with_name("tuneforge"))
runner = CliRunner()


def tf(*args, env=None, timeout=120):
    """The installed command with its output going to a pipe (what a CI log or a file gets)."""
    return subprocess.run(
        [TF, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, "COLUMNS": "80", **(env or {})}
    )


def test_tune_help_at_80_columns_names_every_option_with_help_and_default():
    out = tf("tune", "--help")
    assert out.returncode == 0
    text = out.stdout
    for name in (
        "--learning-rate",
        "--learning-rate-multiplier",
        "--batch-size",
        "--micro-batch-size",
        "--eval-steps",
        "--save-steps",
        "--early-stopping / --no-early-stopping",
        "--device",
        "--activation-checkpointing / --no-activation-checkpointing",
        "--checkpoint-selection",
    ):
        assert name in text, name  # whole, never cut
    command = typer.main.get_command(app).commands["tune"]
    options = [p for p in command.params if isinstance(p, typer.core.TyperOption)]
    assert len(options) > 40
    assert not [p.name for p in options if not (p.help or "").strip(" .")], "every option has help"
    assert not [p.name for p in options if p.default is not None and not p.show_default], "defaults are shown"
    assert "[default: no-early-stopping]" in text and "[default: lora]" in text and "[default: cosine]" in text
    assert "<bool>" not in text
    assert "Multiplies the catalog's recommended rate" in text  # the help text is TuningConfig's own


def test_predict_sampling_options_have_help():
    text = tf("predict", "--help").stdout
    for name, words in (
        ("--max-tokens", "Tokens to generate"),
        ("--temperature", "Sampling temperature"),
        ("--top-p", "Nucleus sampling"),
        ("--top-k", "most likely tokens"),
    ):
        assert name in text and words in text, name


def test_output_to_a_pipe_keeps_ids_whole_and_lines_unwrapped():
    out = tf("models")
    assert out.returncode == 0
    assert "\x1b[" not in out.stdout  # no colour codes in a log
    for model_id in (
        "meta/llama3_1@llama-3.1-8b-instruct",
        "meta/llama4@llama-4-scout-17b-16e-instruct",
        "gemini-1.5-flash-002",
    ):
        assert any(model_id in line for line in out.stdout.splitlines()), model_id
    assert any(len(line) > 80 for line in out.stdout.splitlines())  # not hard-wrapped at 80 columns
    listed = tf("models", "--json")
    assert '"id": "meta/llama3_1@llama-3.1-8b-instruct"' in listed.stdout


def test_validate_takes_the_flow_and_names_formats_as_the_documents_do(examples):
    out = tf("validate", str(examples / "distill_unlabeled.jsonl"), "--for", "distillation")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "12 examples (0 labelled, 12 for the teacher to label)" in out.stdout and "OK" in out.stdout
    code = tf("validate", str(examples / "code_generation.jsonl"), "--for", "code-generation")
    assert code.returncode == 0 and "format input_text/output_text" in code.stdout and "text_pair" not in code.stdout
    chat = tf("validate", str(examples / "codechat.jsonl"), "--for", "code-chat")
    assert chat.returncode == 0, chat.stdout
    wrong = tf("validate", str(examples / "codechat.jsonl"), "--for", "code-generation")
    assert wrong.returncode == 1 and "error" in wrong.stdout
    assert tf("validate", str(examples / "codechat.jsonl")).returncode == 1  # sft needs --model for its limits


def test_a_missing_file_is_one_clear_line(tmp_path):
    out = tf(
        "tune",
        "--model",
        "tiny-llama",
        "--train",
        "gs://nobucket/train.jsonl",
        "-o",
        str(tmp_path / "o"),
        env={"TUNEFORGE_HOME": str(tmp_path)},
    )
    assert out.returncode == 1
    text = out.stdout + out.stderr
    assert text.count("gs://nobucket/train.jsonl not found") == 1, text
    assert "Fix every line listed" not in text and "error(s)" not in text


def test_validate_without_weights_has_no_dangling_colon(examples):
    out = tf("validate", str(examples / "generate_content.jsonl"), "--model", "qwen/qwen3@qwen3-32b")
    assert "are not configured (or pass --dev" in out.stdout
    assert ": (or pass" not in out.stdout


def test_serve_says_in_one_line_why_it_cannot_start(tmp_path):
    bad_db = tf(
        "serve", "--database-url", "postgresql://nobody@127.0.0.1:1/none", env={"TUNEFORGE_HOME": str(tmp_path)}
    )
    assert bad_db.returncode == 1
    lines = [line for line in (bad_db.stdout + bad_db.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot open the database postgresql://nobody@127.0.0.1:1/none" in lines[0], lines
    assert "tuneforge API on" not in bad_db.stdout
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = tf("serve", "--port", str(port), env={"TUNEFORGE_HOME": str(tmp_path)})
    lines = [line for line in (busy.stdout + busy.stderr).splitlines() if line.strip()]
    assert busy.returncode == 1 and len(lines) == 1 and f"cannot listen on 127.0.0.1:{port}" in lines[0], lines
    assert "alembic" not in busy.stdout + busy.stderr


@pytest.fixture()
def data(tmp_path, settings):
    from tuneforge.train.demo_task import make_task, write_jsonl

    task = make_task(n_train=16, n_validation=8, n_held_out=1)
    write_jsonl(settings.resolved_bucket_root / "b" / "train.jsonl", task.train)
    write_jsonl(settings.resolved_bucket_root / "b" / "val.jsonl", task.validation)
    return [
        "--model",
        "tiny-llama",
        "--mode",
        "full",
        "--train",
        "gs://b/train.jsonl",
        "--validation",
        "gs://b/val.jsonl",
        "--batch-size",
        "8",
        "--max-steps",
        "2",
        "--output-uri",
        "gs://b/out",
    ]


def test_a_run_in_a_log_prints_plain_progress_and_a_rerun_says_it_reuses(data):
    first = runner.invoke(app, ["tune", *data])
    assert first.exit_code == 0, first.output
    steps = re.findall(r"^step (\d+)/2 +loss [0-9.]+ +([0-9,]+) tok/s", first.output, re.M)
    assert [s for s, _ in steps] == ["1", "2"] and all(int(t.replace(",", "")) > 0 for _, t in steps), first.output
    assert "eval token accuracy" in first.output
    again = runner.invoke(app, ["tune", *data])
    assert again.exit_code == 0 and "already holds this run's final model (step 2); reusing it" in again.output
    assert "reused" in again.output


def test_ctrl_c_names_the_last_checkpoint_and_the_command_that_resumes(data, monkeypatch):
    from tuneforge.train import Callbacks
    from tuneforge.train.recipes import sft

    real = sft.run_sft

    def interrupted(config, **kw):
        class Interrupt(Callbacks):
            def on_step(self, step, total, metrics):
                kw["callbacks"].on_step(step, total, metrics)
                if step == 1:
                    raise KeyboardInterrupt

        return real(
            config.model_copy(update={"save_steps": 1, "max_steps": 3}), settings=kw["settings"], callbacks=Interrupt()
        )

    monkeypatch.setattr(sft, "run_sft", interrupted)
    monkeypatch.setattr(sys, "argv", ["tuneforge", "tune", *data])
    out = runner.invoke(app, ["tune", *data])
    assert out.exit_code == 130
    assert "interrupted; no checkpoint was written yet" in out.output or "the last checkpoint is" in out.output
    assert "Run the same command to resume from it:\n  tuneforge tune --model tiny-llama" in out.output


def test_empty_answers_and_empty_lists_say_so(monkeypatch):
    from tuneforge.cli.client import Client

    monkeypatch.setattr(Client, "predict", lambda self, endpoint, instances: {"predictions": [""]})
    out = runner.invoke(app, ["predict", "123", "hello"])
    assert out.exit_code == 0 and "(empty answer" in out.output
    monkeypatch.setattr(Client, "list", lambda self, *a, **kw: [])
    listed = runner.invoke(app, ["jobs", "list", "--project", "elsewhere"], env={"TUNEFORGE_PROJECT": "ignored"})
    assert "no tuning jobs in project elsewhere, location us-central1" in listed.output
    assert "pass --project/--location (or set TUNEFORGE_PROJECT" in listed.output
    default = runner.invoke(app, ["jobs", "list"], env={"TUNEFORGE_PROJECT": "from-the-setting"})
    assert "project from-the-setting" in default.output


def test_tables_on_a_narrow_terminal_give_way_in_other_columns_never_in_ids():
    import io

    from rich.console import Console

    from tuneforge.cli.common import table

    long_id = "meta/llama4@llama-4-scout-17b-16e-instruct"
    screen = Console(width=80, file=io.StringIO(), force_terminal=True, color_system=None)
    screen.print(
        table(
            ["id", "family", "modes (max tokens)", "weights"],
            [[long_id, "llama4", "PEFT_ADAPTER (8192), FULL (8192)", "/a/very/long/path/" * 4]],
        )
    )
    assert long_id in screen.file.getvalue()


def test_serve_prints_one_line_when_up_and_nothing_from_its_libraries(tmp_path):
    import time

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [TF, "serve", "--port", str(port), "--workers", "0"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TUNEFORGE_HOME": str(tmp_path)},
        )
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()["status"] == "ok":
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
    finally:
        server.terminate()
        server.wait(timeout=30)
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    assert lines[0].startswith(f"tuneforge API on http://127.0.0.1:{port}"), lines
    assert not [line for line in lines if "alembic" in line or "Warning" in line], lines


def test_ctrl_c_while_following_a_server_job_says_it_keeps_running(monkeypatch):
    from tuneforge.cli import local
    from tuneforge.cli.client import Client

    name = "projects/p/locations/us-central1/tuningJobs/123"
    monkeypatch.setattr(Client, "create_tuning_job", lambda self, body: {"name": name})

    def interrupted(c, job, label="training"):
        raise KeyboardInterrupt

    monkeypatch.setattr(local, "follow", interrupted)
    out = runner.invoke(
        app,
        [
            "tune",
            "--server",
            "http://127.0.0.1:9",
            "--project",
            "p",
            "--model",
            "tiny-llama",
            "--train",
            "gs://b/t.jsonl",
            "-o",
            "gs://b/o",
        ],
    )
    assert out.exit_code == 130
    assert "the job keeps running on the server" in out.output
    assert "tuneforge jobs follow 123 --server http://127.0.0.1:9 --project p" in out.output
    assert "tuneforge jobs cancel 123" in out.output


def test_a_404_names_the_project_it_looked_in(monkeypatch):
    from tuneforge.cli.client import ApiError, Client

    def missing(self, model, endpoint=None, resources=None):
        raise ApiError(404, {"error": {"code": 404, "status": "NOT_FOUND", "message": f"Model {model} not found."}})

    monkeypatch.setattr(Client, "deploy", missing)
    out = runner.invoke(app, ["deploy", "123"], env={"TUNEFORGE_PROJECT": "from-the-setting"})
    assert out.exit_code == 1
    assert "looked in project from-the-setting, location us-central1" in out.output
    assert "pass --project/--location (or set TUNEFORGE_PROJECT/TUNEFORGE_LOCATION)" in out.output


def test_preference_tuning_on_a_server_refuses_options_its_job_has_no_field_for():
    args = ["tune", "--server", "http://127.0.0.1:9", "--model", "tiny-llama", "--method", "preference"]
    out = runner.invoke(app, [*args, "--train", "gs://b/p.jsonl", "-o", "gs://b/o", "--batch-size", "8"])
    assert out.exit_code == 1
    assert "--batch-size: a server's preference tuning job takes --epochs" in " ".join(out.output.split())
