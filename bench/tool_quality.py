"""Tool use on the stand-ins: held-out call and answer exact match after tuning on the synthetic tool task
(train/tool_task.py), FULL and LoRA, catalog defaults unless --epochs is given (the figures in docs/quality.md).

.venv/bin/python bench/tool_quality.py [--model tiny-qwen3] [--lines 1000] [--epochs 10]
"""

from __future__ import annotations

import argparse

import torch

from cpu_quality import report, scratch
from tuneforge.train.tool_task import run_tool_task


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="tiny-qwen3")
    p.add_argument("--lines", type=int, default=1000)
    p.add_argument("--held-out", type=int, default=40)
    p.add_argument("--epochs", type=float, default=None, help="default: the catalog's")
    args = p.parse_args()
    torch.set_num_threads(1)
    root = scratch()
    extra = {"epochs": args.epochs} if args.epochs else {}
    rows = [
        run_tool_task(root / mode, args.model, mode, lines=args.lines, held_out=args.held_out, **extra)
        for mode in ("FULL", "PEFT_ADAPTER")
    ]
    report(rows)


if __name__ == "__main__":
    main()
