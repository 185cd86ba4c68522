"""The training engine: accumulation, LoRA, schedule, artifacts, resume, continued tuning, metrics."""

import itertools
import json
import math

import pytest
import torch

from tuneforge.catalog import TuningMode
from tuneforge.errors import DatasetInvalid, InvalidArgument
from tuneforge.train import Callbacks, TuningConfig, run_sft
from tuneforge.train.artifacts import verify_manifest
from tuneforge.train.demo_task import make_task, write_jsonl
from tuneforge.train.metrics import EVAL_METRICS, TRAIN_METRICS, read_metrics
from tuneforge.train.recipes.sft import train_step
from tuneforge.train.schedule import lr_factor


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    task = make_task(n_train=48, n_validation=16, n_held_out=4, seed=3)
    return {
        "train": str(write_jsonl(root / "train.jsonl", task.train)),
        "val": str(write_jsonl(root / "val.jsonl", task.validation, fmt="generate_content")),
    }


def cfg(data, tmp_path, **kw):
    base = dict(
        base_model="tiny-llama", train_dataset=data["train"], output_uri=str(tmp_path / "out"), batch_size=8, epochs=1
    )
    base.update(kw)
    return TuningConfig(**base)


# --- gradient accumulation ---------------------------------------------------------------------------------------


def _grads(model, micro_batches):
    model.zero_grad(set_to_none=True)
    metrics = train_step(model, micro_batches, torch.device("cpu"))
    return metrics, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("packing", [False, True])
