"""Run by test_distributed.py under torchrun: one step's gradients, sharded (FSDP2) vs one unsharded process.

Rank 0 writes ``{"max_abs_diff": ..., "max_abs_grad": ..., "loss_sharded": ..., "loss_single": ...}`` to argv[2].
"""

import copy
import json
import sys

import torch
import torch.distributed as dist
from transformers import AutoModelForCausalLM, AutoTokenizer

from tuneforge.data import ChatEncoder, Report, parse_lines
from tuneforge.train.distributed import (
    shard,
    share_out,
    total_task_counts,
    world_from_env,
)
from tuneforge.train.fastpath import (
    CausalLMLoss,
    fast_train_step,
    pack,
    plan_micro_batches,
    step_task_scale,
)


def main(model_dir: str, out: str) -> None:
    world = world_from_env("cpu")
    tok = AutoTokenizer.from_pretrained(model_dir)
    lines = [json.dumps({"prompt": "p" * (3 + 7 * i % 23), "completion": "c" * (2 + 5 * i % 11)}) for i in range(9)]
    examples = [ChatEncoder(tok, "<|eot_id|>").encode(c) for c in parse_lines(lines, Report())]
    for i, e in enumerate(examples):
        e.task = i % 2
    packed = [pack(g) for g in plan_micro_batches(examples, budget=90)]
    counts = total_task_counts(packed)
    weights = (1.0, 0.3)

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    single = copy.deepcopy(model)

    loss_module = CausalLMLoss(model)
    shard(loss_module, torch.device("cpu"))
    mine = share_out(packed, world, tok.pad_token_id)
    scale, _ = step_task_scale(mine, weights, total_counts=counts, world_size=world.size)
    totals = fast_train_step(loss_module, mine, scale, loss_module.set_requires_gradient_sync)
    sums = world.all_sum(totals["task_sums"].clone())
    sharded = {n: p.grad.full_tensor() for n, p in model.named_parameters()}

    scale1, _ = step_task_scale(packed, weights)
    totals1 = fast_train_step(CausalLMLoss(single), packed, scale1)
    if world.main:
        reference = {n: p.grad for n, p in single.named_parameters()}
        diff = max(float((sharded[n] - g).abs().max()) for n, g in reference.items())
        biggest = max(float(g.abs().max()) for g in reference.values())
        loss = lambda s: sum(w * float(x) / max(c, 1) for w, x, c in zip(weights, s, counts))  # noqa: E731
        with open(out, "w") as f:
            json.dump({"max_abs_diff": diff, "max_abs_grad": biggest, "micro_batches": len(packed),
                       "loss_sharded": loss(sums), "loss_single": loss(totals1["task_sums"])}, f)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
