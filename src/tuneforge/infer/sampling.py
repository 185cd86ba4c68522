"""Sampling parameters (validated once, for every serving API) and the per-row token sampler.

Order as the Vertex documents give it (SPEC §4.7): top-k, then top-p, then temperature sampling. Temperature 0 or
top-k 1 is greedy: the argmax, deterministic for a given prompt.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import torch

from tuneforge.errors import InvalidArgument

MAX_STOP_SEQUENCES = 16
MAX_CANDIDATES = 8


@dataclass
class SamplingParams:
    max_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0: no top-k filter
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    n: int = 1

    @property
    def greedy(self) -> bool:
        return self.temperature == 0 or self.top_k == 1

    def generator(self, candidate: int = 0) -> torch.Generator:
        """A private random stream per request (and candidate), so a seeded request repeats whatever it batches with."""
        g = torch.Generator()
        g.manual_seed(
            (self.seed + candidate) if self.seed is not None else int.from_bytes(os.urandom(8), "little") >> 1
        )
        return g


MAX_SEED = 2**63 - 1 - 64  # a seed plus a candidate's index must fit torch's int64 seed


def _number(value, field_name: str, *, integer: bool = False):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgument(f"{field_name} must be a number, got {type(value).__name__} {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidArgument(f"{field_name} must be a finite number, got {value!r}")
    if integer:
        if isinstance(value, float) and not value.is_integer():
            raise InvalidArgument(f"{field_name} must be a whole number, got {value!r}")
        return int(value)
    return float(value)


def build_params(
    *,
    defaults: SamplingParams,
    max_tokens=None,
    temperature=None,
    top_p=None,
    top_k=None,
    stop=None,
    seed=None,
    n=None,
    names: dict[str, str] | None = None,
) -> SamplingParams:
    """Validate the fields one API sent (``None`` = not sent: the model's default) into SamplingParams.

    ``names`` maps our field names to the caller's spelling (``maxOutputTokens``, ``top_p``…) so errors name the
    field the user actually wrote.
    """
    names = names or {}

    def name(key: str) -> str:
        return names.get(key, key)

    p = SamplingParams(
        max_tokens=defaults.max_tokens, temperature=defaults.temperature, top_p=defaults.top_p, top_k=defaults.top_k
    )
    if max_tokens is not None:
        p.max_tokens = _number(max_tokens, name("max_tokens"), integer=True)
        if p.max_tokens < 1:
            raise InvalidArgument(f"{name('max_tokens')} must be at least 1, got {p.max_tokens}")
    if temperature is not None:
        p.temperature = _number(temperature, name("temperature"))
        if not 0 <= p.temperature <= 2:
            raise InvalidArgument(f"{name('temperature')} must be between 0 and 2, got {p.temperature}")
    if top_p is not None:
        p.top_p = _number(top_p, name("top_p"))
        if not 0 < p.top_p <= 1:
            raise InvalidArgument(f"{name('top_p')} must be greater than 0 and at most 1, got {p.top_p}")
    if top_k is not None:
        p.top_k = _number(top_k, name("top_k"), integer=True)
        if p.top_k < 0:
            raise InvalidArgument(f"{name('top_k')} must be 0 (off) or a positive whole number, got {p.top_k}")
    if stop is not None:
        if isinstance(stop, str):
            stop = [stop]
        if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
            raise InvalidArgument(f"{name('stop')} must be a list of non-empty strings")
        if len(stop) > MAX_STOP_SEQUENCES:
            raise InvalidArgument(f"{name('stop')} has {len(stop)} sequences; at most {MAX_STOP_SEQUENCES} are allowed")
        p.stop = list(stop)
    if seed is not None:
        p.seed = _number(seed, name("seed"), integer=True)
        if not 0 <= p.seed <= MAX_SEED:
            raise InvalidArgument(f"{name('seed')} must be between 0 and {MAX_SEED} (2**63 - 1 - 64), got {p.seed}")
    if n is not None:
        p.n = _number(n, name("n"), integer=True)
        if not 1 <= p.n <= MAX_CANDIDATES:
            raise InvalidArgument(f"{name('n')} must be between 1 and {MAX_CANDIDATES}, got {p.n}")
    return p


def sample(logits: torch.Tensor, params: list[SamplingParams], generators: list[torch.Generator]) -> torch.Tensor:
    """One next token per row of ``logits`` [B, V] (float32), each row with its own parameters and random stream."""
    out = torch.argmax(logits, dim=-1)
    sampled = [i for i, p in enumerate(params) if not p.greedy]
    if not sampled:
        return out
    rows = logits[sampled].float()
    temps = torch.tensor([params[i].temperature for i in sampled], dtype=rows.dtype, device=rows.device)
    rows = rows / temps[:, None]
    vocab = rows.shape[-1]
    for j, i in enumerate(sampled):  # top-k
        k = params[i].top_k
        if 0 < k < vocab:
            kth = torch.topk(rows[j], k).values[-1]
            rows[j] = rows[j].masked_fill(rows[j] < kth, float("-inf"))
    top_ps = torch.tensor([params[i].top_p for i in sampled], dtype=rows.dtype, device=rows.device)
    if bool((top_ps < 1).any()):  # top-p: keep the smallest prefix of sorted tokens whose mass reaches top_p
        sorted_logits, order = torch.sort(rows, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        mass_before = torch.cumsum(probs, dim=-1) - probs
        drop = mass_before >= top_ps[:, None]
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        rows = torch.full_like(rows, float("-inf")).scatter(-1, order, sorted_logits)
    probs = torch.softmax(rows, dim=-1).cpu()
    for j, i in enumerate(sampled):
        out[i] = torch.multinomial(probs[j], 1, generator=generators[i]).item()
    return out
