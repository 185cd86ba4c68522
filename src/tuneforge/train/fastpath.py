"""The fast training step: packed varlen micro-batches, the loss on target tokens only, no host sync inside a step.

What makes it faster than the reference step (``recipes.sft.batch_loss``), each a measured choice
(``bench/train_throughput.py``, ``docs/benchmarks.md``):

- **Packing by token budget, best-fit decreasing.** A step's examples are packed into micro-batches of at most
  ``budget`` tokens, one row each: no padding is computed. Position ids restart per example, which transformers
  turns into attention that never crosses examples (varlen flash attention, a flex block mask or SDPA's
  block-diagonal mask, whichever the model was loaded with).
- **No full logits.** The backbone's hidden states are gathered at the positions whose next token is trained (the
  prompt is never projected onto the vocabulary) and the output projection + cross-entropy run in chunks of
  tokens (:class:`LinearCrossEntropy`): the [tokens, vocab] float32 logits of the reference step (about 1 GB per
  2048 tokens at Llama 3's 128k vocabulary) never exist at once. Gradients for the chunk are computed while its
  logits are live, as Liger's fused linear cross-entropy does.
- **Host work ahead of the device.** Packing and the target index (which positions are trained) are computed on
  the host by a prefetch thread while the device runs the previous step; tensors are pinned and copied without
  blocking. Metrics accumulate on the device and are read once, after the optimizer step.

Numerics: the same batches give the reference step's loss and gradients up to floating-point summation order
(tests/unit/test_fastpath.py, float32: 1e-5 relative; tests/gpu: bf16 tolerance stated there).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from tuneforge.data.tokenize import IGNORE_INDEX, Encoded
from tuneforge.train.metrics import eval_metrics

NUM_TASKS = 2  # 0: the answer; 1: the rationale (distillation step-by-step, Encoded.task)


# --- packing -----------------------------------------------------------------------------------------------------


def plan_micro_batches(examples: Sequence[Encoded], budget: int) -> list[list[Encoded]]:
    """Best-fit decreasing: longest first, each into the fullest micro-batch it still fits (a new one otherwise).

    Deterministic for a given order of ``examples``. An example longer than ``budget`` gets a micro-batch of its
    own (the budget bounds packing, it never truncates).
    """
    order = sorted(range(len(examples)), key=lambda i: (-len(examples[i]), i))
    bins: list[list[Encoded]] = []
    room: list[int] = []
    for i in order:
        n = len(examples[i])
        best = -1
        for b, free in enumerate(room):
            if n <= free and (best < 0 or free < room[best]):
                best = b
        if best < 0:
            bins.append([examples[i]])
            room.append(budget - n)
        else:
            bins[best].append(examples[i])
            room[best] -= n
    return bins


@dataclass
class Packed:
    """One micro-batch: examples concatenated into rows, plus where its trained tokens are."""

    input_ids: torch.Tensor  # [rows, T]; one row for varlen attention kernels
    position_ids: torch.Tensor  # [rows, T], restarting at 0 for every example (and for a row's padding tail)
    target_index: torch.Tensor  # [K]: flat positions p (in rows x T) whose next token (p + 1) is trained
    targets: torch.Tensor  # [K]: the token ids at p + 1
    tasks: torch.Tensor  # [K]: the task of each target (0 answer, 1 rationale)
    num_tokens: int  # without padding
    task_counts: list[int]
    cu_seqlens: torch.Tensor | None = None  # one-row layout: example boundaries, int32, for varlen flash attention
    max_length: int = 0  # the longest example (flash attention's max_length_q/k)
    images: dict | None = None  # image-text models: the processor's tensors for the images, in token order

    def to(self, device: torch.device) -> Packed:
        move = {"non_blocking": True}
        return Packed(
            self.input_ids.to(device, **move),
            self.position_ids.to(device, **move),
            self.target_index.to(device, **move),
            self.targets.to(device, **move),
            self.tasks.to(device, **move),
            self.num_tokens,
            self.task_counts,
            None if self.cu_seqlens is None else self.cu_seqlens.to(device, **move),
            self.max_length,
            None if self.images is None else {k: v.to(device, **move) for k, v in self.images.items()},
        )


def pack(
    examples: Sequence[Encoded],
    pad_id: int = 0,
    row_tokens: int | None = None,
    pin: bool = False,
    image_inputs: Callable[[list], dict] | None = None,
) -> Packed:
    """All examples in one row (``row_tokens`` None: for varlen kernels, where attention costs the sum of squared
    example lengths), or best-fit into rows of at most ``row_tokens`` padded to the fullest row (for kernels that
    take a dense block-diagonal mask, where a row of T tokens costs T squared). ``image_inputs`` makes the image
    tensors of the examples' images, taken in the order their tokens are laid out, so each image stays with its
    example's tokens."""
    rows = [list(examples)] if row_tokens is None else plan_micro_batches(examples, row_tokens)
    width = max(sum(len(e) for e in row) for row in rows)
    ids: list[int] = []
    pos: list[int] = []
    index: list[int] = []
    targets: list[int] = []
    tasks: list[int] = []
    for row in rows:
        for e in row:
            offset = len(ids)
            ids.extend(e.input_ids)
            pos.extend(range(len(e)))
            # Token j of the example is predicted from position j - 1 of the same example (never from the example
            # before: its first token is not a target, as in data.pack.collate).
            for j in range(1, len(e)):
                if e.labels[j] != IGNORE_INDEX:
                    index.append(offset + j - 1)
                    targets.append(e.labels[j])
                    tasks.append(e.task)
        tail = width - len(ids) % width if len(ids) % width else 0
        ids.extend([pad_id] * tail)  # the padding tail: its own pseudo-example, never trained
        pos.extend(range(tail))
    counts = [0] * NUM_TASKS
    for t in tasks:
        counts[t] += 1
    parts = [image for row in rows for e in row for image in e.images]
    images = image_inputs(parts) if parts and image_inputs is not None else None
    tensors = [
        torch.tensor(ids).view(len(rows), width),
        torch.tensor(pos).view(len(rows), width),
        torch.tensor(index, dtype=torch.long),
        torch.tensor(targets, dtype=torch.long),
        torch.tensor(tasks, dtype=torch.long),
    ]
    if row_tokens is None:  # computed here so flash attention need not read them off the device in every layer
        bounds = [0]
        for e in examples:
            bounds.append(bounds[-1] + len(e))
        tensors.append(torch.tensor(bounds, dtype=torch.int32))
    if pin:
        tensors = [t.pin_memory() for t in tensors]
    return Packed(
        *tensors[:5],
        num_tokens=sum(len(e) for e in examples),
        task_counts=counts,
        cu_seqlens=tensors[5] if len(tensors) > 5 else None,
        max_length=max(len(e) for e in examples),
        images=images,
    )


