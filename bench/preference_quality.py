"""Preference tuning (DPO) learns a rule on the CPU: held-out preference accuracy and greedy rule-following before
and after, FULL and LoRA, with the catalog's default learning rates and beta (the figures in docs/quality.md).

.venv/bin/python bench/preference_quality.py [--pairs 1000] [--epochs 1]
"""

from __future__ import annotations

import argparse

from cpu_quality import report, scratch
from tuneforge.train.preference_task import held_out_preference


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--pairs", type=int, default=1000)
    p.add_argument("--epochs", type=float, default=1)
    args = p.parse_args()
    root = scratch()
    report(
        [held_out_preference(root, mode, n_pairs=args.pairs, epochs=args.epochs) for mode in ("FULL", "PEFT_ADAPTER")]
    )


if __name__ == "__main__":
    main()
