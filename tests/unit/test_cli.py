"""`tuneforge validate` and `tuneforge tune` as a user runs them."""

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from tuneforge.cli import app

runner = CliRunner()


def invoke(*args):
    from tuneforge.cli import common

    common.console.width = common.err.width = 200  # no wrapping, whatever terminal (or pytest worker) runs the tests
    return runner.invoke(app, list(args), env={"COLUMNS": "200"})


def test_validate_clean_file_reports_format_tokens_and_limits(examples):
    result = invoke("validate", str(examples / "chat_messages.jsonl"), "--model", "tiny-llama", "--mode", "full")
    assert result.exit_code == 0, result.output
    assert "10 examples in 10 lines, format chat" in result.output
    assert "at most 1024 tokens per example" in result.output and "OK" in result.output


def test_validate_lists_every_bad_line_and_exits_non_zero(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text(
        "\n".join(
            [
                '{"prompt": "a", "completion": "b"}',
                '{"prompt": "Name a colour.", "completion": ""}',
                '{"messages": [{"role": "user", "content": "Hi"}]}',
                "{'prompt': 'x'}",
            ]
        )
        + "\n"
    )
    result = invoke("validate", str(f), "--model", "tiny-qwen3")
    assert result.exit_code == 1
    out = result.output
    assert "line 2, completion: empty string" in out
    assert "line 3: chat messages format, but line 1 set this file's format to prompt/completion" in out
    assert "line 4, column 2: invalid JSON" in out
    assert "3 error(s)" in out


def test_validate_over_long_examples_warn_or_fail_in_strict_mode(tmp_path):
    f = tmp_path / "long.jsonl"
    # The reply is what runs over: truncation keeps the prompt and the start of the reply, so the line still trains.
    f.write_text(json.dumps({"prompt": "Say x many times.", "completion": "x" * 5000}) + "\n")
    # A real id without weights: dev mode counts tokens with the stand-in's tokenizer, limits are the model's.
    result = invoke("validate", str(f), "--model", "meta/llama3_1@llama-3.1-8b", "--mode", "lora", "--dev")
    assert result.exit_code == 0, result.output
    assert (
        "over the 4096-token limit of meta/llama3_1@llama-3.1-8b in PEFT_ADAPTER mode (8192 in FULL); shorten it, or use FULL"
        in result.output
    )
    strict = invoke("validate", str(f), "--model", "meta/llama3_1@llama-3.1-8b", "--dev", "--strict-length")
    assert strict.exit_code == 1
    data = json.loads(invoke("validate", str(f), "--model", "meta/llama3_1@llama-3.1-8b", "--dev", "--json").output)
    assert data["ok"] and data["warnings"][0]["line"] == 1
    # A prompt that fills the whole limit leaves no reply to train on: the line is dropped, and with nothing left
    # the file fails instead of starting a run on zero examples.
    f.write_text(json.dumps({"prompt": "x" * 5000, "completion": "ok"}) + "\n")
    empty = invoke("validate", str(f), "--model", "meta/llama3_1@llama-3.1-8b", "--dev")
    assert empty.exit_code == 1
    assert "no assistant tokens left after truncation" in empty.output
    assert "no example is left to train on (1 dropped" in empty.output


def test_validate_without_weights_still_checks_structure(examples):
    result = invoke("validate", str(examples / "generate_content.jsonl"), "--model", "qwen/qwen3@qwen3-32b")
    assert result.exit_code == 0
    assert "token limits not checked: weights for qwen/qwen3@qwen3-32b are not configured" in result.output


def test_validate_image_for_text_model(examples):
    result = invoke(
        "validate", str(examples / "multimodal_chat.jsonl"), "--model", "meta/llama3_1@llama-3.1-8b-instruct", "--dev"
    )
    assert result.exit_code == 1
    assert "accepts text only" in result.output


def test_the_documents_image_files_and_text_lines_validate_on_scout_in_dev_mode(examples, settings):
    """The issue's first report: text-only lines failed on the Scout id in dev mode (a Llama 3 template on the
    stand-in), and a gs:// image that did not exist passed. Now text validates, every image is opened, and a missing
    one is an error with its line and JSON path."""
    import shutil

    scout = "meta/llama4@llama-4-scout-17b-16e-instruct"
    text = invoke("validate", str(examples / "chat_messages.jsonl"), "--model", scout, "--dev")
    assert text.exit_code == 0 and "OK" in text.output, text.output
    images = settings.resolved_bucket_root / "tuneforge-examples" / "images"
    shutil.rmtree(images, ignore_errors=True)
    missing = invoke("validate", str(examples / "multimodal_chat.jsonl"), "--model", scout, "--dev")
    assert missing.exit_code == 1
    assert (
        "line 3, messages[0].content[1].image_url.url: image gs://tuneforge-examples/images/blue_square.png not "
        "found" in missing.output
    )
    shutil.copytree(examples / "images", images)  # PNG, JPEG and WEBP, as the document's lines name them
    for name in ("multimodal_chat.jsonl", "multimodal_generate_content.jsonl"):
        result = invoke("validate", str(examples / name), "--model", scout, "--dev")
        assert result.exit_code == 0 and "OK" in result.output, result.output
        assert "6 examples in 6 lines" in result.output and "7 image(s) opened and checked" in result.output


def test_unknown_model_and_missing_file_are_clear_errors(tmp_path, examples):
    result = invoke("validate", str(examples / "chat_messages.jsonl"), "--model", "llama-3")
    assert result.exit_code == 1 and "unknown model 'llama-3'" in result.output
    result = invoke("validate", str(tmp_path / "nope.jsonl"), "--model", "tiny-llama")
    assert result.exit_code == 1 and "not found" in result.output


def test_tune_command_end_to_end(tmp_path, settings):
    from tuneforge.train.demo_task import make_task, write_jsonl

    task = make_task(n_train=16, n_validation=8, n_held_out=1)
    train = write_jsonl(settings.resolved_bucket_root / "b" / "train.jsonl", task.train, fmt="prompt_completion")
    result = invoke(
        "tune",
        "--model",
        "tiny-gemma3",
        "--train",
        "gs://b/train.jsonl",
        "--mode",
        "lora",
        "--adapter-size",
        "2",
        "--max-steps",
        "2",
        "--batch-size",
        "8",
        "--output-uri",
        "gs://b/out",
    )
    assert result.exit_code == 0, result.output
    assert (
        "done" in result.output
        and (
            settings.resolved_bucket_root
            / "b"
            / "out"
            / "postprocess"
            / "node-0"
            / "checkpoints"
            / "final"
            / "adapter_model.safetensors"
        ).exists()
    )
    assert train.exists()
    bad = invoke(
        "tune",
        "--model",
        "tiny-gemma3",
        "--train",
        str(train),
        "--mode",
        "lora",
        "--adapter-size",
        "3",
        "--output-uri",
        str(tmp_path / "x"),
    )
    assert bad.exit_code == 1 and "adapter_size must be one of" in bad.output


def test_console_script_is_installed():
    exe = Path(sys.executable).with_name("tuneforge")
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    assert out.returncode == 0 and "validate" in out.stdout and "tune" in out.stdout and "demo" in out.stdout