def empty_micro_batch(pad_id: int) -> Packed:
    """A one-token micro-batch with nothing to train: keeps sharded ranks in step when one has less work."""
    return Packed(
        torch.tensor([[pad_id]]),
        torch.zeros((1, 1), dtype=torch.long),
        torch.zeros(0, dtype=torch.long),
        torch.zeros(0, dtype=torch.long),
        torch.zeros(0, dtype=torch.long),
        0,
        [0] * NUM_TASKS,
        torch.tensor([0, 1], dtype=torch.int32),
        1,
    )


class Prefetcher:
    """Builds the next steps' micro-batches on a background thread (packing is host work in Python).

    ``make(step)`` returns what the training loop consumes for ``step``; at most ``depth`` steps are built ahead.
    An exception in ``make`` is raised in the training loop at the step it belongs to.
    """

    def __init__(self, make: Callable[[int], object], start: int, stop: int, depth: int = 2):
        self._make = make
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(start, stop), daemon=True, name="tuneforge-prefetch")
        self._thread.start()

    def _run(self, start: int, stop: int) -> None:
        for step in range(start, stop):
            if self._halt.is_set():
                return
            try:
                item = (step, self._make(step), None)
            except BaseException as exc:  # handed to the consumer, which raises it
                item = (step, None, exc)
            while not self._halt.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if item[2] is not None:
                return

    def __iter__(self) -> Iterator[tuple[int, object]]:
        while True:
            step, value, exc = self._queue.get()
            if exc is not None:
                raise exc
            yield step, value

    def close(self) -> None:
        self._halt.set()
        self._thread.join(timeout=5)


# --- the loss ----------------------------------------------------------------------------------------------------

VARLEN_ATTENTION = ("flash_attention_2", "flash_attention_3", "flex_attention")


def row_tokens_for(attention: str | None, longest: int) -> int | None:
    """None (one row per micro-batch) for varlen kernels; else rows as long as the longest example."""
    return None if attention in VARLEN_ATTENTION else longest


