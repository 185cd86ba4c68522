"""Micro-batch collation, packed or padded.

A micro-batch is a list of encoded examples. Packed, they are concatenated into rows of at most ``row_tokens``
tokens; position ids restart at 0 for every example, which transformers' attention masking turns into a
block-diagonal causal mask (no attention across examples) when no 2-D attention mask is passed. Padded, each
example gets a row of its own, right-padded; causal attention never looks at the padding after a token.

Both layouts produce the same tensors the model needs (``input_ids``, ``position_ids``, ``labels``) plus
``cu_seqlens``, the cumulative example lengths a varlen flash-attention kernel takes, so a GPU fast path can
consume the packed layout without another collator.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from tuneforge.data.tokenize import IGNORE_INDEX, Encoded


@dataclass
class Batch:
    input_ids: torch.Tensor  # [rows, T]
    position_ids: torch.Tensor  # [rows, T]
    labels: torch.Tensor  # [rows, T], IGNORE_INDEX where not trained
    cu_seqlens: list[list[int]]  # per row: cumulative example lengths (0, l1, l1+l2, ...)
    num_examples: int
    tasks: torch.Tensor | None = None  # [rows, T]: each token's example task (Encoded.task)
    images: dict | None = None  # image-text models: the processor's tensors for the images, in token order

    @property
    def num_target_tokens(self) -> int:
        # Labels are shifted by one inside the loss, so the first label of each row is never predicted.
        return int((self.labels[:, 1:] != IGNORE_INDEX).sum())

    def task_target_tokens(self, num_tasks: int) -> list[int]:
        """Target tokens per task (the same shift as :attr:`num_target_tokens`)."""
        trained = self.labels[:, 1:] != IGNORE_INDEX
        if self.tasks is None:
            return [int(trained.sum())] + [0] * (num_tasks - 1)
        return torch.bincount(self.tasks[:, 1:][trained], minlength=num_tasks).tolist()

    @property
    def num_tokens(self) -> int:
        return sum(row[-1] for row in self.cu_seqlens)


def _rows(examples: Sequence[Encoded], packing: bool, row_tokens: int) -> list[list[Encoded]]:
    if not packing:
        return [[e] for e in examples]
    rows: list[list[Encoded]] = []
    used: list[int] = []
    for e in examples:  # first fit, in order: deterministic and keeps the data order
        for i, n in enumerate(used):
            if n + len(e) <= row_tokens:
                rows[i].append(e)
                used[i] += len(e)
                break
        else:
            rows.append([e])
            used.append(len(e))
    return rows


def collate(
    examples: Sequence[Encoded],
    pad_id: int,
    *,
    packing: bool,
    row_tokens: int,
    image_inputs: Callable[[list], dict] | None = None,
) -> Batch:
    """``image_inputs``: makes the image tensors of the images in the order their tokens are laid out."""
    rows = _rows(examples, packing, row_tokens)
    width = max(sum(len(e) for e in row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    pos = torch.zeros((len(rows), width), dtype=torch.long)
    tasks = torch.zeros((len(rows), width), dtype=torch.long)
    cu: list[list[int]] = []
    for r, row in enumerate(rows):
        offset = 0
        bounds = [0]
        for e in row:
            n = len(e)
            ids[r, offset : offset + n] = torch.tensor(e.input_ids)
            # Labels are per example: the shift inside the loss must not predict example k+1's first token from
            # example k's last, so the first token of each example is never a target (it is a prompt token anyway).
            lab = torch.tensor(e.labels)
            lab[0] = IGNORE_INDEX
            labels[r, offset : offset + n] = lab
            pos[r, offset : offset + n] = torch.arange(n)
            tasks[r, offset : offset + n] = e.task
            offset += n
            bounds.append(offset)
        if offset < width:  # padding tail: its own pseudo-example, positions restarting, never trained
            pos[r, offset:] = torch.arange(width - offset)
        cu.append(bounds)
    parts = [image for row in rows for e in row for image in e.images]
    images = image_inputs(parts) if parts and image_inputs is not None else None
    return Batch(
        input_ids=ids,
        position_ids=pos,
        labels=labels,
        cu_seqlens=cu,
        num_examples=len(examples),
        tasks=tasks,
        images=images,
    )
