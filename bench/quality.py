"""Held-out exact match of FULL and LoRA tuning on the reversal task (the figures in docs/quality.md).

.venv/bin/python bench/quality.py [--lora-rank 16] [--lora-epochs 4]
"""

from __future__ import annotations

import argparse

from cpu_quality import report, scratch
from tuneforge.train.demo_task import held_out_quality


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--lora-rank", type=int, default=16)
    p.add_argument("--lora-epochs", type=float, default=4)
    args = p.parse_args()
    root = scratch()
    rows = [
        held_out_quality(root, "PEFT_ADAPTER", epochs=args.lora_epochs, adapter_size=args.lora_rank),
        held_out_quality(root, "FULL", epochs=4),
    ]
    report(rows)


if __name__ == "__main__":
    main()