def default_chunk(vocab_size: int) -> int:
    """Tokens per chunk so one chunk's float32 logits stay near 128 MiB (about 260 tokens at a 128k vocabulary)."""
    return max(64, (1 << 25) // max(vocab_size, 1))


class LinearCrossEntropy(torch.autograd.Function):
    """sum_k weight_k * CE(hidden_k @ W^T, target_k), its per-task sums and the count of argmax hits, in chunks.

    The backward pass is done inside the forward, chunk by chunk, while each chunk's logits exist; ``backward`` only
    scales the stored gradients. Half-precision logits are upcast to float32 (as the reference step does).
    """

    @staticmethod
    def forward(ctx, hidden, weight, targets, token_weights, tasks, chunk: int, want_grad: bool):
        needs_h, needs_w = want_grad and ctx.needs_input_grad[0], want_grad and ctx.needs_input_grad[1]
        grad_h = torch.empty_like(hidden) if needs_h else None
        grad_w = (
            torch.zeros(weight.shape, device=weight.device, dtype=torch.promote_types(weight.dtype, torch.float32))
            if needs_w
            else None
        )
        acc = torch.float64 if hidden.dtype == torch.float64 else torch.float32
        loss = torch.zeros((), device=hidden.device, dtype=acc)
        task_sums = torch.zeros(NUM_TASKS, device=hidden.device, dtype=acc)
        correct = torch.zeros((), device=hidden.device, dtype=torch.long)
        for s in range(0, hidden.shape[0], chunk):
            h = hidden[s : s + chunk]
            t = targets[s : s + chunk]
            logits = h @ weight.t()
            if logits.dtype in (torch.float16, torch.bfloat16):
                logits = logits.float()
            lse = torch.logsumexp(logits, dim=-1)
            token_loss = lse - logits.gather(1, t[:, None]).squeeze(1)
            w = token_weights[s : s + chunk]
            loss += (token_loss * w).sum()
            task_sums.index_add_(0, tasks[s : s + chunk], token_loss)
            correct += (logits.argmax(-1) == t).sum()
            if needs_h or needs_w:
                # d/dlogits of w * (lse - logit_t) = w * (softmax - onehot(t))
                grad = logits.sub_(lse[:, None]).exp_()  # in place: one [chunk, vocab] buffer per chunk
                grad[torch.arange(grad.shape[0], device=grad.device), t] -= 1
                grad = grad.mul_(w[:, None].to(grad.dtype)).to(hidden.dtype)
                if needs_h:
                    grad_h[s : s + chunk] = grad @ weight
                if needs_w:
                    grad_w += grad.t() @ h
        ctx.save_for_backward(grad_h, grad_w)
        ctx.weight_dtype = weight.dtype
        ctx.mark_non_differentiable(task_sums, correct)
        return loss, task_sums, correct

    @staticmethod
    def backward(ctx, grad_loss, _task_sums, _correct):
        grad_h, grad_w = ctx.saved_tensors
        if grad_h is not None:
            grad_h = grad_h * grad_loss.to(grad_h.dtype)
        if grad_w is not None:
            grad_w = (grad_w * grad_loss).to(ctx.weight_dtype)
        return grad_h, grad_w, None, None, None, None, None


def text_decoder(model: nn.Module) -> nn.Module:
    """The module that maps token embeddings to the last hidden state (no output head): ``get_decoder()``, followed
    down through a causal LM that an image-text model's lookup returns whole (Llama 4 gives its Llama4ForCausalLM)."""
    decoder = model.get_decoder()
    while getattr(decoder, "get_output_embeddings", lambda: None)() is not None and hasattr(decoder, "model"):
        decoder = decoder.model
    return decoder


def fast_loss_supported(model) -> str | None:
    """None when the fast step computes this model's loss exactly; otherwise why not (the reference step is used)."""
    config = getattr(model, "config", None)
    text = getattr(config, "get_text_config", lambda: config)()
    if getattr(text, "final_logit_softcapping", None):
        return "the model soft-caps its logits"
    head = model.get_output_embeddings()
    if not isinstance(head, nn.Linear) or head.bias is not None:
        return "the output head is not a bias-free linear layer"
    if getattr(text, "logit_scale", None) not in (None, 1, 1.0):
        return "the model scales its logits"
    return None


class CausalLMLoss(nn.Module):
    """The fast step's forward: backbone -> hidden at trained positions -> chunked linear cross-entropy.

    A module of its own so a sharded run can put the whole computation, the output head included, under its root
    FSDP unit (FSDP gathers parameters in a module's forward). ``lm`` is the causal LM (or its peft wrapper).
    """

    def __init__(self, lm: nn.Module, chunk: int | None = None):
        super().__init__()
        self.lm = lm
        base = lm.get_base_model() if hasattr(lm, "get_base_model") else lm
        self._decoder = [text_decoder(base)]  # a list: registered once, under lm, not twice
        self._head = [base.get_output_embeddings()]
        self.chunk = chunk or default_chunk(self._head[0].weight.shape[0])
        self.flash = str(getattr(base.config, "_attn_implementation", "")).startswith("flash_attention")

    def forward(self, mb: Packed, task_scale: torch.Tensor):
        varlen = {}
        if self.flash and mb.cu_seqlens is not None:
            varlen = dict(
                cu_seq_lens_q=mb.cu_seqlens,
                cu_seq_lens_k=mb.cu_seqlens,
                max_length_q=mb.max_length,
                max_length_k=mb.max_length,
            )
        if mb.images is None:
            out = self._decoder[0](input_ids=mb.input_ids, position_ids=mb.position_ids, use_cache=False, **varlen)
            last = out.last_hidden_state
        else:
            last = self._hidden_with_images(mb, varlen)
        hidden = last.flatten(0, 1).index_select(0, mb.target_index)
        weights = task_scale.index_select(0, mb.tasks)
        return LinearCrossEntropy.apply(
            hidden, self._head[0].weight, mb.targets, weights, mb.tasks, self.chunk, torch.is_grad_enabled()
        )

    def _hidden_with_images(self, mb: Packed, varlen: dict) -> torch.Tensor:
        """The text decoder's last hidden state for a micro-batch with images: the whole model runs (vision tower,
        projector, image features placed at the image tokens, then the decoder), its head on one position only;
        the decoder's output is taken by a hook, so any image-text model's own merging is what runs."""
        captured: list[torch.Tensor] = []
        handle = self._decoder[0].register_forward_hook(lambda _m, _a, out: captured.append(out.last_hidden_state))
        try:
            self.lm(
                input_ids=mb.input_ids,
                position_ids=mb.position_ids,
                use_cache=False,
                logits_to_keep=1,
                **image_kwargs(self.lm, mb.images),
                **varlen,
            )
        finally:
            handle.remove()
        return captured[-1]


def image_kwargs(model: nn.Module, images: dict | None) -> dict:
    """The processor's image tensors as the model takes them (floating tensors in the model's dtype)."""
    if not images:
        return {}
    dtype = next(p.dtype for p in model.parameters() if p.is_floating_point())
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in images.items()}