def test_accumulation_4x2_equals_8x1_equals_1x8(random_tiny_dir, tokenizer_of, packing):
    from transformers import AutoModelForCausalLM

    from tuneforge.data import ChatEncoder, Report, collate, parse_lines

    tok = tokenizer_of("tiny-llama")
    lines = [json.dumps({"prompt": "x" * (i + 1), "completion": "y" * (8 - i) + "z" * i}) for i in range(8)]
    convs = parse_lines(lines, Report())
    ex = [ChatEncoder(tok, "<|eot_id|>").encode(c) for c in convs]
    model = AutoModelForCausalLM.from_pretrained(str(random_tiny_dir("tiny-llama")))

    def split(size):
        return [
            collate(ex[i : i + size], tok.pad_token_id, packing=packing, row_tokens=1024) for i in range(0, 8, size)
        ]

    m1, g1 = _grads(model, split(8))
    m2, g2 = _grads(model, split(2))
    m8, g8 = _grads(model, split(1))
    assert m1["train_num_predictions"] == m2["train_num_predictions"] == m8["train_num_predictions"]
    assert m2["train_total_loss"] == pytest.approx(m1["train_total_loss"], rel=1e-5)
    assert m8["train_total_loss"] == pytest.approx(m1["train_total_loss"], rel=1e-5)
    for name in g1:
        torch.testing.assert_close(g2[name], g1[name], rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(g8[name], g1[name], rtol=1e-4, atol=1e-6)


def test_schedule_warms_up_then_decays():
    f = [lr_factor(s, 100, 10, "cosine") for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(f[10:])) and f[-1] < 0.01
    lin = [lr_factor(s, 100, 0, "linear", min_ratio=0.1) for s in range(100)]
    assert lin[0] == 1.0 and lin[50] == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_factor(60, 100, 10, "constant") == 1.0


def test_config_rules():
    with pytest.raises(ValueError, match="not both"):
        TuningConfig(base_model="x", train_dataset="t", output_uri="o", learning_rate=1e-4, learning_rate_multiplier=2)
    with pytest.raises(ValueError, match="adapter_size must be one of 1, 2, 4, 8, 16, 32"):
        TuningConfig(base_model="x", train_dataset="t", output_uri="o", adapter_size=3)
    with pytest.raises(ValueError, match="PEFT_ADAPTER tuning only"):
        TuningConfig(base_model="x", train_dataset="t", output_uri="o", adapter_size=4, tuning_mode="FULL")
    assert TuningConfig(base_model="x", train_dataset="t", output_uri="o", tuning_mode=1).tuning_mode == TuningMode.FULL
    assert (
        TuningConfig(base_model="x", train_dataset="t", output_uri="o", tuning_mode="lora").tuning_mode
        == TuningMode.PEFT_ADAPTER
    )


def test_mode_must_be_allowed_by_the_catalog(data, tmp_path, settings):
    with pytest.raises(
        InvalidArgument, match="llama-3.2-1b-instruct does not support tuning mode PEFT_ADAPTER; it allows FULL"
    ):
        run_sft(cfg(data, tmp_path, base_model="meta/llama3-2@llama-3.2-1b-instruct", dev=True), settings=settings)


def test_bad_dataset_is_refused_with_every_error_before_any_weights_load(tmp_path, settings, monkeypatch):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a"}\n{"prompt": "b", "completion": "c"}\nnot json\n')
    val = tmp_path / "val.jsonl"
    val.write_text('{"messages": [{"role": "bot", "content": "x"}]}\n')
    import tuneforge.train.recipes.sft as sft

    monkeypatch.setattr(sft, "load_model", lambda *a, **k: pytest.fail("weights loaded for a bad dataset"))
    with pytest.raises(DatasetInvalid) as exc:
        run_sft(
            TuningConfig(
                base_model="tiny-llama",
                train_dataset=str(bad),
                validation_dataset=str(val),
                output_uri=str(tmp_path / "out"),
            ),
            settings=settings,
        )
    text = str(exc.value)
    assert "3 error(s)" in text
    assert f'{bad}: line 1: prompt/completion example is missing "completion"' in text
    assert f"{bad}: line 3, column 1: invalid JSON" in text
    assert f"{val}: line 1" in text
    assert 'messages[0].role: "bot" is not a valid role' in text
    assert not (tmp_path / "out" / "postprocess").exists()


# --- LoRA and FULL artifacts, loaded without tuneforge ------------------------------------------------------------


def test_lora_run_artifacts_load_with_plain_peft(data, tmp_path, settings):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result = run_sft(
        cfg(data, tmp_path, validation_dataset=data["val"], adapter_size=4, export_merged=True, eval_steps=3),
        settings=settings,
    )
    final = result.final_dir
    assert final == tmp_path / "out" / "postprocess" / "node-0" / "checkpoints" / "final"
    names = {p.name for p in final.iterdir()}
    assert {
        "adapter_model.safetensors",
        "adapter_config.json",
        "tokenizer.json",
        "chat_template.jinja",
        "tuneforge_config.json",
        "tuneforge_manifest.json",
        "merged",
    } <= names
    assert verify_manifest(final) == [] and verify_manifest(final / "merged") == []
    adapter_cfg = json.loads((final / "adapter_config.json").read_text())
    assert adapter_cfg["r"] == 4 and adapter_cfg["lora_alpha"] == 8
    assert set(adapter_cfg["target_modules"]) == {
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    }
    resolved = json.loads((final / "tuneforge_config.json").read_text())["resolved"]
    assert (
        resolved["learning_rate"] == 2e-3
        and resolved["adapter_size"] == 4
        and resolved["tuning_mode"] == "PEFT_ADAPTER"
    )

    tok = AutoTokenizer.from_pretrained(str(final))
    model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(adapter_cfg["base_model_name_or_path"]), str(final)
    )
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "abc"}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    out = model.generate(**ids, max_new_tokens=4, do_sample=False)
    merged = AutoModelForCausalLM.from_pretrained(str(final / "merged"))
    out_merged = merged.generate(**ids, max_new_tokens=4, do_sample=False)
    assert out.tolist() == out_merged.tolist()  # merged weights answer as base + adapter do

    # Only adapter weights were trained; the base is untouched.
    base = AutoModelForCausalLM.from_pretrained(adapter_cfg["base_model_name_or_path"])
    tuned = {n.replace(".base_layer", ""): q for n, q in model.get_base_model().named_parameters() if "lora_" not in n}
    base_params = dict(base.named_parameters())
    assert tuned.keys() == base_params.keys()
    for name, p in base_params.items():
        torch.testing.assert_close(tuned[name], p)

    metrics = read_metrics(tmp_path / "out" / "metrics.jsonl")
    train_rows = [m for m in metrics if "train_total_loss" in m]
    eval_rows = [m for m in metrics if "eval_total_loss" in m]
    assert [m["step"] for m in train_rows] == list(range(1, 7))
    assert [m["step"] for m in eval_rows] == [3, 6]
    assert all(set(TRAIN_METRICS) <= set(m) for m in train_rows) and all(set(EVAL_METRICS) <= set(m) for m in eval_rows)
    stats = json.loads((tmp_path / "out" / "tuning_data_stats.json").read_text())["supervisedTuningDataStats"]
    assert stats["tuningDatasetExampleCount"] == "48" and stats["tuningStepCount"] == "6"


