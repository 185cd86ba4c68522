"""What preference tuning (DPO) computes, beside its recipe (recipes/dpo.py): packed pairs, each sequence's
log-probability without full logits, the loss and its metrics.

- **Packing.** A micro-batch holds whole pairs; their 2P sequences (chosen, rejected, chosen, …) are packed into
  rows with position ids restarting per sequence (the fast path's packing: attention never crosses sequences), and
  each trained token knows its sequence.
- **Log-probabilities in chunks.** Hidden states are gathered at the trained positions only; :class:`TokenLogProbs`
  projects them onto the vocabulary a chunk at a time and keeps only one number per token (its log-probability).
  The backward pass recomputes each chunk's logits, so the [tokens, vocab] logits never exist at once.
- **The loss** is DPO's sigmoid loss (Rafailov et al., 2023), as TRL's ``DPOTrainer`` computes it
  (``loss_type="sigmoid"``): ``-log σ(β((log π(c) - log π_ref(c)) - (log π(r) - log π_ref(r))))``, the sequence
  log-probabilities summed over the completion's tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tuneforge.data.preference import EncodedPair
from tuneforge.data.tokenize import IGNORE_INDEX
from tuneforge.train.fastpath import Packed, default_chunk, fast_loss_supported, pack, plan_micro_batches

TRAIN_PREFERENCE_METRICS = (
    "train_total_loss",
    "train_reward_accuracy",
    "train_chosen_reward",
    "train_rejected_reward",
    "train_reward_margin",
)


@dataclass
class PairBatch:
    """A micro-batch of whole pairs: sequence 2k is pair k's chosen completion, 2k + 1 its rejected one."""

    packed: Packed
    seq_index: torch.Tensor  # [K]: the sequence of each trained token
    pair_ids: list[int]  # each pair's index in its dataset (for precomputed reference log-probabilities)

    @property
    def num_pairs(self) -> int:
        return len(self.pair_ids)

    def to(self, device: torch.device) -> PairBatch:
        return PairBatch(self.packed.to(device), self.seq_index.to(device, non_blocking=True), self.pair_ids)


def pack_pairs(pairs: Sequence[EncodedPair], pad_id: int, row_tokens: int | None) -> PairBatch:
    """Pack ``pairs``' sequences (``row_tokens`` None: one row, for varlen kernels; else best-fit rows)."""
    sequences = [e for p in pairs for e in (p.chosen, p.rejected)]
    rows = [sequences] if row_tokens is None else plan_micro_batches(sequences, row_tokens)
    number = {id(e): k for k, e in enumerate(sequences)}
    # fastpath.pack lists targets row by row, example by example; the same order gives each target's sequence.
    counts = [(number[id(e)], sum(1 for x in e.labels[1:] if x != IGNORE_INDEX)) for row in rows for e in row]
    seq_index = torch.tensor([k for k, n in counts for _ in range(n)], dtype=torch.long)
    return PairBatch(pack(sequences, pad_id, row_tokens), seq_index, [p.index for p in pairs])


def plan_pairs(pairs: Sequence[EncodedPair], budget: int) -> list[list[EncodedPair]]:
    """Micro-batches of whole pairs of at most ``budget`` tokens (a longer pair gets one of its own)."""
    return plan_micro_batches(pairs, budget)  # type: ignore[arg-type]  # EncodedPair has a length, as Encoded