def task_counts(micro_batches: Sequence[Packed]) -> list[int]:
    """Target tokens per task over micro-batches (a whole step's, before it is shared out among processes)."""
    return [sum(mb.task_counts[t] for mb in micro_batches) for t in range(NUM_TASKS)]


def step_task_scale(
    micro_batches: Sequence[Packed], task_weights: Sequence[float], *, total_counts=None, world_size: int = 1
) -> tuple[torch.Tensor, list[int]]:
    """Per-task loss weight (weight / the step's target tokens of that task) and the step's counts per task.

    ``total_counts`` are the whole step's counts when this process holds only part of it (sharded runs); the
    ``world_size`` factor turns FSDP's gradient average over processes into the sum the loss is defined with.
    """
    counts = total_counts or task_counts(micro_batches)
    scale = torch.tensor([w * world_size / max(n, 1) for w, n in zip(task_weights, counts)], dtype=torch.float32)
    return scale, counts


def fast_train_step(
    loss_module: CausalLMLoss,
    micro_batches: Sequence[Packed],
    task_scale: torch.Tensor,
    on_last: Callable[[bool], None] | None = None,
) -> dict[str, torch.Tensor]:
    """Forward/backward over device micro-batches; returns device tensors (read them after the optimizer step).

    ``on_last(is_last)`` runs before each backward (sharded runs sync gradients on the last micro-batch only).
    """
    device = micro_batches[0].input_ids.device
    if device.type == "cuda":  # from pageable memory a copy would wait for the device
        task_scale = task_scale.pin_memory()
    scale = task_scale.to(device, non_blocking=True)
    task_sums = torch.zeros(NUM_TASKS, device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    for i, mb in enumerate(micro_batches):
        if on_last is not None:
            on_last(i == len(micro_batches) - 1)
        loss, sums, hits = loss_module(mb, scale)
        loss.backward()
        task_sums += sums
        correct += hits
    return {"task_sums": task_sums, "correct": correct}


@torch.no_grad()
def fast_evaluate(loss_module: CausalLMLoss, batches: Sequence[Packed]) -> dict:
    """The reference ``evaluate``'s metrics (``metrics.eval_metrics``)."""
    was_training = loss_module.training
    loss_module.eval()
    device = batches[0].input_ids.device
    ones = torch.ones(NUM_TASKS, device=device)
    sums = torch.zeros(NUM_TASKS, device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    for mb in batches:
        _, task_sums, hits = loss_module(mb, ones)
        sums += task_sums
        correct += hits
    loss_module.train(was_training)
    return eval_metrics(float(sums.sum()), int(correct), sum(sum(mb.task_counts) for mb in batches))
