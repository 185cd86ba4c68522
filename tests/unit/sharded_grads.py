"""Run by test_distributed.py under torchrun: one step's gradients, sharded (FSDP2) vs one unsharded process.

Rank 0 writes the gradients' largest difference, the losses and whether every rank ended up with rank 0's buffers
(rotary frequencies: no state dict carries them) to argv[2].
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
    world_from_env,
)
from tuneforge.train.fastpath import (
    CausalLMLoss,
    fast_train_step,
    pack,
    plan_micro_batches,
    step_task_scale,
    task_counts,
)
from tuneforge.train.loading import empty_model


def main(model_dir: str, out: str) -> None:
    world = world_from_env("cpu")
    tok = AutoTokenizer.from_pretrained(model_dir)
    lines = [json.dumps({"prompt": "p" * (3 + 7 * i % 23), "completion": "c" * (2 + 5 * i % 11)}) for i in range(9)]
    examples = [ChatEncoder(tok, "<|eot_id|>").encode(c) for c in parse_lines(lines, Report())]
    for i, e in enumerate(examples):
        e.task = i % 2
    packed = [pack(g) for g in plan_micro_batches(examples, budget=90)]
    counts = task_counts(packed)
    weights = (1.0, 0.3)

    # As run_sft does: rank 0 reads the weights, the other ranks build the model on the meta device and receive
    # every weight and buffer from rank 0 when it is sharded.
    if world.main:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        single = copy.deepcopy(model)
    else:
        model = empty_model(model_dir, torch.float32, None)

    loss_module = CausalLMLoss(model)
    shard(loss_module, torch.device("cpu"), world)
    buffers = [None] * world.size
    dist.all_gather_object(buffers, {n: b.clone() for n, b in model.named_buffers()})
    mine = share_out(packed, world, tok.pad_token_id)
    scale, _ = step_task_scale(mine, weights, total_counts=counts, world_size=world.size)
    totals = fast_train_step(loss_module, mine, scale, loss_module.set_requires_gradient_sync)
    sums = world.all_sum(totals["task_sums"].clone())
    sharded = {n: p.grad.full_tensor() for n, p in model.named_parameters()}

    if world.main:
        scale1, _ = step_task_scale(packed, weights)
        totals1 = fast_train_step(CausalLMLoss(single), packed, scale1)
        reference = {n: p.grad for n, p in single.named_parameters()}
        diff = max(float((sharded[n] - g).abs().max()) for n, g in reference.items())
        biggest = max(float(g.abs().max()) for g in reference.values())
        loss = lambda s: sum(w * float(x) / max(c, 1) for w, x, c in zip(weights, s, counts))  # noqa: E731
        same_buffers = all(torch.equal(b, buffers[0][n]) for other in buffers[1:] for n, b in other.items())
        with open(out, "w") as f:
            json.dump(
                {
                    "max_abs_diff": diff,
                    "max_abs_grad": biggest,
                    "micro_batches": len(packed),
                    "buffers": sorted(buffers[0]),
                    "same_buffers": same_buffers,
                    "loss_sharded": loss(sums),
                    "loss_single": loss(totals1["task_sums"]),
                },
                f,
            )
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
