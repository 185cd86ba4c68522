"""Resumable checkpoints: trainable weights, optimizer, schedule, RNG and trainer state, written atomically.

A checkpoint folder is complete when its ``COMPLETE`` marker exists (written last), so a run killed while saving
resumes from the previous one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file

from tuneforge.train.artifacts import RunLayout, replace_dir
from tuneforge.train.distributed import (
    full_optimizer_state,
    full_state_dict,
    is_sharded,
    load_full_optimizer_state,
    load_full_state_dict,
)

COMPLETE = "COMPLETE"
WEIGHTS = "trainable.safetensors"
STATE = "state.pt"


@dataclass
class TrainerState:
    step: int = 0
    best_score: float | None = None
    best_step: int | None = None
    best_eval: dict = field(default_factory=dict)
    bad_evals: int = 0


def _trainable(model) -> dict[str, torch.Tensor]:
    if is_sharded(model):  # gathered to rank 0 (a collective: every process of a sharded run calls this)
        return full_state_dict(model, trainable_only=True)
    return {name: p.detach().to("cpu").contiguous() for name, p in model.named_parameters() if p.requires_grad}


def _writes() -> bool:
    """In a sharded run only rank 0 writes checkpoint files (the others take part in gathering them)."""
    return not dist.is_initialized() or dist.get_rank() == 0


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def _write(folder: Path, tensors: dict[str, torch.Tensor], write_more=None) -> None:
    """Write ``folder`` atomically, its ``COMPLETE`` marker last (rank 0 only in a sharded run; the others wait)."""
    folder = Path(folder)
    if _writes():
        tmp = folder.with_name(f".{folder.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_file(tensors, str(tmp / WEIGHTS))
        if write_more is not None:
            write_more(tmp)
        (tmp / COMPLETE).write_text("ok")
        replace_dir(tmp, folder)
    _barrier()


def save_trainable(model, folder: Path) -> None:
    _write(folder, _trainable(model))


def load_trainable(model, folder: Path) -> None:
    tensors = load_file(str(Path(folder) / WEIGHTS))
    params = dict(model.named_parameters())
    unknown = [k for k in tensors if k not in params]
    if unknown:
        raise RuntimeError(f"checkpoint {folder} has weights this model lacks: {unknown[:5]}")
    if is_sharded(model):
        load_full_state_dict(model, tensors)
        return
    with torch.no_grad():
        for name, value in tensors.items():
            params[name].copy_(value.to(params[name].device, params[name].dtype))


def save_checkpoint(folder: Path, model, optimizer, scheduler, state: TrainerState) -> None:
    tensors = _trainable(model)
    sharded = is_sharded(model)
    # A sharded optimizer's state is gathered and keyed by parameter name; a single process's, by position.
    optimizer_state = full_optimizer_state(model, optimizer) if sharded else optimizer.state_dict()

    def write_state(tmp: Path) -> None:
        torch.save(
            {
                "optimizer": optimizer_state,
                "optimizer_by_name": sharded,
                "scheduler": scheduler.state_dict(),
                "rng": {
                    "torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                    "python": random.getstate(),
                },
            },
            tmp / STATE,
        )
        (tmp / "trainer_state.json").write_text(json.dumps(asdict(state), indent=2))

    _write(folder, tensors, write_state)


def load_checkpoint(folder: Path, model, optimizer, scheduler) -> TrainerState:
    folder = Path(folder)
    load_trainable(model, folder)
    blob = torch.load(folder / STATE, map_location="cpu", weights_only=False)
    if blob.get("optimizer_by_name"):
        load_full_optimizer_state(model, optimizer, blob["optimizer"])
    elif is_sharded(model):
        raise RuntimeError(f"checkpoint {folder} was written by a single process; resume it with one process")
    else:
        optimizer.load_state_dict(blob["optimizer"])
    scheduler.load_state_dict(blob["scheduler"])
    torch.set_rng_state(blob["rng"]["torch"])
    if blob["rng"]["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(blob["rng"]["cuda"])
    random.setstate(blob["rng"]["python"])
    return TrainerState(**json.loads((folder / "trainer_state.json").read_text()))


def _complete_steps(layout: RunLayout) -> list[Path]:
    if not layout.checkpoints.exists():
        return []
    found = [p for p in layout.checkpoints.iterdir() if p.name.startswith("step-") and (p / COMPLETE).exists()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def latest_checkpoint(layout: RunLayout) -> Path | None:
    found = _complete_steps(layout)
    return found[-1] if found else None


def prune_checkpoints(layout: RunLayout, keep: int) -> None:
    for old in _complete_steps(layout)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    for partial in layout.checkpoints.glob(".step-*.tmp"):
        if os.path.isdir(partial):
            shutil.rmtree(partial, ignore_errors=True)
