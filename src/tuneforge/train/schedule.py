"""Learning-rate schedule: linear warm-up, then cosine or linear decay (or constant) down to min_lr_ratio."""

from __future__ import annotations

import math


def lr_factor(step: int, total_steps: int, warmup_steps: int, kind: str, min_ratio: float = 0.0) -> float:
    """Multiplier of the peak rate for optimizer step ``step`` (0-based)."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if kind == "constant":
        return 1.0
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    if kind == "linear":
        decay = 1.0 - progress
    else:
        decay = 0.5 * (1.0 + math.cos(math.pi * progress))
    return min_ratio + (1.0 - min_ratio) * decay
