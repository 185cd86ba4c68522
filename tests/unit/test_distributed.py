"""FULL tuning sharded over two processes (FSDP2 on gloo, CPU) gives one process's losses and weights."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from tuneforge.train.demo_task import make_task, write_jsonl
from tuneforge.train.metrics import read_metrics

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def data(tmp_path_factory, random_tiny_dir):
    root = tmp_path_factory.mktemp("dist-data")
    task = make_task(n_train=40, n_validation=8, n_held_out=2, seed=1)
    return {
        "train": str(write_jsonl(root / "train.jsonl", task.train)),
        "val": str(write_jsonl(root / "val.jsonl", task.validation)),
        "base": str(random_tiny_dir("tiny-llama")),  # the tolerances below were set on the random init
    }


def _tune(data, out: Path, processes: int, *extra: str) -> subprocess.CompletedProcess:
    args = [
        "-m",
        "tuneforge",
        "tune",
        "-m",
        "tiny-llama",
        "--custom-base-model",
        data["base"],
        "--train",
        data["train"],
        "--validation",
        data["val"],
        "--mode",
        "full",
        "-o",
        str(out),
        "--max-steps",
        "4",
        "--batch-size",
        "8",
        "--micro-batch-tokens",
        "300",
        "--eval-steps",
        "2",
        "--save-steps",
        "2",
        "--device",
        "cpu",
        *extra,
    ]
    if processes > 1:
        cmd = [str(BIN / "torchrun"), "--standalone", f"--nproc_per_node={processes}", *args]
    else:
        cmd = [sys.executable, *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def _final(out: Path) -> dict:
    return load_file(str(out / "postprocess/node-0/checkpoints/final/model.safetensors"))


def test_two_sharded_processes_train_like_one(data, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    _tune(data, one, 1)
    _tune(data, two, 2)

    m1, m2 = read_metrics(one / "metrics.jsonl"), read_metrics(two / "metrics.jsonl")
    train1 = [m for m in m1 if "train_total_loss" in m]
    train2 = [m for m in m2 if "train_total_loss" in m]
    assert [m["step"] for m in train2] == [1, 2, 3, 4]
    for a, b in zip(train1, train2, strict=True):
        assert b["train_total_loss"] == pytest.approx(a["train_total_loss"], rel=1e-5)
        assert b["train_num_predictions"] == a["train_num_predictions"]
    evals1 = [m["eval_total_loss"] for m in m1 if "eval_total_loss" in m]
    evals2 = [m["eval_total_loss"] for m in m2 if "eval_total_loss" in m]
    assert len(evals2) == 2 and evals2 == pytest.approx(evals1, rel=1e-5)

    w1, w2 = _final(one), _final(two)
    assert w1.keys() == w2.keys()
    for name in w1:
        assert (w1[name].float() - w2[name].float()).abs().max() < 1e-5, name
    record = json.loads((two / "tuneforge_config.json").read_text())
    assert record["resolved"]["processes"] == 2

    # Resume from the sharded checkpoint of step 2 (gathered and written by rank 0), as a rerun after a crash
    # after step 2 would: steps 3 and 4 come out the same.
    assert sorted(p.name for p in (two / "checkpoints").iterdir()) == ["step-0000002"]
    shutil.rmtree(two / "postprocess")
    done = _tune(data, two, 2)
    assert "resuming from step-0000002" in done.stdout
    again = [m for m in read_metrics(two / "metrics.jsonl") if "train_total_loss" in m]
    assert [m["step"] for m in again] == [1, 2, 3, 4]
    assert [m["train_total_loss"] for m in again] == pytest.approx([m["train_total_loss"] for m in train2], rel=1e-5)
    for name, value in _final(two).items():
        assert (value.float() - w2[name].float()).abs().max() < 1e-5, name


def test_sharded_gradients_equal_one_process(tiny_dir, tmp_path):
    """Rank 1 starts from an empty (meta) model and receives rank 0's weights and buffers. Loss and every gradient of one step (5 micro-batches shared out unevenly, two task weights) under FSDP2 equal
    one unsharded process's: the mean over the whole step's target tokens, whatever the process holds. (Losses
    alone cannot show this: AdamW and clipping hide a wrong gradient scale.)"""
    out = tmp_path / "grads.json"
    script = Path(__file__).with_name("sharded_grads.py")
    cmd = [
        str(BIN / "torchrun"),
        "--standalone",
        "--nproc_per_node=2",
        str(script),
        str(tiny_dir("tiny-llama")),
        str(out),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["micro_batches"] >= 3
    assert "model.rotary_emb.inv_freq" in result["buffers"] and result["same_buffers"]
    assert result["loss_sharded"] == pytest.approx(result["loss_single"], rel=1e-6)
    assert result["max_abs_diff"] < 1e-5 * max(1.0, result["max_abs_grad"])


@pytest.mark.parametrize("options", [{"tuning_mode": "PEFT_ADAPTER"}, {"tuning_mode": "FULL", "fast_path": False}])
def test_lora_and_the_reference_step_are_refused_across_processes(data, tmp_path, monkeypatch, settings, options):
    """Refused before joining a process group (so before any rank waits for the others)."""
    from tuneforge.errors import InvalidArgument
    from tuneforge.train import TuningConfig, run_sft

    monkeypatch.setenv("WORLD_SIZE", "2")
    config = TuningConfig(
        base_model="tiny-llama",
        train_dataset=data["train"],
        output_uri=str(tmp_path / "o"),
        max_steps=1,
        device="cpu",
        **options,
    )
    with pytest.raises(InvalidArgument, match="shard FULL tuning on the fast path"):
        run_sft(config, settings=settings)
