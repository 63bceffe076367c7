"""Data-parallel training across processes with PyTorch DDP, launched by ``torchrun`` (nothing home-made).

``torchrun --standalone --nproc_per_node=N -m limbseg train DATASET -o RUN_DIR ...`` starts N processes
with ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` set; :func:`init_from_env` joins them into one process group
(NCCL on CUDA, Gloo on CPU). Each process trains on its share of every epoch's tiles
(``DistributedSampler``) and DDP averages the gradients, so ``--batch-size`` is per process and the
global batch is N times larger. Rank 0 validates and broadcasts the result (all ranks take the same
early-stopping decision), evaluates, and writes the run folder; the other ranks keep their checkpoints
in ``RUN_DIR/rank<r>/`` so ``--resume`` works for them too. Multi-node: ``torchrun --nnodes ...
--rdzv-endpoint HOST:PORT`` with the same arguments on every node.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (a single process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def init_from_env(device: str = "auto") -> World:
    """Join the process group that ``torchrun`` describes in the environment; a single World otherwise."""
    import torch.distributed as dist

    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    world = World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))
    use_cuda = torch.cuda.is_available() and (str(device) in ("auto", "cuda") or str(device).startswith("cuda:"))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(world.local_rank)
    return world


def device_for(world: World, device: torch.device) -> torch.device:
    """One GPU per process (``cuda:LOCAL_RANK``) when training on CUDA with several processes."""
    if world.distributed and device.type == "cuda":
        return torch.device("cuda", world.local_rank)
    return device


def wrap(model: nn.Module, world: World, device: torch.device) -> nn.Module:
    """``DistributedDataParallel(model)`` when distributed; the model itself otherwise."""
    if not world.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index if device.index is not None else world.local_rank] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def sampler(dataset: Any, world: World, seed: int) -> Any:
    """A ``DistributedSampler`` giving this rank its share of the dataset (None when not distributed)."""
    if not world.distributed:
        return None
    from torch.utils.data import DistributedSampler

    return DistributedSampler(dataset, num_replicas=world.size, rank=world.rank, shuffle=True, seed=seed)


def broadcast(obj: Any, world: World) -> Any:
    """Rank 0's ``obj`` on every rank (a picklable object)."""
    if not world.distributed:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sum_over_ranks(values: list[float], world: World, device: torch.device) -> list[float]:
    """Element-wise sum of ``values`` over all ranks (the values themselves with one process)."""
    if not world.distributed:
        return list(values)
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def shutdown(world: World) -> None:
    """Leave the process group (after the last collective call)."""
    import torch.distributed as dist

    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()
