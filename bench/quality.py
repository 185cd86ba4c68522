"""Held-out exact match of FULL and LoRA tuning on the reversal task (the figures in docs/quality.md).

    .venv/bin/python bench/quality.py [--lora-rank 32] [--lora-epochs 8]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
import transformers

from tuneforge.demo import (
    ReversalTask,
    copy_base,
    exact_match,
    greedy_answers,
    make_task,
    write_jsonl,
)
from tuneforge.train import TuningConfig, run_sft


def run(mode: str, epochs: float, root: Path, **kw) -> dict:
    task = make_task(seed=11)
    train = write_jsonl(root / "train.jsonl", task.train)
    if mode == "PEFT_ADAPTER":
        kw["custom_base_model"] = str(copy_base(root, task.train))
    started = time.perf_counter()
    result = run_sft(TuningConfig(base_model="tiny-llama", train_dataset=str(train), output_uri=str(root / mode),
                                  tuning_mode=mode, epochs=epochs, batch_size=32, seed=5, **kw))
    seconds = time.perf_counter() - started
    prompts = [ReversalTask.prompt(s) for s in task.held_out]
    expected = [ReversalTask.answer(s) for s in task.held_out]
    em = exact_match(greedy_answers(result.final_dir, prompts), expected)
    return {"mode": mode, "epochs": epochs, "steps": result.steps, "train_seconds": round(seconds, 1),
            "held_out_exact_match": em, **kw}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--lora-rank", type=int, default=16)
    p.add_argument("--lora-epochs", type=float, default=4)
    args = p.parse_args()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    os.environ.setdefault("TUNEFORGE_HOME", tempfile.mkdtemp())
    root = Path(tempfile.mkdtemp())
    rows = [run("PEFT_ADAPTER", args.lora_epochs, root, adapter_size=args.lora_rank), run("FULL", 4, root)]
    env = {"cpu_threads": torch.get_num_threads(), "torch": torch.__version__, "transformers": transformers.__version__,
           "machine": platform.processor() or platform.machine()}
    print(json.dumps({"env": env, "results": rows}, indent=2))


if __name__ == "__main__":
    main()