class TokenLogProbs(torch.autograd.Function):
    """log softmax(hidden_k @ W^T)[target_k] for every token k, in chunks of tokens; the backward pass recomputes
    each chunk's logits (one [chunk, vocab] buffer at a time, never all of them)."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, chunk: int):
        out = torch.empty(hidden.shape[0], device=hidden.device, dtype=torch.float32)
        lse_all = torch.empty_like(out)
        for s in range(0, hidden.shape[0], chunk):
            logits = (hidden[s : s + chunk] @ weight.t()).float()
            lse = torch.logsumexp(logits, dim=-1)
            out[s : s + chunk] = logits.gather(1, targets[s : s + chunk, None]).squeeze(1) - lse
            lse_all[s : s + chunk] = lse
        ctx.save_for_backward(hidden, weight, targets, lse_all)
        ctx.chunk = chunk
        return out

    @staticmethod
    def backward(ctx, grad_out):
        hidden, weight, targets, lse_all = ctx.saved_tensors
        needs_h, needs_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_h = torch.empty_like(hidden) if needs_h else None
        grad_w = torch.zeros(weight.shape, device=weight.device, dtype=torch.float32) if needs_w else None
        for s in range(0, hidden.shape[0], ctx.chunk):
            h = hidden[s : s + ctx.chunk]
            # d logp_t / d logits = onehot(t) - softmax; times the incoming gradient of each token
            grad = (h @ weight.t()).float().sub_(lse_all[s : s + ctx.chunk, None]).exp_().neg_()
            grad[torch.arange(grad.shape[0], device=grad.device), targets[s : s + ctx.chunk]] += 1
            grad.mul_(grad_out[s : s + ctx.chunk, None])
            if needs_h:
                grad_h[s : s + ctx.chunk] = (grad.to(weight.dtype) @ weight).to(hidden.dtype)
            if needs_w:
                grad_w += grad.t() @ h.float()
        return grad_h, None if grad_w is None else grad_w.to(weight.dtype), None, None


class SequenceLogProbs(nn.Module):
    """A causal LM's log-probability of each packed sequence's trained tokens, summed per sequence."""

    def __init__(self, lm: nn.Module, chunk: int | None = None):
        super().__init__()
        self.lm = lm
        base = lm.get_base_model() if hasattr(lm, "get_base_model") else lm
        self._base = [base]  # a list: registered once, under lm
        self.chunked = fast_loss_supported(base) is None  # else: full logits (soft-capped or scaled heads)
        self.chunk = chunk or default_chunk(base.get_output_embeddings().weight.shape[0])

    def forward(self, batch: PairBatch) -> torch.Tensor:
        mb, base = batch.packed, self._base[0]
        if self.chunked:
            out = base.get_decoder()(input_ids=mb.input_ids, position_ids=mb.position_ids, use_cache=False)
            hidden = out.last_hidden_state.flatten(0, 1).index_select(0, mb.target_index)
            token_logps = TokenLogProbs.apply(hidden, base.get_output_embeddings().weight, mb.targets, self.chunk)
        else:
            logits = self.lm(input_ids=mb.input_ids, position_ids=mb.position_ids, use_cache=False).logits
            picked = logits.flatten(0, 1).index_select(0, mb.target_index).float()
            token_logps = picked.log_softmax(-1).gather(1, mb.targets[:, None]).squeeze(1)
        sums = torch.zeros(2 * batch.num_pairs, device=token_logps.device, dtype=token_logps.dtype)
        return sums.index_add(0, batch.seq_index, token_logps)


def dpo_loss(policy: torch.Tensor, reference: torch.Tensor, beta: float) -> tuple[torch.Tensor, ...]:
    """(per-pair loss, chosen reward, rejected reward) from [2P] sequence log-probabilities (chosen, rejected, …)."""
    chosen_reward = beta * (policy[0::2] - reference[0::2])
    rejected_reward = beta * (policy[1::2] - reference[1::2])
    losses = -F.logsigmoid(chosen_reward - rejected_reward)
    return losses, chosen_reward.detach(), rejected_reward.detach()


class PreferenceTotals:
    """Sums over a step's (or an evaluation's) pairs, read once at the end: loss, wins, rewards."""

    def __init__(self, device: torch.device):
        self.sums = torch.zeros(4, device=device, dtype=torch.float64)  # loss, wins, chosen reward, rejected reward
        self.pairs = 0

    def add(self, losses: torch.Tensor, chosen: torch.Tensor, rejected: torch.Tensor) -> None:
        values = torch.stack([losses.detach().sum(), (chosen > rejected).sum(), chosen.sum(), rejected.sum()]).to(
            torch.float64
        )
        self.sums += values
        self.pairs += losses.shape[0]

    def metrics(self, prefix: str) -> dict[str, float]:
        loss, wins, chosen, rejected = (float(v) / max(self.pairs, 1) for v in self.sums.cpu())
        return {
            f"{prefix}_total_loss": loss,
            f"{prefix}_reward_accuracy": wins,
            f"{prefix}_chosen_reward": chosen,
            f"{prefix}_rejected_reward": rejected,
            f"{prefix}_reward_margin": chosen - rejected,
            f"{prefix}_num_pairs": float(self.pairs),
        }


def preference_backward(
    logps: SequenceLogProbs,
    reference: Callable[[PairBatch], torch.Tensor],
    micro_batches: Sequence[PairBatch],
    beta: float,
    device: torch.device,
) -> PreferenceTotals:
    """Forward and backward over a step's micro-batches: the gradient of the mean DPO loss over the step's pairs
    (each pair counts once, so 1 x 8 pairs and 4 x 2 give the same gradient). ``reference(batch)``: the reference
    model's sequence log-probabilities of a (device) batch."""
    pairs = sum(mb.num_pairs for mb in micro_batches)
    totals = PreferenceTotals(device)
    for mb in micro_batches:
        mb = mb.to(device)
        losses, chosen, rejected = dpo_loss(logps(mb), reference(mb), beta)
        (losses.sum() / pairs).backward()
        totals.add(losses, chosen, rejected)
    return totals
