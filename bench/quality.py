"""Held-out exact match of FULL and LoRA tuning on the reversal task (the figures in docs/quality.md).

.venv/bin/python bench/quality.py [--lora-rank 16] [--lora-epochs 4]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

import torch
import transformers

from tuneforge.train.demo_task import held_out_quality


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--lora-rank", type=int, default=16)
    p.add_argument("--lora-epochs", type=float, default=4)
    args = p.parse_args()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    os.environ.setdefault("TUNEFORGE_HOME", tempfile.mkdtemp())
    root = Path(tempfile.mkdtemp())
    rows = [
        held_out_quality(root, "PEFT_ADAPTER", epochs=args.lora_epochs, adapter_size=args.lora_rank),
        held_out_quality(root, "FULL", epochs=4),
    ]
    env = {
        "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "machine": platform.processor() or platform.machine(),
    }
    print(json.dumps({"env": env, "results": rows}, indent=2))


if __name__ == "__main__":
    main()
