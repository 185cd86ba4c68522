"""Several processes, one run: FULL tuning sharded with FSDP2 (``torchrun --nproc_per_node N -m tuneforge tune``).

Each process holds 1/N of every weight, gradient and optimizer state; a decoder layer's weights are gathered for
its forward and backward only. A step's micro-batches are shared out by tokens; every process knows the whole
step's target-token counts (it packs the same step), so the loss keeps its single-process definition (mean over
the step's target tokens) and the summed gradients equal one process's. One process (rank 0) writes files, logs
and decides to stop; the others follow it.

NCCL on GPUs, gloo on CPUs (the CPU path is what tests/unit/test_distributed.py runs, two processes against one).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from tuneforge.train.fastpath import Packed, empty_micro_batch


@dataclass
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def sharded(self) -> bool:
        return self.size > 1

    def barrier(self) -> None:
        if self.sharded:
            dist.barrier()

    def all_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.sharded:
            dist.all_reduce(tensor)
        return tensor

    def agree(self, flag: bool) -> bool:
        """Rank 0's answer, everywhere (stopping must happen at the same step in every process)."""
        if not self.sharded:
            return flag
        box = [flag]
        dist.broadcast_object_list(box, src=0)
        return bool(box[0])


SINGLE = World()


def processes_from_env() -> int:
    """How many processes torchrun (or train/launch.py) started for this run."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def world_from_env(device_name: str) -> World:
    """The process group torchrun describes in the environment; a single process without one."""
    size = processes_from_env()
    if size <= 1:
        return SINGLE
    world = World(rank=int(os.environ["RANK"]), size=size, local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        use_cuda = device_name != "cpu" and torch.cuda.is_available()
        if use_cuda:
            torch.cuda.set_device(world.local_rank)
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return world


def leave_world() -> None:
    """Tear down the process group a torchrun run joined (``world_from_env``), before the interpreter exits: left
    to exit, gloo's threads are sometimes destroyed while joinable and abort the process ("terminate called
    without an active exception") after the run has finished."""
    if dist.is_initialized():
        dist.destroy_process_group()


def device_for(world: World, device: torch.device) -> torch.device:
    return torch.device("cuda", world.local_rank) if device.type == "cuda" and world.sharded else device


def shard(loss_module: torch.nn.Module, device: torch.device, world: World) -> None:
    """FSDP2: one unit per decoder layer, then the rest (embeddings, final norm, output head) under the root.

    Only rank 0 holds real weights (in host memory; the other ranks built the model on the meta device, see
    :func:`loading.empty_model`): after sharding, the other ranks allocate their shards and rank 0 broadcasts every
    weight and buffer. No process ever holds the whole model on its GPU, and only rank 0 holds it in host memory.
    """
    from torch.distributed.checkpoint import state_dict as dcp
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    model = loss_module.lm
    full = dict(model.state_dict()) if world.main else {}  # keeps rank 0's full tensors alive past sharding
    mesh = init_device_mesh(device.type, (world.size,))
    for layer in loss_module._decoder[0].layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(loss_module, mesh=mesh)
    if not world.main:
        loss_module.to_empty(device=device)
    dcp.set_model_state_dict(model, full, options=dcp.StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
    for buffer in model.buffers():  # rotary frequencies and other buffers no state dict carries
        dist.broadcast(buffer, src=0)


def share_out(micro_batches: list[Packed], world: World, pad_id: int) -> list[Packed]:
    """This process's micro-batches: largest first to the process with the fewest tokens so far; every process gets
    the same number (empty ones fill in), since each forward and backward is a collective step for all of them."""
    if not world.sharded:
        return micro_batches
    per = -(-len(micro_batches) // world.size)
    owned: list[list[Packed]] = [[] for _ in range(world.size)]
    tokens = [0] * world.size
    for mb in sorted(micro_batches, key=lambda m: -m.num_tokens):
        r = min((r for r in range(world.size) if len(owned[r]) < per), key=lambda r: (tokens[r], r))
        owned[r].append(mb)
        tokens[r] += mb.num_tokens
    mine = owned[world.rank]
    return mine + [empty_micro_batch(pad_id) for _ in range(per - len(mine))]


def is_sharded(model: torch.nn.Module) -> bool:
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in model.parameters())


def full_state_dict(model: torch.nn.Module, trainable_only: bool = False) -> dict[str, torch.Tensor]:
    """Every weight gathered to rank 0's CPU (a collective: every process calls it; the others get {})."""
    from torch.distributed.checkpoint import state_dict as dcp

    state = dcp.get_model_state_dict(model, options=dcp.StateDictOptions(full_state_dict=True, cpu_offload=True))
    # named_parameters() lists a tied weight once (the output head shares the embeddings): save it once, as
    # save_pretrained does for a model it reads the weights of itself.
    keep = {name for name, p in model.named_parameters() if p.requires_grad or not trainable_only}
    if not trainable_only:
        keep |= {name for name, _ in model.named_buffers()}
    return {k: v for k, v in state.items() if k in keep}


def load_full_state_dict(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    from torch.distributed.checkpoint import state_dict as dcp

    dcp.set_model_state_dict(model, state, options=dcp.StateDictOptions(full_state_dict=True, strict=False))


def full_optimizer_state(model, optimizer) -> dict:
    from torch.distributed.checkpoint import state_dict as dcp

    return dcp.get_optimizer_state_dict(
        model, optimizer, options=dcp.StateDictOptions(full_state_dict=True, cpu_offload=True)
    )


def load_full_optimizer_state(model, optimizer, state: dict) -> None:
    from torch.distributed.checkpoint import state_dict as dcp

    dcp.set_optimizer_state_dict(model, optimizer, state, options=dcp.StateDictOptions(full_state_dict=True))
