"""Batch generation outside the server: pipeline tasks (teacher labelling, evaluation), the CLI and benchmarks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tuneforge.infer.engine import Engine
from tuneforge.infer.prompts import prompt_ids
from tuneforge.infer.sampling import SamplingParams


def generate_offline(
    folder: Path,
    base_dir: Path | None,
    texts: list[str],
    params: SamplingParams,
    *,
    device: str = "auto",
    should_stop: Callable[[], bool] | None = None,
    keep_last_tokens: bool = False,
    max_batch: int = 16,
) -> list[str]:
    """Load the model on its own engine, send each text as one user turn (as ``predict`` does), generate, unload.
    ``keep_last_tokens``: cut prompts from the left to leave room for the answer, instead of letting an over-long
    prompt fail."""
    engine = Engine(device=device, max_batch=max_batch)
    try:
        dep = engine.deploy("offline", folder, base_dir)
        prompts = [prompt_ids(dep, text) for text in texts]
        if keep_last_tokens:
            prompts = [ids[-(dep.context_len - params.max_tokens) :] for ids in prompts]
        return dep.generate(prompts, params, should_stop)
    finally:
        engine.close()