def test_tensorboard_events_carry_the_documented_tags(data, tmp_path, settings):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_sft(cfg(data, tmp_path, validation_dataset=data["val"], eval_steps=2, max_steps=4), settings=settings)
    acc = EventAccumulator(str(tmp_path / "out" / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"/" + m for m in TRAIN_METRICS + EVAL_METRICS} <= tags
    assert [e.step for e in acc.Scalars("/train_total_loss")] == [1, 2, 3, 4]
    assert [e.step for e in acc.Scalars("/eval_total_loss")] == [2, 4]


def test_events_also_go_to_the_tensorboard_resource_location(data, tmp_path, settings):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_sft(
        cfg(data, tmp_path, max_steps=2, tensorboard="projects/p/locations/us-central1/tensorboards/tb-1"),
        settings=settings,
    )
    acc = EventAccumulator(str(settings.home / "tensorboards" / "tb-1" / "out"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("/train_total_loss")] == [1, 2]
    with pytest.raises(ValueError, match="TensorBoard id"):
        cfg(data, tmp_path, tensorboard="projects/p/tensorboards/..")


@pytest.mark.parametrize("family", ["tiny-gemma3", "tiny-qwen3"])
def test_full_run_loads_with_plain_transformers(data, tmp_path, settings, family):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result = run_sft(cfg(data, tmp_path, base_model=family, tuning_mode="FULL", max_steps=3), settings=settings)
    final = result.final_dir
    assert (final / "model.safetensors").exists() and (final / "config.json").exists()
    assert verify_manifest(final) == []
    manifest = json.loads((final / "tuneforge_manifest.json").read_text())
    assert manifest["kind"] == "full" and "model.safetensors" in manifest["files"]
    model = AutoModelForCausalLM.from_pretrained(str(final))
    tok = AutoTokenizer.from_pretrained(str(final))
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "abc"}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    assert model.generate(**ids, max_new_tokens=3, do_sample=False).shape[1] <= ids["input_ids"].shape[1] + 3
    eos = model.generation_config.eos_token_id
    assert tok.convert_tokens_to_ids(tok.eos_token) in (eos if isinstance(eos, list) else [eos])


PLAIN_LOAD = """
import json, sys
from pathlib import Path
from transformers import AutoModelForCausalLM, AutoTokenizer
final = Path(sys.argv[1])
tok = AutoTokenizer.from_pretrained(final)
if (final / "adapter_config.json").exists():
    from peft import PeftModel
    base = json.loads((final / "adapter_config.json").read_text())["base_model_name_or_path"]
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), final)
else:
    model = AutoModelForCausalLM.from_pretrained(final)
ids = tok.apply_chat_template([{"role": "user", "content": "abc"}], add_generation_prompt=True, return_tensors="pt", return_dict=True)
out = model.generate(**ids, max_new_tokens=5, do_sample=False)
assert not any(m.startswith("tuneforge") for m in sys.modules), "tuneforge was imported"
print(json.dumps({"new_tokens": out.shape[1] - ids["input_ids"].shape[1], "text": tok.decode(out[0, ids["input_ids"].shape[1]:])}))
"""


@pytest.mark.parametrize("mode", ["PEFT_ADAPTER", "FULL"])
def test_artifacts_load_and_generate_in_a_process_without_tuneforge(data, tmp_path, settings, mode):
    import subprocess
    import sys

    result = run_sft(cfg(data, tmp_path, tuning_mode=mode, max_steps=2), settings=settings)
    proc = subprocess.run(
        [sys.executable, "-c", PLAIN_LOAD, str(result.final_dir)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert 1 <= out["new_tokens"] <= 5


# --- resume ------------------------------------------------------------------------------------------------------


class StopAt(Callbacks):
    def __init__(self, step):
        self.stop_at, self.step = step, 0

    def on_step(self, step, total_steps, metrics):
        self.step = step


@pytest.mark.parametrize("mode", ["PEFT_ADAPTER", "FULL"])
def test_stopped_run_resumes_with_the_same_loss_curve(data, tmp_path, settings, mode):
    kw = dict(tuning_mode=mode, epochs=2, batch_size=8, validation_dataset=data["val"], eval_steps=4, save_steps=2)
    whole = run_sft(cfg(data, tmp_path / "a", **kw), settings=settings)
    cb = StopAt(5)
    stopped = run_sft(
        cfg(data, tmp_path / "b", **kw), settings=settings, callbacks=cb, should_stop=lambda: cb.step >= cb.stop_at
    )
    assert stopped.cancelled and stopped.steps == 5 and stopped.final_dir is None
    resumed = run_sft(cfg(data, tmp_path / "b", **kw), settings=settings)
    assert resumed.resumed_from == 5 and resumed.steps == whole.steps == 12
    a = read_metrics(tmp_path / "a" / "out" / "metrics.jsonl")
    b = read_metrics(tmp_path / "b" / "out" / "metrics.jsonl")
    assert [m["step"] for m in a] == [m["step"] for m in b]
    for x, y in zip(a, b):
        for key in TRAIN_METRICS + EVAL_METRICS:
            if key in x:
                assert y[key] == pytest.approx(x[key], rel=1e-4, abs=1e-6), (x["step"], key)


class Crash(Callbacks):
    """Dies like a killed worker: mid-epoch, after metrics for steps past the last checkpoint were written."""

    def on_step(self, step, total_steps, metrics):
        if step == 7:
            raise KeyboardInterrupt("killed")


def test_crashed_run_resumes_from_its_last_checkpoint_with_the_same_curve(data, tmp_path, settings):
    kw = dict(epochs=2, batch_size=8, save_steps=4)
    whole = run_sft(cfg(data, tmp_path / "a", **kw), settings=settings)
    with pytest.raises(KeyboardInterrupt):
        run_sft(cfg(data, tmp_path / "b", **kw), settings=settings, callbacks=Crash())
    crashed = read_metrics(tmp_path / "b" / "out" / "metrics.jsonl")
    assert crashed[-1]["step"] == 7  # step 7 was logged after the last checkpoint (end of epoch 1, step 6)
    resumed = run_sft(cfg(data, tmp_path / "b", **kw), settings=settings)
    assert resumed.resumed_from == 6 and resumed.steps == whole.steps
    a = read_metrics(tmp_path / "a" / "out" / "metrics.jsonl")
    b = read_metrics(tmp_path / "b" / "out" / "metrics.jsonl")
    assert [m["step"] for m in b] == [m["step"] for m in a]  # step 7 is not duplicated
    for x, y in zip(a, b):
        assert y["train_total_loss"] == pytest.approx(x["train_total_loss"], rel=1e-4)


def test_resume_refuses_a_different_run_in_the_same_folder(data, tmp_path, settings):
    cb = StopAt(2)
    run_sft(
        cfg(data, tmp_path, epochs=2, save_steps=1), settings=settings, callbacks=cb, should_stop=lambda: cb.step >= 2
    )
    with pytest.raises(InvalidArgument, match="different run"):
        run_sft(cfg(data, tmp_path, epochs=2, save_steps=1, learning_rate=1e-4), settings=settings)


# --- continued tuning --------------------------------------------------------------------------------------------


def test_continued_tuning_from_full_and_from_lora_outputs(data, tmp_path, settings):
    full = run_sft(cfg(data, tmp_path / "full", tuning_mode="FULL", max_steps=2), settings=settings)
    again = run_sft(
        cfg(data, tmp_path / "full2", tuning_mode="FULL", max_steps=2, custom_base_model=str(full.final_dir)),
        settings=settings,
    )
    record = json.loads((again.final_dir / "tuneforge_config.json").read_text())
    assert record["model"]["base_dir"] == str(full.final_dir)

    import shutil

    lora = run_sft(cfg(data, tmp_path / "lora", max_steps=2, adapter_size=2), settings=settings)
    shutil.copytree(lora.final_dir, settings.resolved_bucket_root / "tuned" / "lora-run")  # continue from gs://
    first_loss = read_metrics(tmp_path / "lora" / "out" / "metrics.jsonl")[-1]["train_total_loss"]
    lora2 = run_sft(
        cfg(data, tmp_path / "lora2", max_steps=2, custom_base_model="gs://tuned/lora-run"), settings=settings
    )
    assert json.loads((lora2.final_dir / "adapter_config.json").read_text())["r"] == 2  # the same adapter, continued
    cont_first = read_metrics(tmp_path / "lora2" / "out" / "metrics.jsonl")[0]["train_total_loss"]
    assert cont_first < read_metrics(tmp_path / "lora" / "out" / "metrics.jsonl")[0]["train_total_loss"]
    assert math.isfinite(first_loss)
    # FULL from a LoRA output: the adapter is merged into the base and everything trains.
    merged = run_sft(
        cfg(data, tmp_path / "lora-full", tuning_mode="FULL", max_steps=1, custom_base_model=str(lora.final_dir)),
        settings=settings,
    )
    assert (merged.final_dir / "model.safetensors").exists()


def test_custom_base_of_another_architecture_is_refused(data, tmp_path, settings, tiny_dir):
    with pytest.raises(InvalidArgument, match="architecture must match"):
        run_sft(cfg(data, tmp_path, custom_base_model=str(tiny_dir("tiny-qwen3"))), settings=settings)


# --- evaluation-driven options -----------------------------------------------------------------------------------


def test_early_stopping_and_best_checkpoint(data, tmp_path, settings):
    # A learning rate this high makes eval accuracy fall after the first evaluations.
    result = run_sft(
        cfg(
            data,
            tmp_path,
            tuning_mode="FULL",
            epochs=10,
            validation_dataset=data["val"],
            eval_steps=1,
            learning_rate=0.05,
            warmup_ratio=0.0,
            lr_scheduler="constant",
            early_stopping=True,
            early_stopping_patience=2,
            checkpoint_selection="best",
        ),
        settings=settings,
    )
    assert result.stopped_early and result.steps < result.total_steps
    record = json.loads((result.final_dir / "tuneforge_config.json").read_text())
    best = record["final"]["best_eval"]["eval_fraction_of_correct_next_step_preds"]
    evals = [m for m in read_metrics(tmp_path / "out" / "metrics.jsonl") if "eval_total_loss" in m]
    assert best == max(m["eval_fraction_of_correct_next_step_preds"] for m in evals)
    assert record["final"]["step"] == next(
        m["step"] for m in evals if m["eval_fraction_of_correct_next_step_preds"] == best
    )


def test_gs_output_uri_maps_to_the_bucket_root(data, tmp_path, settings):
    result = run_sft(cfg(data, tmp_path, output_uri="gs://my-bucket/runs/r1", max_steps=1), settings=settings)
    assert (
        result.final_dir
        == settings.resolved_bucket_root
        / "my-bucket"
        / "runs"
        / "r1"
        / "postprocess"
        / "node-0"
        / "checkpoints"
        / "final"
    )
